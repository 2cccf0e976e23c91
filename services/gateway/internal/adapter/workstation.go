package adapter

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
)

// Workstation adapts Operavix/MUAM workstation-agent records (seed 004) to
// schemas/workstation: one record per activity.json entry or per log line,
// each carrying its archive's manifest.
//
// Adapt serves the generic endpoint, where each event is
//
//	{"manifest": {...}, "archive_type": "...", "file_version": "...", "activity": {...}}
//	{"manifest": {...}, "log": {"pid", "tid", "level", "component", "method", "message", "line_no"}}
//
// (a log may instead give the agent's text as "line"). The archive endpoint
// parses manifest.json once with ParseWorkstationManifest and builds each
// record with Activity or Log; both paths build records through the same
// function, so they are identical.
type Workstation struct{}

// Family implements Adapter.
func (Workstation) Family() event.Family { return event.Workstation }

const wsNS = "sluice.workstation."

var (
	wsManifestKnown = newKeySet("version", "machine_guid", "user", "computer", "agent", "type")
	wsActivityKnown = newKeySet("time", "time_ms", "cpu_loading", "memory_loading", "window_activity")
	wsWindowKnown   = newKeySet("app_info", "type", "input_type", "main_window", "domain", "url_path", "tab",
		"file_name", "file_path", "location", "element", "parameters")
)

// Adapt implements Adapter.
func (w Workstation) Adapt(in *Input) (*Output, *event.Rejection) {
	m := in.Value
	mo, ok, rej := getObject(m, "manifest", "manifest")
	if rej != nil {
		return nil, rej
	}
	if !ok {
		return nil, event.Reject(event.ReasonMissingField, "manifest", "is required")
	}
	man, rej := ParseWorkstationManifest(mo)
	if rej != nil {
		return nil, rej
	}
	archiveType, _, rej := getString(m, "archive_type", "archive_type")
	if rej != nil {
		return nil, rej
	}
	fileVersion, _, rej := getString(m, "file_version", "file_version")
	if rej != nil {
		return nil, rej
	}
	act, hasAct, rej := getObject(m, "activity", "activity")
	if rej != nil {
		return nil, rej
	}
	lo, hasLog, rej := getObject(m, "log", "log")
	if rej != nil {
		return nil, rej
	}
	switch {
	case hasAct && hasLog:
		return nil, event.Reject(event.ReasonInvalidField, "log", "an event has either activity or log, not both")
	case hasAct:
		return w.Activity(man, archiveType, fileVersion, act)
	case hasLog:
		l, rej := wsLogFromJSON(lo)
		if rej != nil {
			return nil, rej
		}
		return w.Log(man, archiveType, fileVersion, l)
	}
	return nil, event.Reject(event.ReasonMissingField, "activity", "an event needs activity or log")
}

// WorkstationManifest is an archive's parsed manifest.json. Build it once
// per archive; the records built from it share its native value, which
// nobody may modify.
type WorkstationManifest struct {
	MachineGUID string
	// Type is the manifest's archive type: inspector, service or
	// timetracking ("" when absent).
	Type   string
	native map[string]any
}

// ParseWorkstationManifest validates a decoded manifest.json (numbers as
// json.Number). machine_guid is required: it is the partition key.
func ParseWorkstationManifest(mo map[string]any) (*WorkstationManifest, *event.Rejection) {
	guid, ok, rej := getString(mo, "machine_guid", "manifest.machine_guid")
	if rej != nil {
		return nil, rej
	}
	if !ok || guid == "" {
		return nil, event.Reject(event.ReasonMissingField, "manifest.machine_guid", "is required")
	}
	typ, _, rej := getString(mo, "type", "manifest.type")
	if rej != nil {
		return nil, rej
	}
	var r unionReader
	var user, computer, agent any
	if u := r.Object(mo, "manifest", "user"); u != nil {
		user = map[string]any{wsNS + "User": map[string]any{
			"name":         r.String(u, "manifest.user", "name"),
			"login":        r.String(u, "manifest.user", "login"),
			"domain":       r.String(u, "manifest.user", "domain"),
			"ad_guid":      r.String(u, "manifest.user", "ad_guid"),
			"timezone":     r.String(u, "manifest.user", "timezone"),
			"timezone_sec": r.Int(u, "manifest.user", "timezone_sec"),
			"employee_id":  r.Long(u, "manifest.user", "employee_id"),
		}}
	}
	if c := r.Object(mo, "manifest", "computer"); c != nil {
		computer = map[string]any{wsNS + "Computer": map[string]any{
			"name":      r.String(c, "manifest.computer", "name"),
			"domain":    r.String(c, "manifest.computer", "domain"),
			"workgroup": r.String(c, "manifest.computer", "workgroup"),
		}}
	}
	if a := r.Object(mo, "manifest", "agent"); a != nil {
		agent = map[string]any{wsNS + "Agent": map[string]any{
			"version": r.String(a, "manifest.agent", "version"),
		}}
	}
	native := map[string]any{
		"version":      r.String(mo, "manifest", "version"),
		"machine_guid": guid,
		"user":         user,
		"computer":     computer,
		"agent":        agent,
		"type":         avro.OptString(typ),
	}
	if r.rej != nil {
		return nil, r.rej
	}
	extra, err := unionJSON(unknownMembers(mo, wsManifestKnown))
	if err != nil {
		return nil, event.Reject(event.ReasonInvalidField, "manifest", "rendering unknown members: %v", err)
	}
	native["extra_json"] = extra
	return &WorkstationManifest{MachineGUID: guid, Type: typ, native: native}, nil
}

// Activity builds the record of one activity.json entry (decoded, numbers
// as json.Number). archiveType defaults to the manifest's type; fileVersion
// is the version of the file's {"version": ...} header line, or "".
func (Workstation) Activity(man *WorkstationManifest, archiveType, fileVersion string, entry map[string]any) (*Output, *event.Rejection) {
	v, found := entry["time"]
	if !found || v == nil {
		return nil, event.Reject(event.ReasonMissingField, "activity.time", "is required")
	}
	sec, ok := asInt64(v)
	if !ok {
		return nil, wrongType("activity.time", "an integer (epoch seconds)", v)
	}
	var r unionReader
	timeMS := r.Int(entry, "activity", "time_ms")
	act := map[string]any{
		"time":            sec,
		"time_ms":         timeMS,
		"cpu_loading":     r.Double(entry, "activity", "cpu_loading"),
		"memory_loading":  r.Double(entry, "activity", "memory_loading"),
		"window_activity": nil,
	}
	var extra map[string]any
	eventType := "activity"
	if wa := r.Object(entry, "activity", "window_activity"); wa != nil {
		rec, code, hasCode := wsWindowActivity(wa, &r)
		if r.rej != nil {
			return nil, r.rej
		}
		act["window_activity"] = map[string]any{wsNS + "WindowActivity": rec}
		if hasCode {
			eventType = strconv.FormatInt(int64(code), 10)
		}
		if x := unknownMembers(wa, wsWindowKnown); x != nil {
			extra = map[string]any{"window_activity": x}
		}
	}
	if r.rej != nil {
		return nil, r.rej
	}
	for k, v := range entry {
		if _, ok := wsActivityKnown[k]; !ok {
			if extra == nil {
				extra = map[string]any{}
			}
			extra[k] = v
		}
	}
	ej, err := unionJSON(extra)
	if err != nil {
		return nil, event.Reject(event.ReasonInvalidField, "activity", "rendering unknown members: %v", err)
	}
	act["extra_json"] = ej

	out := wsOutput(man, archiveType, fileVersion, "activity", map[string]any{wsNS + "Activity": act}, nil)
	out.EventType = eventType
	var ms int64
	if t, ok := timeMS.(map[string]any); ok {
		ms = int64(t["int"].(int32))
	}
	out.ClientTime = time.Unix(sec, ms*int64(time.Millisecond))
	return out, nil
}

// wsWindowActivity builds the WindowActivity record and returns its event
// code.
func wsWindowActivity(wa map[string]any, r *unionReader) (map[string]any, int32, bool) {
	const p = "activity.window_activity"
	var appInfo any
	if ai := r.Object(wa, p, "app_info"); ai != nil {
		appInfo = map[string]any{wsNS + "AppInfo": map[string]any{
			"program_name":    r.String(ai, p+".app_info", "program_name"),
			"version":         r.String(ai, p+".app_info", "version"),
			"executable_path": r.String(ai, p+".app_info", "executable_path"),
		}}
	}
	code := r.Int(wa, p, "type")
	rec := map[string]any{
		"app_info":     appInfo,
		"type":         code,
		"input_type":   r.Int(wa, p, "input_type"),
		"main_window":  r.String(wa, p, "main_window"),
		"domain":       r.String(wa, p, "domain"),
		"url_path":     r.String(wa, p, "url_path"),
		"tab":          r.String(wa, p, "tab"),
		"file_name":    r.String(wa, p, "file_name"),
		"file_path":    r.String(wa, p, "file_path"),
		"element":      nil,
		"element_json": nil,
	}
	locs := r.Array(wa, p, "location")
	location := make([]any, 0, len(locs))
	for i, l := range locs {
		lm, ok := l.(map[string]any)
		if !ok {
			r.fail("", p+".location["+strconv.Itoa(i)+"]", "an object", l)
			break
		}
		location = append(location, map[string]any{
			"name": r.String(lm, p+".location[]", "name"),
			"type": r.Int(lm, p+".location[]", "type"),
		})
		if r.rej != nil {
			r.rej.Field = strings.Replace(r.rej.Field, "[]", "["+strconv.Itoa(i)+"]", 1)
			break
		}
	}
	rec["location"] = location
	params := r.Array(wa, p, "parameters")
	parameters := make([]any, 0, len(params))
	for i, pv := range params {
		pm, ok := pv.(map[string]any)
		if !ok {
			r.fail("", p+".parameters["+strconv.Itoa(i)+"]", "an object", pv)
			break
		}
		isCurrent := any(nil)
		if b, ok := pm["is_current"].(bool); ok {
			isCurrent = map[string]any{"int": int32(0)}
			if b {
				isCurrent = map[string]any{"int": int32(1)}
			}
		} else {
			isCurrent = r.Int(pm, p+".parameters[]", "is_current")
		}
		parameters = append(parameters, map[string]any{
			"name":       r.String(pm, p+".parameters[]", "name"),
			"value":      r.String(pm, p+".parameters[]", "value"),
			"type":       r.Int(pm, p+".parameters[]", "type"),
			"is_current": isCurrent,
		})
		if r.rej != nil {
			r.rej.Field = strings.Replace(r.rej.Field, "[]", "["+strconv.Itoa(i)+"]", 1)
			break
		}
	}
	rec["parameters"] = parameters
	if el, found := wa["element"]; found && el != nil {
		// The element's layout is not published: keep it whole as JSON
		// text, and type only the members whose meaning is known.
		if s, err := jsonText(el); err == nil {
			rec["element_json"] = map[string]any{"string": s}
		}
		if em, ok := el.(map[string]any); ok {
			rec["element"] = map[string]any{wsNS + "Element": map[string]any{
				"name":        wsLenientString(em, "name", "element_name"),
				"type":        wsLenientInt(em, "type", "element_type"),
				"hotkey_name": wsLenientString(em, "hotkey_name", "element_hotkey_name"),
			}}
		}
	}
	if c, ok := code.(map[string]any); ok {
		return rec, c["int"].(int32), true
	}
	return rec, 0, false
}

// wsLenientString returns the first of keys holding a string, or null.
func wsLenientString(m map[string]any, keys ...string) any {
	for _, k := range keys {
		if s, ok := m[k].(string); ok {
			return map[string]any{"string": s}
		}
	}
	return nil
}

// wsLenientInt returns the first of keys holding a 32-bit integer, or null.
func wsLenientInt(m map[string]any, keys ...string) any {
	for _, k := range keys {
		if i, ok := asInt64(m[k]); ok && i >= -1<<31 && i < 1<<31 {
			return map[string]any{"int": int32(i)}
		}
	}
	return nil
}

// Log builds the record of one agent log entry. archiveType defaults to the
// manifest's type; fileVersion is the version of the log file's
// {"version": ...} header line, or "".
func (Workstation) Log(man *WorkstationManifest, archiveType, fileVersion string, l LogLine) (*Output, *event.Rejection) {
	opt := func(i int64) any {
		if i < 0 {
			return nil
		}
		return map[string]any{"long": i}
	}
	lineNo := any(nil)
	if l.LineNo > 0 {
		lineNo = map[string]any{"long": int64(l.LineNo)}
	}
	native := map[string]any{wsNS + "Log": map[string]any{
		"pid":       opt(l.PID),
		"tid":       opt(l.TID),
		"level":     avro.OptString(l.Level),
		"component": avro.OptString(l.Component),
		"method":    avro.OptString(l.Method),
		"message":   l.Message,
		"line_no":   lineNo,
	}}
	out := wsOutput(man, archiveType, fileVersion, "log", nil, native)
	out.EventType = "log"
	if l.Level != "" {
		out.EventType = "log:" + l.Level
	}
	return out, nil
}

// wsOutput is the one place a workstation record is put together.
func wsOutput(man *WorkstationManifest, archiveType, fileVersion, kind string, activity, log any) *Output {
	if archiveType == "" {
		archiveType = man.Type
	}
	return &Output{
		PartitionKey: man.MachineGUID,
		Fields: map[string]any{
			"kind":         kind,
			"manifest":     man.native,
			"archive_type": avro.OptString(archiveType),
			"file_version": avro.OptString(fileVersion),
			"activity":     activity,
			"log":          log,
		},
	}
}

// wsLogFromJSON reads the log member of a generic event: either the parsed
// parts, or the agent's text as "line".
func wsLogFromJSON(lo map[string]any) (LogLine, *event.Rejection) {
	l := LogLine{PID: -1, TID: -1}
	if n, ok, rej := getInt(lo, "line_no", "log.line_no"); rej != nil {
		return l, rej
	} else if ok && n > 0 && n < 1<<31 {
		l.LineNo = int(n)
	}
	if _, has := lo["message"]; !has {
		if text, ok, rej := getString(lo, "line", "log.line"); rej != nil {
			return l, rej
		} else if ok {
			parsed, err := ParseLogLine(text)
			if err != nil {
				return l, event.Reject(event.ReasonInvalidField, "log.line", "%v", err)
			}
			parsed.LineNo = l.LineNo
			return parsed, nil
		}
		return l, event.Reject(event.ReasonMissingField, "log.message", "is required")
	}
	var rej *event.Rejection
	var ok bool
	if l.Message, ok, rej = getString(lo, "message", "log.message"); rej != nil {
		return l, rej
	} else if !ok {
		return l, event.Reject(event.ReasonMissingField, "log.message", "is required")
	}
	for _, p := range []struct {
		key string
		dst *int64
	}{{"pid", &l.PID}, {"tid", &l.TID}} {
		n, ok, rej := getInt(lo, p.key, "log."+p.key)
		if rej != nil {
			return l, rej
		}
		if ok {
			if n < 0 {
				return l, event.Reject(event.ReasonInvalidField, "log."+p.key, "must not be negative")
			}
			*p.dst = n
		}
	}
	for _, p := range []struct {
		key string
		dst *string
	}{{"level", &l.Level}, {"component", &l.Component}, {"method", &l.Method}} {
		if *p.dst, _, rej = getString(lo, p.key, "log."+p.key); rej != nil {
			return l, rej
		}
	}
	return l, nil
}

// LogLine is one entry of an agent log file (inspector_log.json,
// service_log.json, timetracking_log.json), e.g.
//
//	PID=9212 TID=23400 important ModuleManager::LoadModule module '...' loaded
type LogLine struct {
	PID, TID int64  // -1 when unknown
	Level    string // e.g. important
	// Component and Method split the logging function at its last "::"
	// (RunAsService::<lambda_…> and operator ()); a bare function name
	// such as main or Start is a Method with no Component.
	Component string
	Method    string
	Message   string
	LineNo    int // 1-based line of the file where the entry starts; 0 when unknown
}

// ErrNotLogLine is returned by ParseLogLine for text that is not an agent
// log line.
var ErrNotLogLine = errors.New("not an agent log line")

// ParseLogLine parses one log entry of the form
// "PID=<n> TID=<n> <level> <function> <message>", where the message may
// span several lines (see SplitLogLines).
func ParseLogLine(line string) (LogLine, error) {
	l := LogLine{}
	s, ok := strings.CutPrefix(line, "PID=")
	if !ok {
		return l, fmt.Errorf("%w: no PID= prefix", ErrNotLogLine)
	}
	var err error
	if l.PID, s, err = logNumber(s); err != nil {
		return l, fmt.Errorf("%w: PID: %v", ErrNotLogLine, err)
	}
	var sep bool
	if s, sep = cutBlanks(s); !sep {
		return l, fmt.Errorf("%w: no blank after PID", ErrNotLogLine)
	}
	if s, ok = strings.CutPrefix(s, "TID="); !ok {
		return l, fmt.Errorf("%w: no TID= after PID", ErrNotLogLine)
	}
	if l.TID, s, err = logNumber(s); err != nil {
		return l, fmt.Errorf("%w: TID: %v", ErrNotLogLine, err)
	}
	if s, sep = cutBlanks(s); !sep {
		return l, fmt.Errorf("%w: no blank after TID", ErrNotLogLine)
	}
	if l.Level, s = logToken(s); l.Level == "" {
		return l, fmt.Errorf("%w: no level", ErrNotLogLine)
	}
	if s, sep = cutBlanks(s); !sep {
		return l, fmt.Errorf("%w: no function name", ErrNotLogLine)
	}
	var fn string
	if fn, s = logToken(s); fn == "" {
		return l, fmt.Errorf("%w: no function name", ErrNotLogLine)
	}
	// MSVC names a lambda's call operator "operator ()", with a space.
	if strings.HasSuffix(fn, "operator") && strings.HasPrefix(s, " ()") {
		fn, s = fn+" ()", s[3:]
	}
	if i := strings.LastIndex(fn, "::"); i > 0 && i+2 < len(fn) {
		l.Component, l.Method = fn[:i], fn[i+2:]
	} else {
		l.Method = fn
	}
	// One separator before the message; the rest is the message verbatim.
	if len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	l.Message = s
	return l, nil
}

func logNumber(s string) (int64, string, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, s, errors.New("not a number")
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, s, errors.New("out of range")
	}
	return n, s[i:], nil
}

// logToken returns the text up to the next blank or line break.
func logToken(s string) (string, string) {
	i := strings.IndexAny(s, " \t\r\n")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// cutBlanks drops the blanks that must separate two parts of a log line.
func cutBlanks(s string) (string, bool) {
	t := strings.TrimLeft(s, " \t")
	return t, len(t) < len(s)
}

// SplitLogLines splits a log file's text into entries: a line that does
// not start with "PID=" continues the entry before it and is joined to it
// with "\n" (a message may contain line breaks). Lines before the first
// entry, such as the {"version": ...} header, are returned as entries of
// their own; blank lines there and trailing line breaks are dropped, and
// "\r\n" line ends are accepted.
func SplitLogLines(text string) []string {
	var out []string
	splitLog(text, func(entry string, _ int) { out = append(out, entry) })
	return out
}

func splitLog(text string, emit func(entry string, lineNo int)) {
	var cur strings.Builder
	curLine := 0
	flush := func() {
		if curLine > 0 {
			emit(strings.TrimRight(cur.String(), "\r\n"), curLine)
			cur.Reset()
			curLine = 0
		}
	}
	lineNo := 0
	for len(text) > 0 {
		lineNo++
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		line = strings.TrimSuffix(line, "\r")
		switch {
		case strings.HasPrefix(line, "PID="):
			flush()
			cur.WriteString(line)
			curLine = lineNo
		case curLine > 0 && !strings.HasPrefix(line, "{\"version\""):
			cur.WriteByte('\n')
			cur.WriteString(line)
		case strings.TrimSpace(line) != "":
			flush()
			emit(line, lineNo)
		}
	}
	flush()
}

// FileVersion returns the version of a log or activity file's header line
// {"version":"1.0.0"}.
func FileVersion(line string) (string, bool) {
	d, ok := decodeJSONText(strings.TrimSpace(line))
	if !ok {
		return "", false
	}
	m, ok := d.(map[string]any)
	if !ok || len(m) != 1 {
		return "", false
	}
	v, ok := m["version"].(string)
	return v, ok
}

// LogLineError is an entry of a log file that ParseLogFile could not parse.
type LogLineError struct {
	LineNo int
	Text   string
	Err    error
}

// ParseLogFile parses a whole agent log file: its {"version": ...} header
// (version is "" when there is none) and its entries, with line numbers.
// Entries that are not log lines are returned in bad, so the caller can
// dead-letter them.
func ParseLogFile(text string) (version string, lines []LogLine, bad []LogLineError) {
	splitLog(text, func(entry string, lineNo int) {
		if version == "" && len(lines) == 0 && len(bad) == 0 {
			if v, ok := FileVersion(entry); ok {
				version = v
				return
			}
		}
		l, err := ParseLogLine(entry)
		if err != nil {
			bad = append(bad, LogLineError{LineNo: lineNo, Text: entry, Err: err})
			return
		}
		l.LineNo = lineNo
		lines = append(lines, l)
	})
	return version, lines, bad
}
