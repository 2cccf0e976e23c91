package native

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"mime/multipart"
	"strings"
	"testing"

	"golang.org/x/text/encoding/charmap"

	"github.com/sluicehq/sluice/pkg/event"
)

// zipEntry is one file of an archive built by a test.
type zipEntry struct {
	name string
	data []byte
}

func buildZip(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for _, e := range entries {
		f, err := w.Create(e.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// manifestOfType is the vendor's manifest example with another type.
func manifestOfType(t testing.TB, typ string) []byte {
	t.Helper()
	m := readFile(t, "testdata/workstation/docs_manifest_example.json")
	return bytes.Replace(m, []byte(`"type": "inspector"`), []byte(`"type": "`+typ+`"`), 1)
}

// inspectorActivity is the vendor's activity.json example as printed (its
// record lacks a comma), followed by synthetic entries: a record with a
// UI element, a line that is not JSON, a record no comma repair fixes, and
// a minimal record.
func inspectorActivity(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	b.Write(readFile(t, "testdata/workstation/docs_activity_example.json"))
	b.WriteString(`{"time":1692694200,"time_ms":5,"cpu_loading":7.5,"memory_loading":41,"window_activity":{"app_info":{"program_name":"Microsoft Excel","version":"16.0.17029","executable_path":"%ProgramFiles%\\Microsoft Office\\root\\Office16\\EXCEL.EXE"},"type":52,"input_type":1,"main_window":"Book1 - Excel","domain":"","url_path":"","tab":"Sheet1","file_name":"Book1.xlsx","file_path":"%USERPROFILE%\\Documents\\","location":[{"name":"Book1 - Excel","type":1}],"element":{"name":"Save","type":10,"hotkey_name":"Ctrl+S"},"parameters":[{"name":"excel_sheet","value":"6f1ed002ab5595859014ebf0951522d9","type":57,"is_current":1}]}}` + "\n")
	b.WriteString("this line is not JSON\n")
	b.WriteString(`{"time":1692694400,"cpu_loading":12%}` + "\n")
	b.WriteString(`{"time":1692694500,"window_activity":{"type":95}}` + "\n")
	return b.Bytes()
}

type archiveAnswer struct {
	Accepted    int    `json:"accepted"`
	Rejected    int    `json:"rejected"`
	MachineGUID string `json:"machine_guid"`
	ArchiveType string `json:"archive_type"`
	Files       []struct {
		Name     string `json:"name"`
		Version  string `json:"version"`
		Accepted int    `json:"accepted"`
		Rejected int    `json:"rejected"`
		Errors   []struct {
			Index   int    `json:"index"`
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	} `json:"files"`
	Ignored []string `json:"ignored_entries"`
	Error   string   `json:"error"`
	Message string   `json:"message"`
}

func (e *env) archive(body []byte, hdr map[string]string) (int, archiveAnswer) {
	e.t.Helper()
	if hdr == nil {
		hdr = map[string]string{}
	}
	if _, ok := hdr["Authorization"]; !ok {
		hdr["Authorization"] = "Bearer " + serverKey
	}
	if _, ok := hdr["Content-Type"]; !ok {
		hdr["Content-Type"] = "application/zip"
	}
	r := e.post("/v1/workstation/archives", body, hdr)
	var a archiveAnswer
	r.json(e.t, &a)
	return r.status, a
}

// TestWorkstationArchives sends the three archive types built from the
// vendor's examples (seed 004): inspector (as multipart), service and
// timetracking (raw bodies; the timetracking log has one CP1251 line).
func TestWorkstationArchives(t *testing.T) {
	e := newEnv(t, nil)

	inspector := buildZip(t,
		zipEntry{"manifest.json", readFile(t, "testdata/workstation/docs_manifest_example.json")},
		zipEntry{"activity.json", inspectorActivity(t)},
		zipEntry{"inspector_log.json", readFile(t, "testdata/workstation/inspector_log.json")},
		zipEntry{"readme.txt", []byte("not an agent file")},
	)
	var mb bytes.Buffer
	mw := multipart.NewWriter(&mb)
	_ = mw.WriteField("comment", "agent upload")
	fw, _ := mw.CreateFormFile("archive", "c-066-test_johndoe@CORP_20230822101500.123.zip")
	_, _ = fw.Write(inspector)
	_ = mw.Close()
	st, a := e.archive(mb.Bytes(), map[string]string{"Content-Type": mw.FormDataContentType()})
	if st != 207 || a.MachineGUID != "3c830f47-9fcd-4a48-a568-750d8b179987" || a.ArchiveType != "inspector" || len(a.Files) != 2 {
		t.Fatalf("inspector: %d %+v", st, a)
	}
	act, ilog := a.Files[0], a.Files[1]
	if act.Name != "activity.json" || act.Version != "1.0.9" || act.Accepted != 3 || act.Rejected != 2 {
		t.Errorf("activity.json: %+v", act)
	}
	for _, er := range act.Errors {
		if er.Code != event.ReasonInvalidJSON || !strings.Contains(er.Message, "activity.json entry at line") {
			t.Errorf("activity error %+v", er)
		}
	}
	if ilog.Name != "inspector_log.json" || ilog.Version != "1.0.0" || ilog.Accepted != 12 || ilog.Rejected != 0 {
		t.Errorf("inspector_log.json: %+v", ilog)
	}
	if len(a.Ignored) != 1 || !strings.HasPrefix(a.Ignored[0], "readme.txt") {
		t.Errorf("ignored %v", a.Ignored)
	}

	service := buildZip(t,
		zipEntry{"agent/manifest.json", manifestOfType(t, "service")},
		zipEntry{"agent/service_log.json", readFile(t, "testdata/workstation/service_log.json")},
	)
	if st, a := e.archive(service, map[string]string{"Content-Type": "application/octet-stream"}); st != 200 || a.Accepted != 6 || a.ArchiveType != "service" {
		t.Fatalf("service: %d %+v", st, a)
	}

	// The timetracking log as a Russian Windows agent may write it: CP1251.
	tt := readFile(t, "testdata/workstation/timetracking_log.json")
	cp, err := charmap.Windows1251.NewEncoder().Bytes(tt)
	if err != nil {
		t.Fatal(err)
	}
	timetracking := buildZip(t,
		zipEntry{"manifest.json", manifestOfType(t, "timetracking")},
		zipEntry{"timetracking_log.json", cp},
	)
	if st, a := e.archive(timetracking, nil); st != 200 || a.Accepted != 3 {
		t.Fatalf("timetracking: %d %+v", st, a)
	}

	recs := e.raw(event.Workstation, 3+12+6+3)
	kinds := map[string]int{}
	for _, r := range recs {
		kinds[fmt.Sprint(field(r.native, "archive_type"), "/", field(r.native, "kind"))]++
		if field(r.native, "manifest.machine_guid") != "3c830f47-9fcd-4a48-a568-750d8b179987" || r.key != "3c830f47-9fcd-4a48-a568-750d8b179987" {
			t.Errorf("record without its manifest: %s", r.json)
		}
		if field(r.native, "manifest.user.login") != "johndoe" {
			t.Errorf("manifest user %v", field(r.native, "manifest.user"))
		}
		q, _ := field(r.native, "envelope.quirks").([]any)
		switch {
		case field(r.native, "activity.time") == int64(1692694112):
			if fmt.Sprint(q) != "[json_missing_comma]" || field(r.native, "activity.window_activity.input_type") != int32(1) ||
				field(r.native, "activity.window_activity.main_window") != "" || field(r.native, "envelope.event_type") != "43" {
				t.Errorf("vendor example record: %s", r.json)
			}
		case field(r.native, "activity.time") == int64(1692694200):
			if field(r.native, "activity.window_activity.element.name") != "Save" || field(r.native, "activity.window_activity.type") != int32(52) {
				t.Errorf("element record: %s", r.json)
			}
		case field(r.native, "log.method") == "ProcessResumeInfo" && strings.HasPrefix(fmt.Sprint(field(r.native, "log.message")), "Save on server"):
			if field(r.native, "log.message") != "Save on server user activity = Пт ноя 26 11:33:32 2021" || fmt.Sprint(q) != "[text_windows_1251]" {
				t.Errorf("CP1251 line: %s", r.json)
			}
		case field(r.native, "log.method") == "LoadModule" && strings.Contains(fmt.Sprint(field(r.native, "log.message")), "Program\nFiles"):
			if field(r.native, "log.line_no") != int64(5) || field(r.native, "file_version") != "1.0.0" {
				t.Errorf("continuation line: %s", r.json)
			}
		}
	}
	want := map[string]int{"inspector/activity": 3, "inspector/log": 12, "service/log": 6, "timetracking/log": 3}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Errorf("records %v, want %v", kinds, want)
	}
	dl := e.dlq(2)
	for _, d := range dl {
		raw, _ := d.native["raw"].([]byte)
		if !bytes.Equal(raw, []byte("this line is not JSON")) && !bytes.Equal(raw, []byte(`{"time":1692694400,"cpu_loading":12%}`)) {
			t.Errorf("dead letter raw %q", raw)
		}
	}
}

// TestWorkstationEncodings rejects non-UTF-8 entries one by one when no
// text encoding is configured, and reads UTF-8 BOM and UTF-16 files.
func TestWorkstationEncodings(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Workstation.TextEncoding = "none" })
	tt := readFile(t, "testdata/workstation/timetracking_log.json")
	cp, _ := charmap.Windows1251.NewEncoder().Bytes(tt)
	activity := []byte("{\"version\":\"1.0.9\"}\n{\"time\":1,\"window_activity\":{\"main_window\":\"\xcf\xf0\xe8\xe2\xe5\xf2\"}}\n{\"time\":2}\n")
	st, a := e.archive(buildZip(t,
		zipEntry{"manifest.json", manifestOfType(t, "timetracking")},
		zipEntry{"timetracking_log.json", cp},
		zipEntry{"activity.json", activity},
	), nil)
	if st != 207 || a.Accepted != 3 || a.Rejected != 2 {
		t.Fatalf("%d %+v", st, a)
	}
	for _, f := range a.Files {
		for _, er := range f.Errors {
			if er.Code != "invalid_encoding" {
				t.Errorf("%s: %+v", f.Name, er)
			}
		}
	}
	e.dlq(2)

	// UTF-8 with a BOM, and UTF-16LE with one.
	utf16 := []byte{0xFF, 0xFE}
	for _, r := range string(tt) {
		utf16 = append(utf16, byte(r), byte(r>>8))
	}
	st, a = e.archive(buildZip(t,
		zipEntry{"manifest.json", append([]byte{0xEF, 0xBB, 0xBF}, manifestOfType(t, "timetracking")...)},
		zipEntry{"timetracking_log.json", utf16},
	), nil)
	if st != 200 || a.Accepted != 3 {
		t.Fatalf("BOM and UTF-16: %d %+v", st, a)
	}
}

// TestWorkstationArchiveLimits refuses hostile and malformed archives.
func TestWorkstationArchiveLimits(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Workstation.MaxEntries = 4
		c.Workstation.MaxUncompressedBytes = 2 << 20
	})
	man := zipEntry{"manifest.json", readFile(t, "testdata/workstation/docs_manifest_example.json")}
	// 2.5 MB of four random letters: inflates about 4 times, past the
	// 2 MiB budget, and fits the 1 MiB body limit compressed.
	big := make([]byte, 2500<<10)
	_, _ = rand.Read(big)
	for i := range big {
		big[i] = 'a' + big[i]&3
	}

	// A zip that declares 10 bytes but inflates to 4 MiB.
	var lie bytes.Buffer
	zw := zip.NewWriter(&lie)
	f, _ := zw.Create("manifest.json")
	_, _ = f.Write(man.data)
	zeros := make([]byte, 4<<20)
	var comp bytes.Buffer
	fl, _ := flate.NewWriter(&comp, flate.BestCompression)
	_, _ = fl.Write(zeros)
	_ = fl.Close()
	raw, _ := zw.CreateRaw(&zip.FileHeader{Name: "activity.json", Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(zeros[:10]),
		CompressedSize64: uint64(comp.Len()), UncompressedSize64: 10})
	_, _ = raw.Write(comp.Bytes())
	_ = zw.Close()

	// An entry flagged as encrypted.
	var enc bytes.Buffer
	zw = zip.NewWriter(&enc)
	_, _ = zw.Create("manifest.json")
	h := &zip.FileHeader{Name: "activity.json", Method: zip.Store, Flags: 0x1}
	ew, _ := zw.CreateHeader(h)
	_, _ = ew.Write([]byte(`{"time":1}`))
	_ = zw.Close()

	for _, tc := range []struct {
		name   string
		body   []byte
		hdr    map[string]string
		status int
		code   string
	}{
		{"not a zip", []byte("PK? no"), nil, 400, "invalid_archive"},
		{"too many entries", buildZip(t, man, zipEntry{"a", nil}, zipEntry{"b", nil}, zipEntry{"c", nil}, zipEntry{"d", nil}), nil, 413, "too_many_entries"},
		{"path traversal", buildZip(t, man, zipEntry{"../activity.json", []byte("{}")}), nil, 400, "unsafe_archive_path"},
		{"absolute path", buildZip(t, zipEntry{"/etc/manifest.json", man.data}), nil, 400, "unsafe_archive_path"},
		{"drive letter", buildZip(t, zipEntry{"C:\\x\\manifest.json", man.data}), nil, 400, "unsafe_archive_path"},
		{"backslash traversal", buildZip(t, zipEntry{"x\\..\\..\\manifest.json", man.data}), nil, 400, "unsafe_archive_path"},
		{"ratio bomb", buildZip(t, man, zipEntry{"activity.json", make([]byte, 3<<19)}), nil, 413, "archive_ratio"},
		{"too large", buildZip(t, man, zipEntry{"activity.json", big}), nil, 413, "archive_too_large"},
		{"lying size header", lie.Bytes(), nil, 400, "invalid_archive"},
		{"encrypted", enc.Bytes(), nil, 400, "encrypted_archive"},
		{"duplicate", buildZip(t, man, zipEntry{"manifest.json", man.data}), nil, 400, "duplicate_entry"},
		{"two folders", buildZip(t, zipEntry{"a/manifest.json", man.data}, zipEntry{"b/activity.json", []byte("{}")}), nil, 400, "ambiguous_archive"},
		{"only nested", buildZip(t, zipEntry{"a/b/manifest.json", man.data}), nil, 400, "missing_manifest"},
		{"nested zip", buildZip(t, zipEntry{"inner.zip", buildZip(t, man)}), nil, 400, "missing_manifest"},
		{"bad manifest", buildZip(t, zipEntry{"manifest.json", []byte(`{"version":"1.0.4","user":{}}`)}), nil, 400, "invalid_manifest"},
		{"manifest not JSON", buildZip(t, zipEntry{"manifest.json", []byte(`machine_guid=1`)}), nil, 400, "invalid_manifest"},
		{"no key", buildZip(t, man), map[string]string{"Authorization": ""}, 401, "missing_key"},
		{"wrong type", buildZip(t, man), map[string]string{"Content-Type": "text/csv"}, 415, "unsupported_media_type"},
		{"multipart without archive", []byte("--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--x--\r\n"), map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, 400, "missing_archive"},
		{"body over limit", append(buildZip(t, man), make([]byte, 1<<20)...), nil, 413, "body_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := tc.hdr
			if hdr != nil && hdr["Authorization"] == "" {
				if _, set := hdr["Authorization"]; set {
					hdr = map[string]string{"Authorization": "Bearer", "Content-Type": "application/zip"}
				}
			}
			st, a := e.archive(tc.body, hdr)
			if st != tc.status || a.Error != tc.code {
				t.Fatalf("%d %s %s, want %d %s", st, a.Error, a.Message, tc.status, tc.code)
			}
		})
	}
	// A manifest-only archive is fine (no records).
	if st, a := e.archive(buildZip(t, zipEntry{"x/manifest.json", man.data}, zipEntry{"x/", nil}), nil); st != 200 || a.Accepted != 0 {
		t.Errorf("manifest only: %d %+v", st, a)
	}
	e.noMore(event.RawTopic(event.Workstation), 0)
}

func TestSplitActivity(t *testing.T) {
	for _, tc := range []struct {
		in      string
		version string
		n       int
		bad     []int
	}{
		{"{\"version\":\"1.0.9\"}\n{\"time\":1}\n{\"time\":2}", "1.0.9", 2, nil},
		{"{\"version\":\"1.0.9\"}\n[{\"time\":1},\n{\"time\":2}]\n", "1.0.9", 2, nil},
		{"{\"time\":1},{\"time\":2}", "", 2, nil},
		{"{\"version\":\"1\"}\noops\n{\"time\":1}\n{\"time\":", "1", 3, []int{0, 2}},
		{"{\"a\":\"}\\\"{\"}", "", 1, nil},
		{"", "", 0, nil},
	} {
		v, es := splitActivity([]byte(tc.in))
		var bad []int
		for i, e := range es {
			if e.err != "" {
				bad = append(bad, i)
			}
		}
		if v != tc.version || len(es) != tc.n || fmt.Sprint(bad) != fmt.Sprint(tc.bad) {
			t.Errorf("%q: version %q, %d entries, bad %v", tc.in, v, len(es), bad)
		}
	}
}

func TestRepairJSON(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		quirks  string
		ok      bool
	}{
		{`{"a":1}`, `{"a":1}`, "[]", true},
		{"{\"a\":1\n\"b\":2}", "{\"a\":1\n,\"b\":2}", "[json_missing_comma]", true},
		{`{"a":[1 2 3]}`, `{"a":[1 ,2 ,3]}`, "[json_missing_comma]", true},
		{`{"a":{"x":1}"b":"y"}`, `{"a":{"x":1},"b":"y"}`, "[json_missing_comma]", true},
		{`{"a":1,}`, `{"a":1}`, "[json_trailing_comma]", true},
		{`[1,2,]`, `[1,2]`, "[json_trailing_comma]", true},
		{`{"a":"x\"y" "b":null}`, `{"a":"x\"y" ,"b":null}`, "[json_missing_comma]", true},
		{`{"a":[] "b":{}}`, `{"a":[] ,"b":{}}`, "[json_missing_comma]", true},
		{`{"a":1%}`, "", "", false},
		{`{"a" 1}`, "", "", false},
		{`{"a":1]`, "", "", false},
		{`{"a":"open`, "", "", false},
		{`{"a":1} x`, "", "", false},
		{`{"a":tru}`, "", "", false},
		{`{a:1}`, "", "", false},
	} {
		out, q, ok := repairJSON([]byte(tc.in))
		if ok != tc.ok || (ok && (string(out) != tc.out || fmt.Sprint(q) != tc.quirks)) {
			t.Errorf("repairJSON(%q) = %q %v %v", tc.in, out, q, ok)
		}
		if ok && !json.Valid(out) {
			t.Errorf("repairJSON(%q) is not valid JSON: %q", tc.in, out)
		}
	}
}

// TestWorkstationLargeActivity sends an activity file with more entries
// than one request may hold (limits.max_events): it is ingested in chunks.
func TestWorkstationLargeActivity(t *testing.T) {
	e := newEnv(t, nil)
	var b bytes.Buffer
	b.WriteString(`{"version":"1.0.9"}` + "\n")
	n := e.limits.MaxEvents*2 + 500
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"time":%d,"time_ms":%d,"window_activity":{"type":95,"input_type":1}}`+"\n", 1692694112+i, i%1000)
	}
	b.WriteString("garbage\n")
	st, a := e.archive(buildZip(t,
		zipEntry{"manifest.json", readFile(t, "testdata/workstation/docs_manifest_example.json")},
		zipEntry{"activity.json", b.Bytes()},
	), nil)
	if st != 207 || a.Accepted != n || a.Rejected != 1 || len(a.Files) != 1 || a.Files[0].Errors[0].Index != n {
		t.Fatalf("%d accepted %d rejected %d %+v", st, a.Accepted, a.Rejected, a.Files)
	}
	e.raw(event.Workstation, n)
}
