package project

import (
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/services/enricher/internal/eventtest"
)

// fixtures returns one record of every family, encoded with its schema.
func fixtures(t *testing.T) map[event.Family][]byte {
	t.Helper()
	man := eventtest.Manifest("g", "jdoe", 10800)
	at := time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC)
	env := eventtest.Env{ID: "x", IP: "81.2.69.142", UA: "ua", Client: at.Add(-time.Second), Sent: at, Quirks: []string{"q1", "q2"}}
	natives := map[event.Family]map[string]any{
		event.EdX: eventtest.EdX(env, map[string]any{"username": "u", "ip": "1.2.3.4", "event_type": "play_video",
			"context": eventtest.EdXContext("course-v1:a+b+c", "a", 42), "page": "https://x/",
			"time": map[string]any{"long.timestamp-micros": at}, "extra": map[string]any{"label": `"x"`}}),
		event.CrowdFrame:  eventtest.CrowdFrame(env, "query", "w", "t", "b", 3, eventtest.CFQuery("s", "q")),
		event.Weaklayer:   eventtest.Weaklayer(env, "WindowLocation", "s", 123, eventtest.WLLocation("https", "h", 8443, "/p", "?q", "#h", 5)),
		event.Workstation: eventtest.WorkstationActivity(env, man, 1692694112, 469, 52, 10, 1, 29),
		event.Clicks:      eventtest.Clicks(env, "mousedown", "s", "https://p/", "id", "a b"),
		event.HEC:         eventtest.HEC(env, "line"),
	}
	out := map[event.Family][]byte{}
	for f, n := range natives {
		c, err := eventtest.Codec(f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.Encode(nil, n)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = b[5:]
	}
	return out
}

// TestWholeRecordMatchesGoavro decodes every field and compares with
// goavro's native values.
func TestWholeRecordMatchesGoavro(t *testing.T) {
	for f, body := range fixtures(t) {
		text, err := schemas.Latest(string(f))
		if err != nil {
			t.Fatal(err)
		}
		p, err := Compile(text)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		got, err := p.Decode(body, nil)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		c, _ := avro.NewCodec(text)
		want, err := c.DecodeBody(body)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", f, got, want)
		}
	}
}

func TestWantedFieldsOnly(t *testing.T) {
	body := fixtures(t)[event.Workstation]
	text, _ := schemas.Latest("workstation")
	p, err := Compile(text)
	if err != nil {
		t.Fatal(err)
	}
	want := Wanted{
		"envelope":   {"ip": nil, "received_at": nil},
		"manifest":   {"user": {"login": nil}},
		"activity":   {"window_activity": {"type": nil, "location": {"type": nil}}},
		"enrichment": nil,
	}
	got, err := p.Decode(body, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got["enrichment"] != nil {
		t.Fatalf("fields %v", got)
	}
	env := got["envelope"].(map[string]any)
	if len(env) != 2 || env["ip"].(map[string]any)["string"] != "81.2.69.142" {
		t.Errorf("envelope %v", env)
	}
	user := got["manifest"].(map[string]any)["user"].(map[string]any)["sluice.workstation.User"].(map[string]any)
	if len(user) != 1 || user["login"].(map[string]any)["string"] != "jdoe" {
		t.Errorf("user %v", user)
	}
	wa := got["activity"].(map[string]any)["sluice.workstation.Activity"].(map[string]any)["window_activity"].(map[string]any)["sluice.workstation.WindowActivity"].(map[string]any)
	locs := wa["location"].([]any)
	if wa["type"].(map[string]any)["int"] != int32(52) || len(locs) != 2 || locs[1].(map[string]any)["type"].(map[string]any)["int"] != int32(29) {
		t.Errorf("window activity %v", wa)
	}
}

func TestTruncatedBodies(t *testing.T) {
	text, _ := schemas.Latest("edx")
	p, err := Compile(text)
	if err != nil {
		t.Fatal(err)
	}
	body := fixtures(t)[event.EdX]
	for i := range len(body) {
		if _, err := p.Decode(body[:i], nil); err == nil {
			t.Fatalf("a body cut at %d of %d decoded", i, len(body))
		}
	}
	if _, err := p.Decode(append(append([]byte{}, body...), 0), nil); err == nil {
		t.Fatal("trailing bytes accepted")
	}
}

func TestLooseUnions(t *testing.T) {
	body := fixtures(t)[event.CrowdFrame]
	text, _ := schemas.Latest("crowdframe")
	p, err := Compile(text)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.DecodeLoose(body, Wanted{"envelope": {"ip": nil, "client_time": nil}, "task": nil, "details": nil, "enrichment": nil})
	if err != nil {
		t.Fatal(err)
	}
	env := got["envelope"].(map[string]any)
	if env["ip"] != "81.2.69.142" || got["task"] != "t" || got["enrichment"] != nil {
		t.Errorf("loose values: %v", got)
	}
	if _, ok := env["client_time"].(time.Time); !ok {
		t.Errorf("client_time %T", env["client_time"])
	}
	// A record branch keeps its name: the reader needs to know which.
	d := got["details"].(map[string]any)["sluice.crowdframe.Query"].(map[string]any)
	if d["query"] != "q" || d["section"] != "s" {
		t.Errorf("details %v", d)
	}
}
