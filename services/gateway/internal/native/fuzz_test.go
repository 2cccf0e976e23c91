package native

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/services/gateway/internal/adapter"
	"github.com/sluicehq/sluice/services/gateway/internal/ingest"
)

// The fuzz targets run each native framing path with the adapter behind it
// and encode what comes out with the family's Avro schema, without Kafka:
// whatever a client sends, the gateway must answer (accept or reject with a
// reason), never panic, and never produce a record its schema refuses.
// Seeds: the fixtures in testdata/ and the corpora in testdata/fuzz/.

var fuzzCodecs sync.Map // event.Family → *avro.Codec

func fuzzCodec(t testing.TB, fam event.Family) *avro.Codec {
	if c, ok := fuzzCodecs.Load(fam); ok {
		return c.(*avro.Codec)
	}
	text, err := schemas.Latest(string(fam))
	if err != nil {
		t.Fatal(err)
	}
	c, err := avro.NewCodec(text)
	if err != nil {
		t.Fatal(err)
	}
	fuzzCodecs.Store(fam, c)
	return c
}

// fuzzEncode checks that out encodes with the family schema.
func fuzzEncode(t *testing.T, fam event.Family, out *adapter.Output) {
	t.Helper()
	env := &event.Envelope{EventID: "fuzz", Family: fam, EventType: out.EventType, ReceivedAt: time.Unix(1, 0),
		ClientTime: out.ClientTime, SentTime: out.SentTime, PartitionKey: out.PartitionKey, Quirks: out.Quirks, BatchIndex: -1}
	rec := make(map[string]any, len(out.Fields)+2)
	for k, v := range out.Fields {
		rec[k] = v
	}
	rec["envelope"] = avro.EnvelopeNative(env)
	rec["enrichment"] = nil
	if _, err := fuzzCodec(t, fam).Encode(nil, rec); err != nil {
		t.Fatalf("adapter output does not encode: %v\n%#v", err, out.Fields)
	}
}

// fuzzItem runs one framed item the way the pipeline does: reject, or
// decode (Latin-1 when not UTF-8) and adapt, then encode.
func fuzzItem(t *testing.T, fam event.Family, it ingest.Item, adapt func(*adapter.Input) (*adapter.Output, *event.Rejection)) {
	t.Helper()
	if it.Reject != nil {
		if it.Reject.Code == "" || it.Reject.Message == "" {
			t.Fatalf("rejection without a reason: %+v", it.Reject)
		}
		return
	}
	raw := it.Raw
	if !utf8.Valid(raw) {
		raw = []byte(latin1(raw))
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v map[string]any
	if d.Decode(&v) != nil || v == nil || d.More() {
		return
	}
	out, rj := adapt(&adapter.Input{Raw: raw, Value: v, Meta: adapter.Meta{ReceivedAt: time.Unix(1, 0), IP: "127.0.0.1", Host: "gw"}})
	if rj != nil {
		if rj.Code == "" || rj.Message == "" {
			t.Fatalf("rejection without a reason: %+v", rj)
		}
		return
	}
	fuzzEncode(t, fam, out)
}

func fuzzLines(f *testing.F, glob string) [][]byte {
	files, _ := filepath.Glob(glob)
	var out [][]byte
	for _, p := range files {
		out = append(out, lines(f, p)...)
	}
	return out
}

// FuzzSegment: a segment.io payload through the drop rules, the
// conversion to a tracking-log event and the edX adapter.
func FuzzSegment(f *testing.F) {
	// The fixtures' android track event without its device details, and
	// small synthetic payloads: with big seeds the minimizer spends the
	// fuzz time shrinking them.
	var real map[string]any
	if err := json.Unmarshal(fuzzLines(f, "testdata/segment/load_events_acceptance_segment_20150414.log")[0], &real); err != nil {
		f.Fatal(err)
	}
	real["context"] = map[string]any{"library": map[string]any{"name": "analytics-android", "version": "3.4.0"}}
	for _, k := range []string{"integrations", "anonymousId", "writeKey", "projectId", "messageId"} {
		delete(real, k)
	}
	small, _ := json.Marshal(real)
	f.Add(small)
	f.Add(segEvent(nil))
	f.Add(segEvent(func(m map[string]any) { m["userId"] = "x"; m["timestamp"] = "2015-04-14T20:42:49+0100" }))
	n := &Native{cfg: Config{EdX: EdXDefaults()}}
	n.cfg.EdX.AllowedChannels = []string{"mobile", "server", "client"}
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzItem(t, event.EdX, ingest.NewItem(body), func(in *adapter.Input) (*adapter.Output, *event.Rejection) {
			if rule, _ := n.segmentDrop(in); rule != "" {
				return nil, event.Reject("dropped", "", "dropped by %s", rule)
			}
			line, quirks, rj := segmentToEdX(in.Value, in.Meta.Host, true)
			if rj != nil {
				return nil, rj
			}
			raw, err := marshalJSON(line)
			if err != nil {
				t.Fatalf("rendering %#v: %v", line, err)
			}
			out, rj := adapter.EdX{}.Adapt(&adapter.Input{Raw: raw, Value: line, Meta: in.Meta})
			if rj == nil {
				out.Quirks = append(out.Quirks, stripQuirkValues(quirks)...)
			}
			return out, rj
		})
	})
}

// FuzzUserTrack: the parameters of a user_track call (query, and a body
// of one of the media types) to the tracking-log line and the edX adapter.
func FuzzUserTrack(f *testing.F) {
	f.Add("event_type=play_video&page=https%3A%2F%2Fx.org%2Fcourses%2Fcourse-v1%3AedX%2BDemoX%2BDemo%2Fx", []byte(`event=%7B%22a%22%3A1%7D`), uint8(0))
	f.Add("", []byte(`{"event_type":"seq_goto","event":{"old":1},"page":"https://x.org/courses/a/b/c/"}`), uint8(2))
	f.Add("courserun_key=course-v1:a+b+c", []byte(`event_type=x&event=not%20json`), uint8(1))
	types := []string{"application/x-www-form-urlencoded", "", "application/json", "text/plain", "multipart/form-data"}
	f.Fuzz(func(t *testing.T, query string, body []byte, ct uint8) {
		mt := types[int(ct)%len(types)]
		r, err := http.NewRequest(http.MethodPost, "/event?"+query, bytes.NewReader(body))
		if err != nil {
			return
		}
		p, err := readUserTrack(r, body, mt, map[string]string{"boundary": "x"})
		if err != nil {
			if asHTTPError(err).Status == 500 {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		line := userTrackLine(p, adapter.Meta{IP: "127.0.0.1", UserAgent: "ua", Host: "gw"}, "", "", time.Unix(1700000000, 0))
		raw, err := marshalJSON(line)
		if err != nil {
			return
		}
		fuzzItem(t, event.EdX, ingest.NewItem(raw), adapter.EdX{}.Adapt)
	})
}

// FuzzCrowdFrameForm: a form-encoded Crowd Frame message.
func FuzzCrowdFrameForm(f *testing.F) {
	f.Add([]byte(url.Values{"MessageBody": {cfClick}}.Encode()))
	f.Add([]byte(url.Values{"MessageBody": {cfQuery}}.Encode()))
	f.Add([]byte("MessageBody=%7B%7D&MessageBody=x"))
	f.Add([]byte(cfOld))
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzItem(t, event.CrowdFrame, crowdFrameForm(body), func(in *adapter.Input) (*adapter.Output, *event.Rejection) {
			in.Value["server_time"] = json.Number("1700000000000")
			return adapter.CrowdFrame{}.Adapt(in)
		})
	})
}

// FuzzInstallRequest: the /install body parser and key check.
func FuzzInstallRequest(f *testing.F) {
	k, _ := json.Marshal(map[string]any{"key": wlKey, "label": "Mitch's Laptop"})
	f.Add(k)
	f.Add([]byte(`{"key":{"group":"68886d61-572b-41a5-8edd-93a564fb5ba3","secret":"","checksum":""}}`))
	f.Add([]byte(`{"key":null,"label":1}`))
	v, _ := wlVerifier.parse()
	f.Fuzz(func(t *testing.T, body []byte) {
		key, _, err := parseInstallRequest(body)
		if err != nil {
			return
		}
		sum := keyChecksum(key.Group, key.Secret)
		if bytes.Equal(sum[:], key.Checksum) && key.verify([]installVerifier{v}) && key.Group.String() != wlKey.Group {
			t.Fatalf("a key of group %s verified against %s", key.Group, wlKey.Group)
		}
	})
}

// FuzzSensorToken: token verification with current and previous secrets.
func FuzzSensorToken(f *testing.F) {
	tk := &tokens{keys: [][]byte{[]byte(signingB), []byte(signingA)}, ttl: time.Hour, now: time.Now}
	old := &tokens{keys: [][]byte{[]byte(signingA)}, ttl: time.Hour, now: time.Now}
	good, _, _, _ := old.issue(uuid.MustParse(wlKey.Group), uuid.New())
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJncm91cCI6IngiLCJzZW5zb3IiOiJ5In0.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		g, s, err := tk.verify(tok)
		if err == nil && (g == uuid.Nil || s == uuid.Nil) && tok != good {
			t.Fatalf("token %q verified with nil ids", tok)
		}
	})
}

// FuzzWeaklayerEvents: a decompressed /events body, split and adapted with
// the token's sensor and group.
func FuzzWeaklayerEvents(f *testing.F) {
	var batch []json.RawMessage
	for _, p := range []string{"gateway_events_test_WindowLocation.json", "gateway_events_test_validUnknownEvent.json", "gateway_events_test_validWindowEvent.json"} {
		batch = append(batch, json.RawMessage(readFile(f, "testdata/weaklayer/"+p)))
	}
	b, _ := json.Marshal(batch)
	f.Add(b)
	f.Add(readFile(f, "testdata/weaklayer/gateway_sensor_test_legacy_PageLoad_batch.json"))
	f.Add([]byte(`[{"type":"TextCapture","time":1},{"type":"Install","time":2},{"type":"Window","time":-1},{"type":"WindowLocation","time":3,"port":70000}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := split(body)
		if err != nil {
			return
		}
		for _, it := range items {
			fuzzItem(t, event.Weaklayer, it, func(in *adapter.Input) (*adapter.Output, *event.Rejection) {
				return adapter.Weaklayer{}.AdaptFromSensor(in, "f5d4650e-5c73-4384-bfeb-90153fe65e0c", "68886d61-572b-41a5-8edd-93a564fb5ba3")
			})
		}
	})
}

// split frames a JSON array body as the Weaklayer handler does, without a
// server (the fuzz targets do not start one).
func split(body []byte) ([]ingest.Item, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, err
	}
	items := make([]ingest.Item, len(raw))
	for i, r := range raw {
		items[i] = ingest.NewItem(r)
	}
	return items, nil
}

var fuzzManifest = func() *adapter.WorkstationManifest {
	m, rj := adapter.ParseWorkstationManifest(map[string]any{
		"version": "1.0.4", "machine_guid": "3c830f47-9fcd-4a48-a568-750d8b179987", "type": "inspector",
		"user": map[string]any{"login": "johndoe", "timezone_sec": json.Number("10800")},
	})
	if rj != nil {
		panic(rj)
	}
	return m
}()

// fuzzArchiveFile frames and adapts one agent file as the archive handler.
func fuzzArchiveFile(t *testing.T, name string, text []byte, dec textDecoder) {
	n := &Native{}
	_, items, adapt := n.archiveFileItems(name, text, fuzzManifest, dec, true, nil)
	for _, it := range items {
		fuzzItem(t, event.Workstation, it, adapt)
	}
}

// FuzzActivityFile: activity.json text (tolerant JSON, encodings).
func FuzzActivityFile(f *testing.F) {
	f.Add(readFile(f, "testdata/workstation/docs_activity_example.json"))
	f.Add(inspectorActivity(f))
	f.Add([]byte("{\"version\":\"1\"}\n[{\"time\":1,\"window_activity\":{\"main_window\":\"\xcf\xf0\xe8\"}},]\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		fuzzArchiveFile(t, "activity.json", text, newTextDecoder("windows-1251"))
		fuzzArchiveFile(t, "activity.json", text, newTextDecoder("none"))
	})
}

// FuzzLogFile: an agent log file's text.
func FuzzLogFile(f *testing.F) {
	// The first lines of each vendor example (small seeds keep the
	// minimizer from eating the fuzz time).
	for _, p := range []string{"inspector_log.json", "service_log.json", "timetracking_log.json"} {
		ls := bytes.SplitAfter(readFile(f, "testdata/workstation/"+p), []byte("\n"))
		f.Add(bytes.Join(ls[:min(4, len(ls))], nil))
	}
	f.Add([]byte("{\"version\":\"1.0.0\"}\nPID=1 TID=2 important main \xcf\xf0\xe8\nnot a line\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		fuzzArchiveFile(t, "service_log.json", text, newTextDecoder("windows-1251"))
		fuzzArchiveFile(t, "service_log.json", text, newTextDecoder("none"))
	})
}

// FuzzRepairJSON: a repaired text is valid JSON and keeps every byte that
// is not whitespace or a comma.
func FuzzRepairJSON(f *testing.F) {
	f.Add(readFile(f, "testdata/workstation/docs_activity_example.json")[len(`{"version":"1.0.9"}`)+1:])
	f.Add([]byte(`{"a":[1 2 {"b":3}"c"],}`))
	f.Add([]byte(`[,]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, _, ok := repairJSON(b)
		if !ok {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("repairJSON(%q) = %q, not valid JSON", b, out)
		}
		strip := func(x []byte) []byte {
			return bytes.Map(func(r rune) rune {
				if r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' {
					return -1
				}
				return r
			}, x)
		}
		if !bytes.Equal(strip(out), strip(b)) {
			t.Fatalf("repairJSON(%q) = %q changed more than commas", b, out)
		}
	})
}

// FuzzArchive: a zip through the archive reader, the manifest and every
// agent file's framing and adapter.
func FuzzArchive(f *testing.F) {
	// Small archives: a compact manifest and a few entries.
	man := []byte(`{"version":"1.0.4","machine_guid":"3c830f47-9fcd-4a48-a568-750d8b179987","user":{"login":"johndoe","timezone_sec":10800},"type":"inspector"}`)
	f.Add(buildZip(f, zipEntry{"manifest.json", man},
		zipEntry{"activity.json", []byte("{\"version\":\"1.0.9\"}\n{\"time\":1692694112,\"window_activity\":{\"type\":43,\"input_type\":1\n\"location\":[]}}\n")},
		zipEntry{"inspector_log.json", []byte("{\"version\":\"1.0.0\"}\nPID=9212 TID=23400 important Controller::Start started\n")}))
	f.Add(buildZip(f, zipEntry{"a/manifest.json", man}, zipEntry{"a/service_log.json", []byte("PID=6556 TID=17352 important main Service started\n")}))
	f.Add(buildZip(f, zipEntry{"../manifest.json", man}))
	f.Add(buildZip(f, zipEntry{"manifest.json", man}, zipEntry{"x.zip", buildZip(f, zipEntry{"manifest.json", man})}))
	lim := archiveLimits{maxEntries: 16, maxTotal: 4 << 20, maxRatio: 100}
	dec := newTextDecoder("windows-1251")
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := readArchive(b, lim)
		if err != nil {
			if he := asHTTPError(err); he.Status == 500 || he.Code == "" {
				t.Fatalf("unclassified archive error %v", err)
			}
			return
		}
		var total int
		for _, data := range a.files {
			total += len(data)
		}
		if int64(total) > lim.maxTotal {
			t.Fatalf("read %d bytes, over the %d limit", total, lim.maxTotal)
		}
		man, err := archiveManifest(a, dec, true)
		if err != nil {
			return
		}
		n := &Native{}
		for _, name := range archiveFiles[1:] {
			if text, ok := a.files[name]; ok {
				_, items, adapt := n.archiveFileItems(name, text, man, dec, true, a.quirks)
				for _, it := range items {
					fuzzItem(t, event.Workstation, it, adapt)
				}
			}
		}
	})
}

// FuzzHEC: a HEC /event body split into envelopes and adapted with a
// token's defaults and index allow-list.
func FuzzHEC(f *testing.F) {
	f.Add(bytes.TrimSpace(readFile(f, "testdata/hec/edge_processor_batch.txt")))
	f.Add([]byte(fmt.Sprintf(`{"event": %s}`, bytes.TrimSpace(readFile(f, "testdata/dejavu/readme_example_mousedown.json")))))
	f.Add([]byte(`{"time": "1433188255.500", "host": "h", "index": "secret", "event": {"a": 1}, "fields": {"x": ["a", "b"]}}{"event":" "}`))
	f.Add([]byte(`[{"event":1}]`))
	tok := &HECToken{SourceID: "f", Host: "default-host", Sourcetype: "st", Index: "main", Indexes: []string{"main", "web"}}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := splitHEC(body, 100)
		if err != nil {
			return
		}
		for i, it := range items {
			if it.Reject != nil && i != len(items)-1 {
				t.Fatalf("splitting went on after a rejected item %d of %d", i, len(items))
			}
			fuzzItem(t, event.HEC, it, func(in *adapter.Input) (*adapter.Output, *event.Rejection) { return hecAdapt(in, tok) })
		}
	})
}
