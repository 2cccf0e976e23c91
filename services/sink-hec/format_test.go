package sinkhec

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/schemas"
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

// render formats native both ways (transcoder and native values) and
// requires the same bytes.
func render(t *testing.T, f *formatter, fam event.Family, topic string, partition int32, offset int64, native map[string]any) []byte {
	t.Helper()
	text, err := schemas.Latest(string(fam))
	if err != nil {
		t.Fatal(err)
	}
	c, err := avro.NewCodec(text)
	if err != nil {
		t.Fatal(err)
	}
	wire, err := c.Encode(nil, native)
	if err != nil {
		t.Fatal(err)
	}
	m := f.families[fam]
	tr, err := c.NewTranscoder(m.paths...)
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]any, len(m.paths))
	body, err := tr.AppendJSON(nil, wire[5:], vals)
	if err != nil {
		t.Fatal(err)
	}
	fast := m.appendEvent(nil, topic, partition, offset, vals, body, time.Time{})
	decoded, err := c.DecodeBody(wire[5:])
	if err != nil {
		t.Fatal(err)
	}
	body2, err := c.AppendJSON(nil, decoded)
	if err != nil {
		t.Fatal(err)
	}
	vals2 := make([]any, len(m.paths))
	m.values(decoded, vals2)
	slow := m.appendEvent(nil, topic, partition, offset, vals2, body2, time.Time{})
	if string(fast) != string(slow) {
		t.Fatalf("transcoded and native renderings differ:\n%s\n%s", fast, slow)
	}
	return fast
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
	out := render(t, f, event.Clicks, "sluice.enriched.clicks", 2, 41, native)
	var e hecEvent
	if err := json.Unmarshal(out, &e); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var body map[string]any
	if err := json.Unmarshal(e.Event, &body); err != nil || body["type"] != "click" {
		t.Errorf("event %s: %v", e.Event, err)
	}
	if e.Time != float64(client.UnixMicro())/1e6 || e.Host != "203.0.113.7" || e.Source != "sluice.enriched.clicks" ||
		e.Sourcetype != "clicks:json" || e.Index != "web" {
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
	edx := f.families[event.EdX]
	vals := make([]any, len(edx.paths))
	edx.values(map[string]any{"envelope": map[string]any{"received_at": client}}, vals)
	out = edx.appendEvent(nil, "sluice.enriched.edx", 0, 1, vals, []byte(`{"x":1}`), time.Time{})
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
		"event_kind": "object",
		"event_text": nil,
		"time":       avro.Double(1700000000.5),
		"host":       avro.String("web-1"),
		"sourcetype": avro.String("access"),
		"index":      nil,
		"source":     nil,
		"fields":     map[string]any{"map": map[string]any{"dc": "eu", "tags": `["a","b"]`}},
		"extra_json": nil,
		"enrichment": nil,
	}
	out := render(t, f, event.HEC, "sluice.enriched.hec", 0, 3, native)
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
	out := avro.AppendJSONString(nil, in)
	var back string
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if back != "a\"b\\c\n\x01\ufffd\u2028é" {
		t.Errorf("round trip %q", back)
	}
}
