package native

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"testing"

	"github.com/sluicehq/sluice/pkg/event"
)

type hecAnswer struct {
	Text    string `json:"text"`
	Code    int    `json:"code"`
	Invalid *int   `json:"invalid-event-number"`
}

func (e *env) hec(path, auth string, body []byte, extra ...string) (int, hecAnswer) {
	e.t.Helper()
	hdr := map[string]string{}
	if auth != "" {
		hdr["Authorization"] = auth
	}
	for i := 0; i+1 < len(extra); i += 2 {
		hdr[extra[i]] = extra[i+1]
	}
	r := e.post(path, body, hdr)
	var a hecAnswer
	r.json(e.t, &a)
	return r.status, a
}

// TestHECStockClient replays what `curl` sends with the HEC examples of the
// reference (Splunk's stacked batch), with each auth form HEC allows, and
// checks HEC's replies.
func TestHECStockClient(t *testing.T) {
	e := newEnv(t, nil)
	batch := bytes.TrimSpace(readFile(t, "testdata/hec/edge_processor_batch.txt"))
	splunk := "Splunk " + hecTokenA
	// curl -H "Authorization: Splunk <token>" -d '<batch>' .../services/collector/event
	// (curl -d sends application/x-www-form-urlencoded, which HEC ignores.)
	st, a := e.hec("/services/collector/event", splunk, batch, "Content-Type", "application/x-www-form-urlencoded")
	if st != 200 || a.Code != 0 || a.Text != "Success" {
		t.Fatalf("batch: %d %+v", st, a)
	}
	// curl -u x:<token> with gzip to /services/collector
	st, a = e.hec("/services/collector", "Basic "+base64.StdEncoding.EncodeToString([]byte("x:"+hecTokenA)),
		gz(t, []byte(`{"time": 1433188255.500, "host": "web-1", "index": "web", "event": {"message": "Something happened", "severity": "INFO"}}`)),
		"Content-Encoding", "gzip")
	if st != 200 || a.Code != 0 {
		t.Fatalf("basic auth + gzip: %d %+v", st, a)
	}
	// ?token= on a token that allows it, to /event/1.0
	st, a = e.hec("/services/collector/event/1.0?token="+hecTokenQS, "", []byte(`{"event":"via query string"}`))
	if st != 200 || a.Code != 0 {
		t.Fatalf("query-string token: %d %+v", st, a)
	}
	// The dejavu PHP proxy forwards the agent's body unchanged.
	dejavu := []byte(fmt.Sprintf(`{"event": %s}`, bytes.TrimSpace(readFile(t, "testdata/dejavu/readme_example_mousedown.json"))))
	if st, a = e.hec("/services/collector/event", splunk, dejavu); st != 200 || a.Code != 0 {
		t.Fatalf("dejavu proxy: %d %+v", st, a)
	}
	// /raw: one event per line, metadata from the query string.
	st, a = e.hec("/services/collector/raw?sourcetype=access_combined&host=web-2&channel=FE0ECFAD-13D5-401B-847D-77833BD77131", splunk,
		[]byte("127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 2326\n\n10.0.0.1 - - [10/Oct/2000:13:55:37 -0700] \"GET /x HTTP/1.0\" 404 0\r\n"))
	if st != 200 || a.Code != 0 {
		t.Fatalf("raw: %d %+v", st, a)
	}
	// Health needs no token.
	r := e.do(http.MethodGet, "/services/collector/health", nil, nil)
	var h hecAnswer
	r.json(t, &h)
	if r.status != 200 || h.Code != 17 || h.Text != "HEC is healthy" {
		t.Fatalf("health: %d %s", r.status, r.body)
	}

	recs := e.raw(event.HEC, 7)
	byText := map[string]record{}
	for _, rec := range recs {
		byText[field(rec.native, "event_json").(string)] = rec
		if field(rec.native, "envelope.family") != "hec" {
			t.Errorf("family %v", field(rec.native, "envelope.family"))
		}
	}
	for ev, want := range map[string]map[string]any{
		`"Hello, world!"`:      {"sourcetype": "manual", "index": "main", "event_kind": "string", "event_text": "Hello, world!", "envelope.source_key": "hec-a"},
		`"something happened"`: {"sourcetype": "default_st", "fields.severity": "INFO", "fields.category": `["foo","bar"]`},
		`{"message":"Something happened","severity":"INFO"}`: {"host": "web-1", "index": "web", "time": 1433188255.5, "event_kind": "object", "envelope.endpoint": "/services/collector"},
		`"via query string"`: {"envelope.source_key": "hec-qs", "index": nil, "sourcetype": nil},
		`{"type":"mousedown","info":{"x":138,"y":136,"target":{"id":"(1,1)","class":"class: (1,1)"}}}`: {"event_kind": "object"},
		`"127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 2326"`:                     {"sourcetype": "access_combined", "host": "web-2", "envelope.endpoint": "/services/collector/raw"},
	} {
		rec, ok := byText[ev]
		if !ok {
			t.Errorf("no record with event %s", ev)
			continue
		}
		for path, w := range want {
			if got := field(rec.native, path); got != w {
				t.Errorf("%s: %s = %#v, want %#v", ev, path, got, w)
			}
		}
	}
}

// TestHECErrors checks HEC's error replies, and that a bad event in a batch
// stores the events before it, dead-letters it and skips the rest.
func TestHECErrors(t *testing.T) {
	e := newEnv(t, nil)
	splunk := "Splunk " + hecTokenA
	ev := []byte(`{"event":"x"}`)
	for _, tc := range []struct {
		name, path, auth string
		body             []byte
		status, code     int
		invalid          int // -1: none
	}{
		{"missing token", "/services/collector/event", "", ev, 401, 2, -1},
		{"wrong token", "/services/collector/event", "Splunk 00000000-0000-0000-0000-000000000000", ev, 403, 4, -1},
		{"Bearer scheme", "/services/collector/event", "Bearer " + hecTokenA, ev, 401, 3, -1},
		{"bare token", "/services/collector/event", hecTokenA, ev, 401, 3, -1},
		{"query token not allowed", "/services/collector/event?token=" + hecTokenA, "", ev, 400, 16, -1},
		{"query token invalid", "/services/collector/event?token=nope", "", ev, 403, 4, -1},
		{"dev key from loopback", "/services/collector/event", "Splunk dev", ev, 200, 0, -1},
		{"no data", "/services/collector/event", splunk, []byte("  \n"), 400, 5, -1},
		{"raw no data", "/services/collector/raw", splunk, nil, 400, 5, -1},
		{"array", "/services/collector/event", splunk, []byte(`[{"event":"a"}]`), 400, 6, 0},
		{"event required", "/services/collector/event", splunk, []byte(`{"event":"a"}{"host":"h"}{"event":"c"}`), 400, 12, 1},
		{"event blank", "/services/collector/event", splunk, []byte(`{"event":"a"} {"event":"  "}`), 400, 13, 1},
		{"event null", "/services/collector/event", splunk, []byte(`{"event":null}`), 400, 6, 0},
		{"syntax error", "/services/collector/event", splunk, []byte(`{"event":"a"}{"event": "b"`), 400, 6, 1},
		{"nested fields", "/services/collector/event", splunk, []byte(`{"event":"a","fields":{"x":{"y":1}}}`), 400, 15, 0},
		{"index not allowed", "/services/collector/event", splunk, []byte(`{"event":"a"}{"event":"b","index":"secret"}`), 400, 7, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, a := e.hec(tc.path, tc.auth, tc.body)
			if st != tc.status || a.Code != tc.code || a.Text != hecTexts[tc.code] {
				t.Fatalf("%d %+v, want %d code %d", st, a, tc.status, tc.code)
			}
			if (tc.invalid < 0) != (a.Invalid == nil) || (a.Invalid != nil && *a.Invalid != tc.invalid) {
				t.Fatalf("invalid-event-number %v, want %d", a.Invalid, tc.invalid)
			}
		})
	}
	// deflate is refused with 415.
	if st, _ := e.hec("/services/collector/event", splunk, ev, "Content-Encoding", "deflate"); st != 415 {
		t.Errorf("deflate: %d", st)
	}
	// GET on /event: 405 with HEC's not-found body; other paths 404.
	r := e.do(http.MethodGet, "/services/collector/event", nil, nil)
	if r.status != 405 || !bytes.Contains(r.body, []byte(`"code":404`)) {
		t.Errorf("GET /event: %d %s", r.status, r.body)
	}
	if r := e.post("/services/collector/nope", ev, nil); r.status != 404 {
		t.Errorf("unknown path: %d %s", r.status, r.body)
	}
	if st, a := e.hec("/services/collector/ack", splunk, []byte(`{"acks":[0]}`)); st != 400 || a.Code != 14 {
		t.Errorf("ack: %d %+v", st, a)
	}
	if r := e.do(http.MethodOptions, "/services/collector/event", nil, nil); r.status != 200 || r.header.Get("Allow") != "POST,OPTIONS" {
		t.Errorf("OPTIONS: %d %v", r.status, r.header)
	}

	// Stored: the dev-key event, and "a" before each bad event in
	// event-required, event-blank, syntax-error and index cases.
	recs := e.raw(event.HEC, 5)
	for _, rec := range recs {
		if et := field(rec.native, "event_json"); et != `"a"` && et != `"x"` {
			t.Errorf("stored %v: an event after the first bad one was stored", et)
		}
	}
	// Dead letters: array, required, blank, null, syntax, fields, index.
	dl := e.dlq(7)
	reasons := map[string]int{}
	for _, d := range dl {
		reasons[field(d.native, "reason").(string)]++
	}
	want := map[string]int{"not_object": 1, "event_field_required": 1, "event_field_blank": 1, "invalid_field": 1, "invalid_json": 1, "indexed_fields_invalid": 1, "incorrect_index": 1}
	if fmt.Sprint(reasons) != fmt.Sprint(want) {
		t.Errorf("dead letters %v, want %v", reasons, want)
	}
}

func TestSplitHEC(t *testing.T) {
	for _, tc := range []struct {
		in       string
		n        int
		rejected int // index of the rejected item, -1 none
	}{
		{`{"event":"a"}`, 1, -1},
		{`{"event":"a"}{"event":"b"}`, 2, -1},
		{"{\"event\":\"a\"}\n\n {\"event\":\"}{\"}\r\n", 2, -1},
		{`[{"event":"a"}]`, 1, 0},
		{`{"event":"a"} 42`, 2, 1},
		{`{"event":"a"}{"event":`, 2, 1},
		{`{"event":"a\"}"}`, 1, -1},
	} {
		items, err := splitHEC([]byte(tc.in), 10)
		if err != nil {
			t.Fatal(err)
		}
		rej := -1
		for i, it := range items {
			if it.Reject != nil {
				rej = i
			}
		}
		if len(items) != tc.n || rej != tc.rejected {
			t.Errorf("%q: %d items, rejected %d", tc.in, len(items), rej)
		}
	}
	if _, err := splitHEC(bytes.Repeat([]byte(`{"event":1}`), 11), 10); err == nil {
		t.Error("11 events with a limit of 10")
	}
}
