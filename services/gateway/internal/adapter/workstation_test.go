package adapter

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/event"
)

// wsDocs returns the vendor's manifest example and the corrected activity
// example (without its header line) and the header's version.
func wsDocs(tb testing.TB) (manifest, activity, version string) {
	tb.Helper()
	manifest = strings.TrimSpace(famRead(tb, "workstation/docs_manifest_example.json"))
	header, activity, _ := strings.Cut(famRead(tb, "workstation/docs_activity_example_corrected.json"), "\n")
	v, ok := FileVersion(header)
	if !ok {
		tb.Fatalf("no version in header %q", header)
	}
	return manifest, activity, v
}

func wsEvent(manifest, archiveType, fileVersion, key, body string) string {
	var b strings.Builder
	b.WriteString(`{"manifest":` + manifest)
	if archiveType != "" {
		b.WriteString(`,"archive_type":"` + archiveType + `"`)
	}
	if fileVersion != "" {
		b.WriteString(`,"file_version":"` + fileVersion + `"`)
	}
	b.WriteString(`,"` + key + `":` + body + `}`)
	return b.String()
}

func TestWorkstationActivity(t *testing.T) {
	manifest, docActivity, version := wsDocs(t)
	if version != "1.0.9" {
		t.Fatalf("header version %q", version)
	}
	synthetic := famLines(t, "workstation/synthetic_activity.jsonl")
	manifestWant := map[string]string{
		"manifest.version": `"1.0.4"`, "manifest.machine_guid": `"3c830f47-9fcd-4a48-a568-750d8b179987"`,
		"manifest.user":     `{"ad_guid":"d59396ef-c493-4215-8dd5-1c478c846191","domain":"CORP.BUSINESSPROJECT.COM","employee_id":2,"login":"johndoe","name":"John Doe","timezone":"Europe/London","timezone_sec":10800}`,
		"manifest.computer": `{"domain":"domain.com","name":"c-066-test.corp.operavix.com","workgroup":""}`,
		"manifest.agent":    `{"version":"2.14.3"}`, "manifest.type": `"inspector"`, "manifest.extra_json": "null",
		"envelope.partition_key": `"3c830f47-9fcd-4a48-a568-750d8b179987"`,
	}
	for _, tc := range []struct {
		name, raw, typ string
		clientTime     time.Time
		want           map[string]string
	}{
		{"docs_example", wsEvent(manifest, "", version, "activity", docActivity), "43", time.Unix(1692694112, 469e6), map[string]string{
			"kind": `"activity"`, "archive_type": `"inspector"`, "file_version": `"1.0.9"`, "log": "null",
			"activity.time": "1692694112", "activity.time_ms": "469", "activity.cpu_loading": "12", "activity.memory_loading": "30",
			"activity.window_activity.app_info": `{"executable_path":"%ProgramFiles(x86)%\\Google\\Chrome\\Application\\chrome.exe","program_name":"Google Chrome","version":"115.0.5790"}`,
			"activity.window_activity.type":     "43", "activity.window_activity.input_type": "1",
			"activity.window_activity.file_name": `"index (3).html"`, "activity.window_activity.file_path": `"%USERPROFILE%\\Desktop\\"`,
			"activity.window_activity.location": "[]", "activity.window_activity.parameters": "[]",
			"activity.window_activity.element": "null", "activity.window_activity.element_json": "null",
			"activity.extra_json": "null", "envelope.event_type": `"43"`,
		}},
		{"synthetic_invoke", wsEvent(manifest, "inspector", "1.0.9", "activity", synthetic[0]), "52", time.Unix(1692694200, 5e6), map[string]string{
			"activity.cpu_loading":                             "7.5",
			"activity.window_activity.location":                `[{"name":"Book1 - Excel","type":1},{"name":"Ribbon","type":21}]`,
			"activity.window_activity.element":                 `{"hotkey_name":"Ctrl+S","name":"Save","type":10}`,
			"activity.window_activity.element_json":            `"{\"hotkey_name\":\"Ctrl+S\",\"name\":\"Save\",\"type\":10}"`,
			"activity.window_activity.parameters.0":            `{"is_current":1,"name":"excel_sheet","type":57,"value":"6f1ed002ab5595859014ebf0951522d9"}`,
			"activity.window_activity.parameters.1.is_current": "0",
		}},
		{"synthetic_unknown_shapes", wsEvent(manifest, "inspector", "", "activity", synthetic[1]), "40", time.Unix(1692694260, 999e6), map[string]string{
			"file_version":                     "null",
			"activity.window_activity.element": "null", "activity.window_activity.element_json": `"\"unexpected-shape\""`,
			"activity.window_activity.parameters.0.is_current": "1",
			"activity.extra_json":                              `"{\"screen\":2,\"window_activity\":{\"new_in_agent_3\":{\"x\":1}}}"`,
		}},
		{"synthetic_minimal", wsEvent(manifest, "", "", "activity", synthetic[2]), "1", time.Unix(1692694300, 0), map[string]string{
			"activity.time_ms": "null", "activity.window_activity.type": "1", "activity.window_activity.app_info": "null",
			"activity.window_activity.location": "[]",
		}},
		{"no_window_activity", wsEvent(manifest, "", "", "activity", `{"time":1692694300,"time_ms":1}`), "activity", time.Unix(1692694300, 1e6), map[string]string{
			"activity.window_activity": "null",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, js := famAdapt(t, event.Workstation, Workstation{}.Adapt, famInput(t, tc.raw))
			if out.EventType != tc.typ || out.Unknown || len(out.Quirks) != 0 {
				t.Errorf("EventType %q Unknown %v Quirks %q, want %q", out.EventType, out.Unknown, out.Quirks, tc.typ)
			}
			if !out.ClientTime.Equal(tc.clientTime) {
				t.Errorf("ClientTime = %v, want %v", out.ClientTime, tc.clientTime)
			}
			famExpect(t, js, manifestWant)
			famExpect(t, js, tc.want)
		})
	}
}

func TestWorkstationPathsAgree(t *testing.T) {
	// The generic endpoint and the archive endpoint's helpers build
	// identical records.
	manifest, docActivity, version := wsDocs(t)
	in := famInput(t, wsEvent(manifest, "inspector", version, "activity", docActivity))
	_, generic := famAdapt(t, event.Workstation, Workstation{}.Adapt, in)

	mo, _ := famDecode([]byte(manifest))
	man, rej := ParseWorkstationManifest(mo)
	if rej != nil {
		t.Fatal(rej)
	}
	entry, _ := famDecode([]byte(docActivity))
	archive, rej := Workstation{}.Activity(man, "inspector", version, entry)
	if rej != nil {
		t.Fatal(rej)
	}
	if js := mustEncode(t, event.Workstation, archive); js != generic {
		t.Errorf("archive path:\n%s\ngeneric path:\n%s", js, generic)
	}

	line := "PID=6556 TID=17352 important main Service started, version = 2.14.3"
	_, generic = famAdapt(t, event.Workstation, Workstation{}.Adapt,
		famInput(t, wsEvent(manifest, "service", "1.0.0", "log", `{"line":"`+line+`","line_no":2}`)))
	l, err := ParseLogLine(line)
	if err != nil {
		t.Fatal(err)
	}
	l.LineNo = 2
	archive, rej = Workstation{}.Log(man, "service", "1.0.0", l)
	if rej != nil {
		t.Fatal(rej)
	}
	if js := mustEncode(t, event.Workstation, archive); js != generic {
		t.Errorf("archive path:\n%s\ngeneric path:\n%s", js, generic)
	}
}

func TestParseLogLine(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       LogLine
	}{
		{"bare_function", `PID=9212 TID=23400 important Start Inspector started, version = 2.14.3, user: jdoe@CORP.OPERAVIX.COM, settings: {"monitoring_status":2,"timetracking_status":false,"logger":{"level":"LEVEL_ERROR"}}, loggerSetting: LEVEL_ERROR`,
			LogLine{PID: 9212, TID: 23400, Level: "important", Method: "Start",
				Message: `Inspector started, version = 2.14.3, user: jdoe@CORP.OPERAVIX.COM, settings: {"monitoring_status":2,"timetracking_status":false,"logger":{"level":"LEVEL_ERROR"}}, loggerSetting: LEVEL_ERROR`}},
		{"component_method", "PID=9212 TID=23400 important system_info::GetUserAdGuid user sid = S-1-5-21-580362855-3340923925-1044332590-1417",
			LogLine{PID: 9212, TID: 23400, Level: "important", Component: "system_info", Method: "GetUserAdGuid", Message: "user sid = S-1-5-21-580362855-3340923925-1044332590-1417"}},
		{"continuation", "PID=9212 TID=23400 important ModuleManager::LoadModule module 'C:\\Program\nFiles\\OperavixAgent\\mod_extended_monitoring.dll' loaded",
			LogLine{PID: 9212, TID: 23400, Level: "important", Component: "ModuleManager", Method: "LoadModule", Message: "module 'C:\\Program\nFiles\\OperavixAgent\\mod_extended_monitoring.dll' loaded"}},
		{"anonymous_namespace", "PID=9212 TID=1484 important `anonymous-namespace'::PackActivity Timezone init id = Europe/Moscow, offsetInSec = 10800",
			LogLine{PID: 9212, TID: 1484, Level: "important", Component: "`anonymous-namespace'", Method: "PackActivity", Message: "Timezone init id = Europe/Moscow, offsetInSec = 10800"}},
		{"lambda_operator", "PID=6556 TID=17352 important RunAsService::<lambda_6f040d3ff28f03704b9026c4883d74c7>::operator () Session event WTS_SESSION_LOCK, sessionId = 14",
			LogLine{PID: 6556, TID: 17352, Level: "important", Component: "RunAsService::<lambda_6f040d3ff28f03704b9026c4883d74c7>", Method: "operator ()", Message: "Session event WTS_SESSION_LOCK, sessionId = 14"}},
		{"main", "PID=660 TID=5172 important main Timetracking started, version = 2.14.3, user: client02@TEST.OPERAVIX.RU, loggerSetting: LEVEL_ERROR",
			LogLine{PID: 660, TID: 5172, Level: "important", Method: "main", Message: "Timetracking started, version = 2.14.3, user: client02@TEST.OPERAVIX.RU, loggerSetting: LEVEL_ERROR"}},
		{"russian", "PID=660 TID=5172 important IdleManager::ProcessResumeInfo Save on server user activity = Пт ноя 26 11:33:32 2021",
			LogLine{PID: 660, TID: 5172, Level: "important", Component: "IdleManager", Method: "ProcessResumeInfo", Message: "Save on server user activity = Пт ноя 26 11:33:32 2021"}},
		{"no_message", "PID=1 TID=2 error Foo::Bar",
			LogLine{PID: 1, TID: 2, Level: "error", Component: "Foo", Method: "Bar"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLogLine(tc.line)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"", `{"version":"1.0.0"}`, "PID=x TID=1 a b", "PID=1 TID= a b", "PID=1 TID=2", "PID=1 TID=2 important", "PID=0TID=0 A B m", "PID=1 TID=2 important\nmain m", "PID=99999999999999999999 TID=1 a b", "Files\\OperavixAgent\\x.dll' loaded"} {
		t.Run("bad/"+bad, func(t *testing.T) {
			if l, err := ParseLogLine(bad); !errors.Is(err, ErrNotLogLine) {
				t.Errorf("ParseLogLine(%q) = %+v, %v; want ErrNotLogLine", bad, l, err)
			}
		})
	}
}

func TestSplitLogLines(t *testing.T) {
	got := SplitLogLines("{\"version\":\"1.0.0\"}\r\nPID=1 TID=2 x A::B one\r\nwrapped\r\n\r\nPID=1 TID=2 x C two\n\n")
	want := []string{`{"version":"1.0.0"}`, "PID=1 TID=2 x A::B one\nwrapped", "PID=1 TID=2 x C two"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestWorkstationLogFiles(t *testing.T) {
	manifest, _, _ := wsDocs(t)
	mo, _ := famDecode([]byte(manifest))
	man, rej := ParseWorkstationManifest(mo)
	if rej != nil {
		t.Fatal(rej)
	}
	for _, tc := range []struct {
		file, archive string
		entries       int
		check         map[int]map[string]string // entry index → expectations
	}{
		{"inspector_log.json", "inspector", 12, map[int]map[string]string{
			0:  {"log.pid": "9212", "log.tid": "23400", "log.level": `"important"`, "log.component": "null", "log.method": `"Start"`, "log.line_no": "2"},
			3:  {"log.component": `"ModuleManager"`, "log.message": `"module 'C:\\Program\nFiles\\OperavixAgent\\mod_extended_monitoring.dll' loaded"`, "log.line_no": "5"},
			4:  {"log.method": `"Start"`, "log.component": `"Controller"`, "log.line_no": "7"},
			11: {"log.component": "\"`anonymous-namespace'\"", "log.method": `"PackActivity"`},
		}},
		{"service_log.json", "service", 6, map[int]map[string]string{
			0: {"log.pid": "6556", "log.method": `"main"`, "log.message": `"Service started, version = 2.14.3"`},
			2: {"log.component": `"RunAsService::\u003clambda_6f040d3ff28f03704b9026c4883d74c7\u003e"`, "log.method": `"operator ()"`},
		}},
		{"timetracking_log.json", "timetracking", 3, map[int]map[string]string{
			1: {"log.message": `"Save on server user activity = Пт ноя 26 11:33:32 2021"`, "archive_type": `"timetracking"`, "manifest.type": `"inspector"`},
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			version, lines, bad := ParseLogFile(famRead(t, "workstation/"+tc.file))
			if version != "1.0.0" || len(bad) != 0 || len(lines) != tc.entries {
				t.Fatalf("version %q, %d entries, bad %+v; want 1.0.0, %d, none", version, len(lines), bad, tc.entries)
			}
			if n := len(SplitLogLines(famRead(t, "workstation/"+tc.file))); n != tc.entries+1 {
				t.Errorf("SplitLogLines: %d entries, want %d and the header", n, tc.entries)
			}
			for i, l := range lines {
				out, rej := Workstation{}.Log(man, tc.archive, version, l)
				if rej != nil {
					t.Fatal(rej)
				}
				if out.EventType != "log:important" || out.PartitionKey != man.MachineGUID {
					t.Errorf("entry %d: EventType %q PartitionKey %q", i, out.EventType, out.PartitionKey)
				}
				famCheckFieldSet(t, event.Workstation, out)
				js := mustEncode(t, event.Workstation, out)
				famExpect(t, js, map[string]string{"kind": `"log"`, "activity": "null", "file_version": `"1.0.0"`})
				famExpect(t, js, tc.check[i])
			}
		})
	}
}

func TestWorkstationGenericLog(t *testing.T) {
	manifest, _, _ := wsDocs(t)
	out, js := famAdapt(t, event.Workstation, Workstation{}.Adapt, famInput(t, wsEvent(manifest, "service", "", "log",
		`{"pid":6556,"tid":1116,"level":"important","component":"SessionController","method":"StartInspector","message":"Inspector started, sessionId = 14"}`)))
	if out.EventType != "log:important" {
		t.Errorf("EventType = %q", out.EventType)
	}
	famExpect(t, js, map[string]string{
		"log":                  `{"component":"SessionController","level":"important","line_no":null,"message":"Inspector started, sessionId = 14","method":"StartInspector","pid":6556,"tid":1116}`,
		"envelope.client_time": "null",
	})
	out, js = famAdapt(t, event.Workstation, Workstation{}.Adapt, famInput(t, wsEvent(manifest, "", "", "log", `{"message":"only a message"}`)))
	if out.EventType != "log" {
		t.Errorf("EventType = %q", out.EventType)
	}
	famExpect(t, js, map[string]string{"log.pid": "null", "log.level": "null", "archive_type": `"inspector"`})
}

func TestWorkstationReject(t *testing.T) {
	manifest, docActivity, _ := wsDocs(t)
	noGUID := strings.Replace(manifest, `"machine_guid"`, `"machine_uid"`, 1)
	for _, tc := range []struct {
		name, raw, code, field string
	}{
		{"missing_machine_guid", wsEvent(noGUID, "", "", "activity", docActivity), event.ReasonMissingField, "manifest.machine_guid"},
		{"empty_machine_guid", wsEvent(`{"machine_guid":""}`, "", "", "activity", docActivity), event.ReasonMissingField, "manifest.machine_guid"},
		{"missing_manifest", `{"activity":` + docActivity + `}`, event.ReasonMissingField, "manifest"},
		{"manifest_not_object", `{"manifest":"m","activity":{}}`, event.ReasonInvalidField, "manifest"},
		{"bad_timezone_sec", wsEvent(`{"machine_guid":"g","user":{"timezone_sec":"+03:00"}}`, "", "", "activity", docActivity), event.ReasonInvalidField, "manifest.user.timezone_sec"},
		{"neither", wsEvent(manifest, "", "", "other", "{}"), event.ReasonMissingField, "activity"},
		{"both", strings.TrimSuffix(wsEvent(manifest, "", "", "activity", docActivity), "}") + `,"log":{"message":"m"}}`, event.ReasonInvalidField, "log"},
		{"activity_no_time", wsEvent(manifest, "", "", "activity", `{"time_ms":1}`), event.ReasonMissingField, "activity.time"},
		{"activity_time_string", wsEvent(manifest, "", "", "activity", `{"time":"1692694112"}`), event.ReasonInvalidField, "activity.time"},
		{"code_string", wsEvent(manifest, "", "", "activity", `{"time":1,"window_activity":{"type":"43"}}`), event.ReasonInvalidField, "activity.window_activity.type"},
		{"location_bad", wsEvent(manifest, "", "", "activity", `{"time":1,"window_activity":{"location":[{"name":"a"},{"type":"x"}]}}`), event.ReasonInvalidField, "activity.window_activity.location[1].type"},
		{"parameters_bad", wsEvent(manifest, "", "", "activity", `{"time":1,"window_activity":{"parameters":[3]}}`), event.ReasonInvalidField, "activity.window_activity.parameters[0]"},
		{"log_no_message", wsEvent(manifest, "", "", "log", `{"pid":1}`), event.ReasonMissingField, "log.message"},
		{"log_bad_line", wsEvent(manifest, "", "", "log", `{"line":"Files\\x.dll loaded"}`), event.ReasonInvalidField, "log.line"},
		{"log_pid_string", wsEvent(manifest, "", "", "log", `{"pid":"1","message":"m"}`), event.ReasonInvalidField, "log.pid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			famReject(t, Workstation{}.Adapt, famInput(t, tc.raw), tc.code, tc.field)
		})
	}
}

func FuzzWorkstationAdapt(f *testing.F) {
	manifest, docActivity, version := wsDocs(f)
	seeds := []string{
		wsEvent(manifest, "inspector", version, "activity", docActivity),
		wsEvent(manifest, "service", "1.0.0", "log", `{"pid":6556,"tid":1116,"level":"important","component":"A","method":"B","message":"m"}`),
		wsEvent(`{"machine_guid":"g"}`, "", "", "log", `{"line":"PID=1 TID=2 important main started"}`),
	}
	for _, s := range famLines(f, "workstation/synthetic_activity.jsonl") {
		seeds = append(seeds, wsEvent(manifest, "", "", "activity", s))
	}
	famFuzz(f, event.Workstation, Workstation{}.Adapt, seeds)
}

func FuzzParseLogLine(f *testing.F) {
	for _, file := range []string{"inspector_log.json", "service_log.json", "timetracking_log.json"} {
		for _, e := range SplitLogLines(famRead(f, "workstation/"+file)) {
			f.Add(e)
		}
	}
	f.Add("PID=1 TID=2 x operator (")
	f.Fuzz(func(t *testing.T, line string) {
		l, err := ParseLogLine(line)
		if err != nil {
			return
		}
		if l.PID < 0 || l.TID < 0 || l.Level == "" || l.Method == "" {
			t.Fatalf("ParseLogLine(%q) = %+v", line, l)
		}
		// Re-rendering the parts gives the line back, up to blanks between
		// the leading parts.
		fn := l.Method
		if l.Component != "" {
			fn = l.Component + "::" + l.Method
		}
		if !strings.HasSuffix(line, l.Message) || !strings.Contains(line, fn) {
			t.Fatalf("parts of %q do not add up: %+v", line, l)
		}
		_ = SplitLogLines(line)
	})
}

func BenchmarkWorkstationAdapt(b *testing.B) {
	manifest, docActivity, version := wsDocs(b)
	b.Run("activity", func(b *testing.B) {
		famBench(b, event.Workstation, Workstation{}.Adapt, wsEvent(manifest, "inspector", version, "activity", docActivity))
	})
	b.Run("log_line", func(b *testing.B) {
		famBench(b, event.Workstation, Workstation{}.Adapt, wsEvent(manifest, "service", "1.0.0", "log",
			`{"line":"PID=6556 TID=17352 important RunAsService::<lambda_6f040d3ff28f03704b9026c4883d74c7>::operator () Session event WTS_SESSION_LOCK, sessionId = 14"}`))
	})
}
