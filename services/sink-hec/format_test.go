package sinkhec

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/pipeline/pipelinetest"
)

func TestAppendTime(t *testing.T) {
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{time.Unix(1433188255, 500_000_000), "1433188255.500000"},
		{time.Unix(1700000000, 123456789), "1700000000.123456"},
		{time.Unix(0, 0), "0.000000"},
	} {
		if got := string(appendTime(nil, c.t)); got != c.want {
			t.Errorf("appendTime(%v) = %s, want %s", c.t, got, c.want)
		}
	}
}

type hecEvent struct {
	Time       float64           `json:"time"`
	Host       string            `json:"host"`
	Source     string            `json:"source"`
	Sourcetype string            `json:"sourcetype"`
	Index      string            `json:"index"`
	Fields     map[string]any    `json:"fields"`
	Event      json.RawMessage   `json:"event"`
	Extra      map[string]string `json:"-"`
}

func TestFormatMapping(t *testing.T) {
	cfg := Defaults()
	cfg.Index = "main"
	cfg.Families = []Mapping{{Family: "clicks", Index: "web", Sourcetype: "clicks:json", HostField: "envelope.ip",
		Fields: []string{"envelope.event_type", "info.button", "session", "no.such.path"}}}
	f := newFormatter(cfg)
	client := time.Date(2025, 6, 1, 8, 0, 0, 250_000_000, time.UTC)
	native := pipelinetest.EnrichedClick("e-1", client.Add(time.Minute), client, 7)
	body := []byte(`{"x":1}`)
	out := f.appendEvent(nil, event.Clicks, "sluice.enriched.clicks", 2, 41, native, body, time.Time{})
	var e hecEvent
	if err := json.Unmarshal(out, &e); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if e.Time != float64(client.UnixMicro())/1e6 || e.Host != "203.0.113.7" || e.Source != "sluice.enriched.clicks" ||
		e.Sourcetype != "clicks:json" || e.Index != "web" || string(e.Event) != `{"x":1}` {
		t.Errorf("envelope %+v\n%s", e, out)
	}
	want := map[string]any{"kafka.topic": "sluice.enriched.clicks", "kafka.partition": "2", "kafka.offset": "41",
		"envelope.event_type": "click", "info.button": "1", "session": "session-1"}
	for k, v := range want {
		if e.Fields[k] != v {
			t.Errorf("fields[%s] = %v, want %v", k, e.Fields[k], v)
		}
	}
	if len(e.Fields) != len(want) {
		t.Errorf("fields %v", e.Fields)
	}
	// An unmapped family: defaults, token host.
	out = f.appendEvent(nil, event.EdX, "sluice.enriched.edx", 0, 1, map[string]any{"envelope": map[string]any{"received_at": client}}, body, time.Time{})
	e = hecEvent{}
	if err := json.Unmarshal(out, &e); err != nil {
		t.Fatal(err)
	}
	if e.Host != "" || e.Sourcetype != "sluice:edx" || e.Index != "main" || e.Time != float64(client.UnixMicro())/1e6 {
		t.Errorf("defaults %+v", e)
	}
	if strings.Contains(string(out), `"host"`) {
		t.Errorf("empty host sent: %s", out)
	}
}

// TestFormatHECFamily checks that an event that came in through the
// gateway's HEC endpoint goes out with its own event, time and metadata.
func TestFormatHECFamily(t *testing.T) {
	f := newFormatter(Defaults())
	native := map[string]any{
		"envelope":   avro.EnvelopeNative(&event.Envelope{EventID: "h1", Family: event.HEC, ReceivedAt: time.Unix(1700000100, 0)}),
		"event_json": `{"msg":"hello"}`,
		"time":       avro.Double(1700000000.5),
		"host":       avro.String("web-1"),
		"sourcetype": avro.String("access"),
		"index":      nil,
		"source":     nil,
		"fields":     map[string]any{"map": map[string]any{"dc": "eu", "tags": `["a","b"]`}},
	}
	out := f.appendEvent(nil, event.HEC, "sluice.enriched.hec", 0, 3, native, []byte(`{"whole":"record"}`), time.Time{})
	var e hecEvent
	if err := json.Unmarshal(out, &e); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if string(e.Event) != `{"msg":"hello"}` || e.Time != 1700000000.5 || e.Host != "web-1" || e.Sourcetype != "access" ||
		e.Source != "sluice.enriched.hec" || e.Fields["dc"] != "eu" {
		t.Errorf("%+v\n%s", e, out)
	}
	if tags, ok := e.Fields["tags"].([]any); !ok || len(tags) != 2 {
		t.Errorf("tags %v", e.Fields["tags"])
	}
}

func TestAppendString(t *testing.T) {
	in := "a\"b\\c\n\x01\xff\u2028é"
	out := appendString(nil, in)
	var back string
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if back != "a\"b\\c\n\x01\ufffd\u2028é" {
		t.Errorf("round trip %q", back)
	}
}
