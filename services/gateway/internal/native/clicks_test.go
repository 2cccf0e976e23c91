package native

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/pkg/event"
)

// TestClicksDejavu sends the dejavu README event as the agent posts it
// ({"event": …} for the PHP proxy) and bare.
func TestClicksDejavu(t *testing.T) {
	e := newEnv(t, nil)
	inner := bytes.TrimSpace(readFile(t, "testdata/dejavu/readme_example_mousedown.json"))
	wrapped := []byte(fmt.Sprintf(`{"event": %s}`, inner))
	// XMLHttpRequest.send(string) sends text/plain;charset=UTF-8.
	if r := e.post("/v1/clicks", wrapped, map[string]string{"Content-Type": "text/plain;charset=UTF-8"}); r.status != 200 {
		t.Fatalf("wrapped: %d %s", r.status, r.body)
	}
	if r := e.post("/v1/clicks", inner, map[string]string{"Content-Type": "application/json"}); r.status != 200 {
		t.Fatalf("bare: %d %s", r.status, r.body)
	}
	recs := e.raw(event.Clicks, 2)
	for i, r := range recs {
		for path, want := range map[string]any{
			"type": "mousedown", "info.x": 138.0, "info.y": 136.0, "info.target.id": "(1,1)",
			"info.target.class": "class: (1,1)", "info.target.name": nil, "envelope.endpoint": "/v1/clicks",
		} {
			if got := field(r.native, path); got != want {
				t.Errorf("record %d %s = %#v, want %#v", i, path, got, want)
			}
		}
	}
	q0, _ := field(recs[0].native, "envelope.quirks").([]any)
	q1, _ := field(recs[1].native, "envelope.quirks").([]any)
	if len(q0)+len(q1) != 1 {
		t.Errorf("exactly one record should carry event_wrapper: %v %v", q0, q1)
	}
}

func TestClicksRefusals(t *testing.T) {
	e := newEnv(t, nil)
	if r := e.post("/v1/clicks", []byte(`{"event":"x"}`), nil); r.status != 400 {
		t.Errorf("wrapper of a string: %d %s", r.status, r.body)
	}
	if r := e.post("/v1/clicks", []byte(`<html>`), nil); r.status != 400 {
		t.Errorf("not JSON: %d %s", r.status, r.body)
	}
	if r := e.post("/v1/clicks", nil, nil); r.status != 400 {
		t.Errorf("empty: %d %s", r.status, r.body)
	}
	if r := e.post("/v1/clicks", []byte(`{"type":"mousedown","info":{"x":1,"y":2}}`), map[string]string{"Authorization": "Bearer nope-nope-nope-nope"}); r.status != 401 {
		t.Errorf("wrong key: %d %s", r.status, r.body)
	}
	r := e.post("/v1/clicks", []byte(`[{"type":"mouseup","info":{"x":1,"y":2,"target":{"id":"","class":{}}}},{"type":"mousedown"}]`), nil)
	if res := r.result(t); r.status != 207 || res.Accepted != 1 || res.Errors[0].Field != "info" {
		t.Errorf("batch: %d %s", r.status, r.body)
	}
	e.dlq(3)
}
