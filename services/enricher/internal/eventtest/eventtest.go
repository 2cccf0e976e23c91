// Package eventtest builds raw records of every family the way the gateway
// writes them (goavro native values, encoded and decoded through the
// family schema so their shape is the real one), for the enricher's tests
// and benchmarks.
package eventtest

import (
	"fmt"
	"sync"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/schemas"
)

// Env is the envelope of a test event.
type Env struct {
	ID       string
	IP       string
	UA       string
	Key      string // partition key
	Received time.Time
	Client   time.Time
	Sent     time.Time
	Quirks   []string
}

// Base is the received time of events that set none.
var Base = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func envelope(f event.Family, typ string, e Env) map[string]any {
	if e.Received.IsZero() {
		e.Received = Base
	}
	if e.ID == "" {
		e.ID = fmt.Sprintf("%s-%d", f, e.Received.UnixNano())
	}
	return avro.EnvelopeNative(&event.Envelope{
		EventID: e.ID, Family: f, EventType: typ, ReceivedAt: e.Received,
		ClientTime: e.Client, SentTime: e.Sent, IP: e.IP, UserAgent: e.UA,
		Endpoint: "/v1/events/" + string(f), PartitionKey: e.Key, BatchIndex: -1,
		Quirks: e.Quirks, GatewayVersion: "test", Raw: []byte(`{"raw":"` + e.ID + `"}`),
	})
}

// EdX returns an edX tracking-log event; fields are set over the base.
func EdX(e Env, fields map[string]any) map[string]any {
	typ, _ := fields["event_type"].(string)
	m := map[string]any{
		"envelope":   envelope(event.EdX, typ, e),
		"event_kind": "absent",
	}
	for k, v := range fields {
		switch t := v.(type) {
		case string:
			if k != "event_kind" && k != "time_raw" {
				v = avro.String(t)
			}
		}
		m[k] = v
	}
	return m
}

// EdXContext is an edX context record value.
func EdXContext(courseID, orgID string, userID int64) any {
	c := map[string]any{"course_id": avro.OptString(courseID), "org_id": avro.OptString(orgID)}
	if userID != 0 {
		c["user_id"] = avro.Long(userID)
	}
	return avro.Record("sluice.edx.Context", c)
}

// CrowdFrame returns a Crowd Frame message; details is the typed details
// union value (CFContext, CFDetails) or nil.
func CrowdFrame(e Env, typ, worker, task, batch string, seq int64, details any) map[string]any {
	if e.Key == "" {
		e.Key = worker
	}
	m := map[string]any{
		"envelope":     envelope(event.CrowdFrame, typ, e),
		"type":         typ,
		"worker":       worker,
		"task":         avro.OptString(task),
		"batch":        avro.OptString(batch),
		"sequence":     avro.Long(seq),
		"details_json": "{}",
		"details":      details,
	}
	if !e.Client.IsZero() {
		m["client_time"] = map[string]any{"long.timestamp-millis": e.Client}
	}
	return m
}

// The details union holds many records, so a details value names its
// branch (goavro's one-key form): a bare record would not say which.

// CFContext is the details of a Crowd Frame context message.
func CFContext(ua, ip string) any {
	return map[string]any{"sluice.crowdframe.Context": map[string]any{"ua": avro.OptString(ua), "ip": avro.OptString(ip)}}
}

// CFMoment is the details of unload, window_focus and window_blur.
func CFMoment(section string, ts float64) any {
	return map[string]any{"sluice.crowdframe.Moment": map[string]any{"section": avro.OptString(section), "timeStamp": avro.Double(ts)}}
}

// CFQuery is the details of a query message.
func CFQuery(section, q string) any {
	return map[string]any{"sluice.crowdframe.Query": map[string]any{"section": avro.OptString(section), "query": avro.OptString(q)}}
}

// Weaklayer returns a Weaklayer event of the given type; body is the
// type's record (WLInstall, WLWindow, ...) or nil.
func Weaklayer(e Env, typ, sensor string, t int64, body any) map[string]any {
	if e.Key == "" {
		e.Key = sensor
	}
	if e.Client.IsZero() {
		e.Client = time.UnixMicro(t)
	}
	m := map[string]any{
		"envelope": envelope(event.Weaklayer, typ, e),
		"type":     typ,
		"time":     t,
		"sensor":   sensor,
		"group":    "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d",
	}
	switch typ {
	case "Install":
		m["install"] = body
	case "Window":
		m["window"] = body
	case "WindowLocation":
		m["window_location"] = body
	case "TextInput":
		m["text_input"] = body
	}
	return m
}

// WLInstall is an Install body.
func WLInstall(label, ua string) any {
	return avro.Record("sluice.weaklayer.Install", map[string]any{
		"label": avro.String(label), "isNewInstall": avro.Boolean(true), "userAgent": avro.OptString(ua)})
}

// WLWindow is a Window body.
func WLWindow(top bool, topRef int64) any {
	return avro.Record("sluice.weaklayer.Window", map[string]any{
		"isTopLevelWindow": avro.Boolean(top), "topLevelWindowReference": avro.Long(topRef)})
}

// WLLocation is a WindowLocation body; port 0 is absent.
func WLLocation(proto, host string, port int32, path, search, hash string, windowRef int64) any {
	var p any
	if port != 0 {
		p = avro.Int(port)
	}
	return avro.Record("sluice.weaklayer.WindowLocation", map[string]any{
		"protocol": avro.String(proto), "hostname": avro.String(host), "port": p, "path": avro.String(path),
		"search": avro.String(search), "hash": avro.String(hash), "windowReference": avro.Long(windowRef)})
}

// WLTextInput is a TextInput body.
func WLTextInput(locationRef int64, length int64) any {
	return avro.Record("sluice.weaklayer.TextInput", map[string]any{
		"textHash": avro.String("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="), "textLength": avro.Long(length),
		"inputType": avro.String("text"), "windowLocationReference": avro.Long(locationRef)})
}

// Manifest is a workstation manifest.
func Manifest(guid, login string, tzSec int32) map[string]any {
	return map[string]any{
		"version":      avro.String("1.0.4"),
		"machine_guid": guid,
		"user": avro.Record("sluice.workstation.User", map[string]any{
			"name": avro.String("John Doe"), "login": avro.String(login), "domain": avro.String("CORP.EXAMPLE.COM"),
			"ad_guid": avro.String("d59396ef-c493-4215-8dd5-1c478c846191"), "timezone": avro.String("Europe/Moscow"),
			"timezone_sec": avro.Int(tzSec), "employee_id": avro.Long(2)}),
		"computer": avro.Record("sluice.workstation.Computer", map[string]any{
			"name": avro.String("c-066.corp.example.com"), "domain": avro.String("corp.example.com"), "workgroup": avro.String("")}),
		"agent": avro.Record("sluice.workstation.Agent", map[string]any{"version": avro.String("2.14.3")}),
		"type":  avro.String("inspector"),
	}
}

// WorkstationActivity is one activity.json record of event code typ, with
// a UI element of code elem (0: none) and the given location codes.
func WorkstationActivity(e Env, man map[string]any, sec int64, ms int32, typ int32, elem int32, locations ...int32) map[string]any {
	guid, _ := man["machine_guid"].(string)
	if e.Key == "" {
		e.Key = guid
	}
	locs := make([]any, len(locations))
	for i, c := range locations {
		locs[i] = map[string]any{"name": avro.String(fmt.Sprintf("window %d", i)), "type": avro.Int(c)}
	}
	var element any
	if elem != 0 {
		element = avro.Record("sluice.workstation.Element", map[string]any{"name": avro.String("OK"), "type": avro.Int(elem)})
	}
	wa := map[string]any{
		"app_info": avro.Record("sluice.workstation.AppInfo", map[string]any{
			"program_name": avro.String("Google Chrome"), "version": avro.String("115.0.5790")}),
		"type": avro.Int(typ), "input_type": avro.Int(1), "location": locs, "element": element,
		"parameters": []any{map[string]any{"name": avro.String("field"), "value": avro.String("h"), "type": avro.Int(14), "is_current": avro.Int(1)}},
	}
	return map[string]any{
		"envelope": envelope(event.Workstation, fmt.Sprint(typ), e),
		"kind":     "activity",
		"manifest": man,
		"activity": avro.Record("sluice.workstation.Activity", map[string]any{
			"time": sec, "time_ms": avro.Int(ms), "cpu_loading": avro.Double(12), "memory_loading": avro.Double(30),
			"window_activity": avro.Record("sluice.workstation.WindowActivity", wa)}),
	}
}

// WorkstationLog is one log line record.
func WorkstationLog(e Env, man map[string]any, msg string) map[string]any {
	guid, _ := man["machine_guid"].(string)
	if e.Key == "" {
		e.Key = guid
	}
	return map[string]any{
		"envelope": envelope(event.Workstation, "log", e),
		"kind":     "log",
		"manifest": man,
		"log":      avro.Record("sluice.workstation.Log", map[string]any{"message": msg, "level": avro.String("important")}),
	}
}

// Clicks returns a click; page "" is absent.
func Clicks(e Env, typ, session, page, id, class string) map[string]any {
	if e.Key == "" {
		e.Key = session
	}
	target := avro.Record("sluice.clicks.Target", map[string]any{"id": avro.String(id), "class": avro.String(class)})
	return map[string]any{
		"envelope": envelope(event.Clicks, typ, e),
		"type":     typ,
		"info":     map[string]any{"x": avro.Double(138), "y": avro.Double(136), "button": avro.Long(1), "target": target},
		"session":  avro.OptString(session),
		"page":     avro.OptString(page),
	}
}

// HEC returns a HEC event.
func HEC(e Env, text string) map[string]any {
	return map[string]any{
		"envelope":   envelope(event.HEC, "", e),
		"event_json": fmt.Sprintf("%q", text),
		"event_kind": "string",
		"event_text": avro.String(text),
	}
}

var (
	codecsMu sync.Mutex
	codecs   = map[event.Family]*avro.Codec{}
)

// Codec returns the codec of family f's latest schema (id 0).
func Codec(f event.Family) (*avro.Codec, error) {
	codecsMu.Lock()
	defer codecsMu.Unlock()
	if c, ok := codecs[f]; ok {
		return c, nil
	}
	text, err := schemas.Latest(string(f))
	if err != nil {
		return nil, err
	}
	c, err := avro.NewCodec(text)
	if err != nil {
		return nil, err
	}
	codecs[f] = c
	return c, nil
}

// Decoded encodes native with family f's schema (filling defaults) and
// decodes it again: the record exactly as the enricher receives it.
func Decoded(f event.Family, native map[string]any) (map[string]any, error) {
	c, err := Codec(f)
	if err != nil {
		return nil, err
	}
	b, err := c.Encode(nil, native)
	if err != nil {
		return nil, fmt.Errorf("encoding %s test event: %w", f, err)
	}
	v, err := c.DecodeBody(b[5:])
	if err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
}
