package adapter

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/schemas"
)

// Test helpers shared by the crowdframe, weaklayer, workstation, clicks
// and hec tests (prefixed fam to stay clear of other families' helpers).

// famDecode decodes one event the way the gateway does: goccy/go-json,
// numbers as json.Number, into map[string]any.
func famDecode(raw []byte) (map[string]any, error) {
	dec := gojson.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// famInput builds an Input from one event's JSON text.
func famInput(tb testing.TB, raw string) *Input {
	tb.Helper()
	m, err := famDecode([]byte(raw))
	if err != nil || m == nil {
		tb.Fatalf("decoding %s: %v", raw, err)
	}
	return &Input{Raw: []byte(raw), Value: m, Meta: Meta{
		ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), IP: "192.0.2.10", UserAgent: "test",
	}}
}

// famLines reads a testdata file of one JSON document per line.
func famLines(tb testing.TB, name string) []string {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			out = append(out, s)
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// famRead reads a testdata file.
func famRead(tb testing.TB, name string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// famAt returns the JSON text (keys sorted) of the value at a dotted path
// in the JSON text js; array elements are addressed by index. It returns
// "<missing>" when the path does not exist.
func famAt(tb testing.TB, js, path string) string {
	tb.Helper()
	dec := json.NewDecoder(strings.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		tb.Fatalf("decoding %s: %v", js, err)
	}
	if path != "" {
		for _, p := range strings.Split(path, ".") {
			switch t := v.(type) {
			case map[string]any:
				var ok bool
				if v, ok = t[p]; !ok {
					return "<missing>"
				}
			case []any:
				i, err := strconv.Atoi(p)
				if err != nil || i < 0 || i >= len(t) {
					return "<missing>"
				}
				v = t[i]
			default:
				return "<missing>"
			}
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// famExpect checks want (path → JSON text) against the encoded record js.
func famExpect(tb testing.TB, js string, want map[string]string) {
	tb.Helper()
	for path, w := range want {
		if got := famAt(tb, js, path); got != w {
			tb.Errorf("%s = %s, want %s", path, got, w)
		}
	}
}

// famAdapt runs adapt on raw, requires success, checks that Fields covers
// exactly the family schema's fields, and returns the output and its
// encoded record as JSON.
func famAdapt(tb testing.TB, fam event.Family, adapt func(*Input) (*Output, *event.Rejection), in *Input) (*Output, string) {
	tb.Helper()
	out, rej := adapt(in)
	if rej != nil {
		tb.Fatalf("rejected: %v\nevent: %s", rej, in.Raw)
	}
	famCheckFieldSet(tb, fam, out)
	t, ok := tb.(*testing.T)
	if !ok {
		tb.Fatal("famAdapt needs a *testing.T")
	}
	js := mustEncode(t, fam, out)
	if testing.Verbose() {
		t.Log(js)
	}
	return out, js
}

// famReject runs adapt on raw and requires a rejection with code and field.
func famReject(tb testing.TB, adapt func(*Input) (*Output, *event.Rejection), in *Input, code, field string) {
	tb.Helper()
	out, rej := adapt(in)
	if rej == nil {
		tb.Fatalf("accepted, want rejection %s at %q: %+v", code, field, out)
	}
	if rej.Code != code || rej.Field != field {
		tb.Fatalf("rejected with %s at %q (%s), want %s at %q", rej.Code, rej.Field, rej.Message, code, field)
	}
}

var famSchemaFields sync.Map // family → []string

func famCheckFieldSet(tb testing.TB, fam event.Family, out *Output) {
	tb.Helper()
	v, ok := famSchemaFields.Load(fam)
	if !ok {
		text, err := schemas.Latest(string(fam))
		if err != nil {
			tb.Fatal(err)
		}
		var s struct{ Fields []struct{ Name string } }
		if err := json.Unmarshal([]byte(text), &s); err != nil {
			tb.Fatal(err)
		}
		var names []string
		for _, f := range s.Fields {
			if f.Name != "envelope" && f.Name != "enrichment" {
				names = append(names, f.Name)
			}
		}
		slices.Sort(names)
		famSchemaFields.Store(fam, names)
		v = names
	}
	var got []string
	for k := range out.Fields {
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(got, v.([]string)) {
		tb.Errorf("Fields has %v, schema has %v", got, v)
	}
}

// famCodec compiles a family's schema once, for fuzz tests and benchmarks.
var famCodecs sync.Map

func famCodec(tb testing.TB, fam event.Family) *avro.Codec {
	tb.Helper()
	if c, ok := famCodecs.Load(fam); ok {
		return c.(*avro.Codec)
	}
	text, err := schemas.Latest(string(fam))
	if err != nil {
		tb.Fatal(err)
	}
	c, err := avro.NewCodec(text)
	if err != nil {
		tb.Fatal(err)
	}
	famCodecs.Store(fam, c)
	return c
}

// famEncode encodes out with a test envelope, as the gateway will.
func famEncode(c *avro.Codec, fam event.Family, in *Input, out *Output, dst []byte) ([]byte, error) {
	env := &event.Envelope{
		EventID: "0190b6c4-0000-7000-8000-000000000000", Family: fam, EventType: out.EventType,
		ReceivedAt: in.Meta.ReceivedAt, ClientTime: out.ClientTime, SentTime: out.SentTime,
		IP: in.Meta.IP, Endpoint: "/v1/events/" + string(fam), PartitionKey: out.PartitionKey,
		Quirks: out.Quirks, GatewayVersion: "test", BatchIndex: -1, Raw: in.Raw,
	}
	rec := make(map[string]any, len(out.Fields)+2)
	for k, v := range out.Fields {
		rec[k] = v
	}
	rec["envelope"] = avro.EnvelopeNative(env)
	rec["enrichment"] = nil
	return c.Encode(dst, rec)
}

// famFuzz is the body of every family's fuzz test: arbitrary bytes decoded
// as the gateway decodes them must never make adapt panic, and whatever it
// accepts must encode.
func famFuzz(f *testing.F, fam event.Family, adapt func(*Input) (*Output, *event.Rejection), seeds []string) {
	for _, s := range seeds {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, raw []byte, strict bool) {
		m, err := famDecode(raw)
		if err != nil || m == nil {
			return
		}
		in := &Input{Raw: raw, Value: m, Meta: Meta{ReceivedAt: time.Unix(1700000000, 0), IP: "192.0.2.1", Strict: strict}}
		out, rej := adapt(in)
		if rej != nil {
			if rej.Code == "" || out != nil {
				t.Fatalf("rejection %+v with output %v", rej, out)
			}
			return
		}
		if _, err := famEncode(famCodec(t, fam), fam, in, out, nil); err != nil {
			t.Fatalf("accepted event does not encode: %v\nevent: %s", err, raw)
		}
	})
}

// famBench measures adapt plus Avro encoding of one event.
func famBench(b *testing.B, fam event.Family, adapt func(*Input) (*Output, *event.Rejection), raw string) {
	c := famCodec(b, fam)
	in := famInput(b, raw)
	var buf []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		out, rej := adapt(in)
		if rej != nil {
			b.Fatal(rej)
		}
		var err error
		if buf, err = famEncode(c, fam, in, out, buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCrowdFrameAdapt(t *testing.T) {
	cf := CrowdFrame{}
	newest := famLines(t, "crowdframe/synthetic_newest.jsonl")
	oldest := famLines(t, "crowdframe/synthetic_oldest.jsonl")
	stored := famLines(t, "crowdframe/synthetic_lambda_stored.jsonl")
	for _, tc := range []struct {
		name   string
		raw    string
		typ    string
		quirks []string
		want   map[string]string
	}{
		// Synthetic, newest client (see testdata/crowdframe/README.md).
		{"newest/context", newest[0], "context", nil, map[string]string{
			"worker": `"W1"`, "bucket": `"crowdframe-private"`, "region": `"eu-west-1"`, "unit_id": "null",
			"sequence": "0", "client_time": `"2023-11-14T22:13:20Z"`, "server_time": "null",
			"details.ip": `"203.0.113.7"`, "details_json": `"{\"ua\":\"Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0\",\"ip\":\"203.0.113.7\"}"`,
			"envelope.partition_key": `"W1"`, "envelope.event_type": `"context"`,
		}},
		{"newest/init", newest[1], "init", nil, map[string]string{
			"details.section": `"questionnaire_0"`, "details.scrollHeight": "2400", "details.screenWidth": "null",
		}},
		{"newest/button", newest[2], "button", nil, map[string]string{
			"unit_id": `"unit_3"`, "details.button": `"NEXT"`, "details.timeStamp": "1523.4", "details.x": "640",
		}},
		{"newest/click", newest[3], "click", nil, map[string]string{
			"details.mouseButton": `"left"`, "details.endTime": "2450.9", "details.clicks": "2",
			"details.target": `{"className":"statement","elementName":"p","id":null}`, "details.timeStamp": "null",
		}},
		{"newest/movements", newest[4], "movements", []string{"class_svg_object"}, map[string]string{
			"details.points.0.target.className": `"card"`, "details.points.1.x": "15.5",
			"details.points.1.target.className": `""`,
			"details_json":                      `"{\"section\":\"document_0\",\"points\":[{\"timeStamp\":3000.2,\"x\":10,\"y\":20,\"target\":{\"elementName\":\"div\",\"className\":\"card\"}},{\"timeStamp\":3100.7,\"x\":15.5,\"y\":22,\"target\":{\"elementName\":\"svg\",\"className\":{}}}]}"`,
		}},
		{"newest/shortcut", newest[5], "shortcut", nil, map[string]string{
			"details.ctrl": "true", "details.alt": "false", "details.key": `"c"`,
		}},
		{"newest/keySequence", newest[6], "keySequence", nil, map[string]string{
			"details.sentence": `"hi"`, "details.keySequence.1.key": `"i"`, "details.keySequence.2.key": "null",
		}},
		{"newest/selection", newest[7], "selection", nil, map[string]string{
			"details.selected": `"the selected words"`, "details.startTime": "6000",
		}},
		{"newest/unload", newest[8], "unload", nil, map[string]string{"details": `{"section":"document_1","timeStamp":7000}`}},
		{"newest/window_focus", newest[9], "window_focus", nil, map[string]string{"details.timeStamp": "8000.8"}},
		{"newest/window_blur", newest[10], "window_blur", nil, map[string]string{"details.timeStamp": "9000.9"}},
		{"newest/scroll", newest[11], "scroll", nil, map[string]string{
			"details.startTimestamp": "10000.1", "details.endTimestamp": "10300.4", "details.y": "540",
		}},
		{"newest/resize", newest[12], "resize", nil, map[string]string{"details.width": "1024", "details.timeStamp": "11000.2"}},
		{"newest/copy", newest[13], "copy", nil, map[string]string{"details.target": `"copied text"`}},
		{"newest/cut", newest[14], "cut", nil, map[string]string{"details.target": `"cut text"`}},
		{"newest/paste", newest[15], "paste", nil, map[string]string{"details.text": `"pasted text"`}},
		{"newest/text", newest[16], "text", nil, map[string]string{
			"details.text":    `"typed \u003cb\u003etext\u003c/b\u003e \u0026 more"`,
			"details_json":    `"{\"section\":\"document_1\",\"timeStamp\":15000.3,\"text\":\"typed \u003cb\u003etext\u003c/b\u003e \u0026 more\"}"`,
			"envelope.quirks": "[]",
		}},
		{"newest/radioChange", newest[17], "radioChange", nil, map[string]string{"details.group": `"relevance"`, "details.value": `"2"`}},
		{"newest/query", newest[18], "query", nil, map[string]string{"details.query": `"a=b and c"`}},
		{"newest/queryResults", newest[19], "queryResults", nil, map[string]string{"details.urlAmount": "10", "details.urlArray": "null"}},
		{"newest/linkVisited", newest[20], "linkVisited", nil, map[string]string{"details": `{"section":"document_1"}`}},

		// Synthetic, oldest client spellings.
		{"oldest/context_null_details", oldest[0], "context", nil, map[string]string{
			"details": "null", "details_json": `"null"`, "bucket": "null", "unit_id": "null",
		}},
		{"oldest/init_window_size", oldest[1], "init", []string{"init_window_size"}, map[string]string{
			"details": `{"height":720,"screenHeight":1080,"screenWidth":1920,"scrollHeight":2400,"scrollWidth":1280,"section":"questionnaire_0","width":1280}`,
		}},
		{"oldest/click_string_target", oldest[2], "click", []string{"target_string"}, map[string]string{
			"details.timeStamp": "1000.5", "details.target": `{"className":null,"elementName":"BUTTON","id":null}`,
		}},
		{"oldest/select", oldest[3], "selection", []string{"type_select"}, map[string]string{
			"type": `"selection"`, "details.selected": `"old selection"`, "details.timeStamp": "2000.5",
		}},
		{"oldest/window_focus_no_timeStamp", oldest[4], "window_focus", nil, map[string]string{"details.timeStamp": "null"}},
		{"oldest/window_blur_no_timeStamp", oldest[5], "window_blur", nil, map[string]string{"details.timeStamp": "null"}},
		{"oldest/scroll_TimeStamp", oldest[6], "scroll", []string{"scroll_timestamp_case"}, map[string]string{
			"details.startTimestamp": "5000.1", "details.endTimestamp": "5300.4",
		}},
		{"oldest/text_value", oldest[7], "text", []string{"text_value_key"}, map[string]string{"details.text": `"old text key"`}},
		{"oldest/queryResults_urlArray", oldest[8], "queryResults", []string{"query_results_url_array"}, map[string]string{
			"details.urlAmount": "3", "details.urlArray.2": `"https://example.org/c"`,
		}},

		// Synthetic, as stored by the Crowd Frame Lambda.
		{"stored/click", stored[0], "click", []string{"sequence_string", "details_json_string"}, map[string]string{
			"sequence": "42", "sequence_try": "1", "server_time": `"2023-11-14T22:13:22.345Z"`,
			"details.mouseButton": `"right"`, "details.target.elementName": `"a"`,
			"details_json": `"{\"section\":\"document_0\",\"mouseButton\":\"right\",\"startTime\":2001.1,\"endTime\":2001.1,\"x\":3,\"y\":4,\"target\":{\"elementName\":\"a\",\"className\":\"link\"},\"clicks\":1}"`,
		}},
		{"stored/context", stored[1], "context", []string{"sequence_string", "details_json_string"}, map[string]string{
			"sequence": "0", "sequence_try": "2", "details.ua": `"Mozilla/5.0"`,
		}},

		// Synthetic edge cases.
		{"unknown_type_kept", `{"type":"hover","worker":"W3","client_time":1700000000000,"sequence":1,"details":{"section":"s","dwell":[1,2]},"extra":true}`,
			"hover", nil, map[string]string{
				"details": "null", "details_json": `"{\"section\":\"s\",\"dwell\":[1,2]}"`, "extra_json": `"{\"extra\":true}"`,
			}},
		{"unknown_type_details_not_json", `{"type":"hover","worker":"W3","details":"plain text"}`,
			"hover", nil, map[string]string{"details_json": `"\"plain text\""`}},
		{"client_time_string", `{"type":"unload","worker":"W3","client_time":"1700000000000","details":{"section":"s","timeStamp":1}}`,
			"unload", []string{"client_time_string"}, map[string]string{"client_time": `"2023-11-14T22:13:20Z"`}},
		{"unitID_thesis_spelling", `{"type":"unload","worker":"W3","unitID":"u1","details":{}}`,
			"unload", []string{"unit_id_key_case"}, map[string]string{"unit_id": `"u1"`}},
		{"radio_value_number", `{"type":"radioChange","worker":"W3","details":{"group":"g","value":3}}`,
			"radioChange", []string{"radio_value_json"}, map[string]string{"details.value": `"3"`}},
		// The Sluice browser agent (services/gateway/internal/web/sluice.js):
		// a client event id and the target's id (schema v2).
		{"sluice_agent_click", `{"worker":"demo-1","task":"tictactoe","batch":"demo","type":"click","sequence":3,"client_time":1700000000000,` +
			`"details":{"mouseButton":"left","startTime":812.5,"endTime":812.5,"x":138,"y":136,"target":{"elementName":"td","className":"cell","id":"(1,1)"},"clicks":1,"section":"board"},` +
			`"event_id":"0b6c9a3e-2f4d-4c1e-9a7b-3d5e6f708192"}`,
			"click", nil, map[string]string{
				"details.target": `{"className":"cell","elementName":"td","id":"(1,1)"}`, "details.clicks": "1",
				"extra_json": "null",
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, js := famAdapt(t, event.CrowdFrame, cf.Adapt, famInput(t, tc.raw))
			if out.EventType != tc.typ {
				t.Errorf("EventType = %q, want %q", out.EventType, tc.typ)
			}
			if !slices.Equal(out.Quirks, tc.quirks) {
				t.Errorf("Quirks = %q, want %q", out.Quirks, tc.quirks)
			}
			wantUnknown := strings.HasPrefix(tc.name, "unknown")
			if out.Unknown != wantUnknown {
				t.Errorf("Unknown = %v, want %v", out.Unknown, wantUnknown)
			}
			if out.PartitionKey == "" || famAt(t, js, "worker") != strconv.Quote(out.PartitionKey) {
				t.Errorf("PartitionKey = %q, worker = %s", out.PartitionKey, famAt(t, js, "worker"))
			}
			if ct := famAt(t, js, "client_time"); ct != "null" && famAt(t, js, "envelope.client_time") != ct {
				t.Errorf("envelope.client_time = %s, client_time = %s", famAt(t, js, "envelope.client_time"), ct)
			}
			famExpect(t, js, tc.want)
		})
	}
}

func TestCrowdFrameClientEventID(t *testing.T) {
	// The agent's event_id becomes the envelope's event id, not an extra member.
	out, rej := CrowdFrame{}.Adapt(famInput(t, `{"type":"unload","worker":"w","event_id":"e-1","details":{}}`))
	if rej != nil || out.EventID != "e-1" || out.Fields["extra_json"] != nil {
		t.Fatalf("EventID = %q, extra_json = %v, rejection %v", out.EventID, out.Fields["extra_json"], rej)
	}
	if _, rej := (CrowdFrame{}).Adapt(famInput(t, `{"type":"unload","worker":"w","event_id":7}`)); rej == nil || rej.Field != "event_id" {
		t.Fatalf("a numeric event_id: %v", rej)
	}
}

func TestCrowdFrameEveryTypeHasDetails(t *testing.T) {
	// Every documented type has a typed details record, in both clients'
	// fixtures together.
	seen := map[string]bool{}
	for _, raw := range append(famLines(t, "crowdframe/synthetic_newest.jsonl"), famLines(t, "crowdframe/synthetic_oldest.jsonl")...) {
		out, rej := CrowdFrame{}.Adapt(famInput(t, raw))
		if rej != nil {
			t.Fatal(rej)
		}
		seen[out.EventType] = true
	}
	for typ := range cfDetails {
		if !seen[typ] {
			t.Errorf("type %s has no fixture", typ)
		}
	}
	if len(cfDetails) != 21 {
		t.Errorf("%d known types, want the 21 of reference section 2.3", len(cfDetails))
	}
}

func TestCrowdFrameReject(t *testing.T) {
	cf := CrowdFrame{}
	for _, tc := range []struct {
		name, raw, code, field string
		strict                 bool
	}{
		{"missing_worker", `{"type":"click","details":{}}`, event.ReasonMissingField, "worker", false},
		{"null_worker", `{"type":"click","worker":null,"details":{}}`, event.ReasonMissingField, "worker", false},
		{"empty_worker", `{"type":"click","worker":"","details":{}}`, event.ReasonMissingField, "worker", false},
		{"worker_number", `{"type":"click","worker":7}`, event.ReasonInvalidField, "worker", false},
		{"missing_type", `{"worker":"W"}`, event.ReasonMissingField, "type", false},
		{"unknown_type_strict", `{"type":"hover","worker":"W","details":{}}`, event.ReasonUnknownType, "type", true},
		{"bad_sequence", `{"type":"unload","worker":"W","sequence":"x_1"}`, event.ReasonInvalidField, "sequence", false},
		{"fraction_sequence", `{"type":"unload","worker":"W","sequence":1.5}`, event.ReasonInvalidField, "sequence", false},
		{"bad_client_time", `{"type":"unload","worker":"W","client_time":"yesterday"}`, event.ReasonInvalidField, "client_time", false},
		{"details_not_object", `{"type":"unload","worker":"W","details":[1]}`, event.ReasonInvalidField, "details", false},
		{"details_string_not_json", `{"type":"unload","worker":"W","details":"{oops"}`, event.ReasonInvalidField, "details", false},
		{"wrong_field_type", `{"type":"shortcut","worker":"W","details":{"ctrl":"yes"}}`, event.ReasonInvalidField, "details.ctrl", false},
		{"wrong_point_type", `{"type":"movements","worker":"W","details":{"points":[{"x":1},{"x":"far"}]}}`, event.ReasonInvalidField, "details.points[1].x", false},
		{"point_not_object", `{"type":"movements","worker":"W","details":{"points":[{"x":1},2]}}`, event.ReasonInvalidField, "details.points[1]", false},
		{"wrong_target_class", `{"type":"click","worker":"W","details":{"target":{"className":5}}}`, event.ReasonInvalidField, "details.target.className", false},
		{"wrong_url", `{"type":"queryResults","worker":"W","details":{"urlArray":["a",1]}}`, event.ReasonInvalidField, "details.urlArray[1]", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := famInput(t, tc.raw)
			in.Meta.Strict = tc.strict
			famReject(t, cf.Adapt, in, tc.code, tc.field)
		})
	}
	t.Run("known_type_strict_accepted", func(t *testing.T) {
		in := famInput(t, famLines(t, "crowdframe/synthetic_newest.jsonl")[3])
		in.Meta.Strict = true
		famAdapt(t, event.CrowdFrame, cf.Adapt, in)
	})
}

func FuzzCrowdFrameAdapt(f *testing.F) {
	seeds := famLines(f, "crowdframe/synthetic_newest.jsonl")
	seeds = append(seeds, famLines(f, "crowdframe/synthetic_oldest.jsonl")...)
	seeds = append(seeds, famLines(f, "crowdframe/synthetic_lambda_stored.jsonl")...)
	famFuzz(f, event.CrowdFrame, CrowdFrame{}.Adapt, seeds)
}

func BenchmarkCrowdFrameAdapt(b *testing.B) {
	lines := famLines(b, "crowdframe/synthetic_newest.jsonl")
	b.Run("click", func(b *testing.B) { famBench(b, event.CrowdFrame, CrowdFrame{}.Adapt, lines[3]) })
	b.Run("movements", func(b *testing.B) { famBench(b, event.CrowdFrame, CrowdFrame{}.Adapt, lines[4]) })
}
