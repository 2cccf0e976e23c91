package native

import (
	"net/url"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/event"
)

// Crowd Frame messages are synthetic: no public Crowd Frame log exists.
// They follow userActionLogger.service.ts (newest client) as described in
// shared/reference/event-formats.md section 2.
const (
	cfQuery = `{"type":"query","bucket":"crowdframe-bucket","worker":"W123","task":"fact-check","batch":"b1","region":"eu-west-1","client_time":1690000000000,"sequence":7,"details":{"section":"document","query":"vaccines a=b & c=d"},"unitId":"unit-9"}`
	cfClick = `{"type":"click","worker":"W123","task":"fact-check","batch":"b1","client_time":1690000000100,"sequence":8,"details":{"section":"document","mouseButton":"left","startTime":1234.5,"endTime":1240.1,"x":10,"y":20,"target":{"elementName":"BUTTON","className":"mat-button"},"clicks":2}}`
	cfOld   = `{"type":"select","worker":"W9","task":"t","batch":"b","client_time":1590000000000,"sequence":3,"details":{"section":"s","timeStamp":12.5,"selected":"some text"}}`
	cfNew   = `{"type":"heatmap","worker":"W9","task":"t","batch":"b","client_time":1590000000000,"sequence":4,"details":{"cells":[1,2]},"server_time":1}`
)

// TestCrowdFrame sends a raw-JSON message holding '=' (which the Lambda's
// "contains =" test would misread as a form), the current client's
// form-encoded MessageBody, an old client's "select", and an unknown type.
func TestCrowdFrame(t *testing.T) {
	e := newEnv(t, nil)
	before := time.Now().UnixMilli()
	if r := e.post("/v1/crowdframe", []byte(cfQuery), map[string]string{"Content-Type": "text/plain"}); r.status != 200 {
		t.Fatalf("raw JSON with '=': %d %s", r.status, r.body)
	}
	form := url.Values{"MessageBody": {cfClick}}.Encode()
	if r := e.post("/v1/crowdframe", []byte(form), map[string]string{"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}); r.status != 200 {
		t.Fatalf("form: %d %s", r.status, r.body)
	}
	if r := e.post("/v1/crowdframe", []byte(cfOld), map[string]string{"Content-Type": "application/json"}); r.status != 200 {
		t.Fatalf("old client: %d %s", r.status, r.body)
	}
	if r := e.post("/v1/crowdframe", []byte(cfNew), nil); r.status != 200 {
		t.Fatalf("unknown type: %d %s", r.status, r.body)
	}
	recs := e.raw(event.CrowdFrame, 4)
	byType := map[string]record{}
	for _, r := range recs {
		byType[field(r.native, "type").(string)] = r
		st, _ := field(r.native, "server_time").(time.Time)
		if st.UnixMilli() < before || st.After(time.Now()) {
			t.Errorf("%v: server_time %v not set by the gateway", field(r.native, "type"), field(r.native, "server_time"))
		}
		if r.key != field(r.native, "worker") {
			t.Errorf("partition key %q", r.key)
		}
	}
	if got := field(byType["query"].native, "details.query"); got != "vaccines a=b & c=d" {
		t.Errorf("query details %v (%s)", got, byType["query"].json)
	}
	if got := field(byType["click"].native, "details.clicks"); got == nil {
		t.Errorf("click details %s", byType["click"].json)
	}
	if q, _ := field(byType["click"].native, "envelope.quirks").([]any); len(q) == 0 || q[0] != "form_message_body" {
		t.Errorf("form quirk %v", q)
	}
	if _, ok := byType["selection"]; !ok {
		t.Errorf("old client's select not read as selection: %v", byType)
	}
	if q, _ := field(byType["heatmap"].native, "envelope.quirks").([]any); len(q) == 0 || q[len(q)-1] != "server_time_replaced" {
		t.Errorf("heatmap quirks %v", q)
	}
}

func TestCrowdFrameRefusals(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CrowdFrame.AllowAnonymous = false })
	if r := e.post("/v1/crowdframe", []byte(cfQuery), nil); r.status != 401 {
		t.Errorf("anonymous: %d %s", r.status, r.body)
	}
	auth := map[string]string{"Authorization": "Bearer " + browserKey, "Content-Type": "application/x-www-form-urlencoded"}
	if r := e.post("/v1/crowdframe", []byte("Message="+url.QueryEscape(cfQuery)), auth); r.status != 400 {
		t.Errorf("form without MessageBody: %d %s", r.status, r.body)
	}
	if r := e.post("/v1/crowdframe", []byte("MessageBody=%7Bnot+json"), auth); r.status != 400 {
		t.Errorf("MessageBody not JSON: %d %s", r.status, r.body)
	}
	auth["Content-Type"] = "application/json"
	if r := e.post("/v1/crowdframe", []byte(`{"type":"click","task":"t"}`), auth); r.status != 400 {
		t.Errorf("no worker: %d %s", r.status, r.body)
	}
	if r := e.post("/v1/crowdframe", []byte(`garbage`), auth); r.status != 400 {
		t.Errorf("garbage: %d %s", r.status, r.body)
	}
	auth["Content-Type"] = "image/png"
	if r := e.post("/v1/crowdframe", []byte(cfQuery), auth); r.status != 415 {
		t.Errorf("png: %d %s", r.status, r.body)
	}
	auth["Authorization"] = "Bearer " + edxOnlyKey
	auth["Content-Type"] = "application/json"
	if r := e.post("/v1/crowdframe", []byte(cfQuery), auth); r.status != 403 {
		t.Errorf("edx-only key: %d %s", r.status, r.body)
	}
	e.dlq(4)
	e.noMore(event.RawTopic(event.CrowdFrame), 0)
}
