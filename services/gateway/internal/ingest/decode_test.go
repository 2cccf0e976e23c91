package ingest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/event"

	"github.com/sluicehq/sluice/services/gateway/internal/adapter"
)

func TestDecodeObject(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		code     string
	}{
		{"object", `{"a":1,"b":"x"}`, ""},
		{"big int stays exact", `{"t":1594209078132495123}`, ""},
		{"array", `[1,2]`, "not_object"},
		{"string", `"x"`, "not_object"},
		{"truncated", `{"a":`, "invalid_json"},
		{"trailing data", `{"a":1} x`, "invalid_json"},
		{"comment", `# a comment`, "invalid_json"},
		{"control char in string", "{\"a\":\"x\x01y\"}", "invalid_json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, rj := decodeObject([]byte(tc.in))
			if tc.code == "" {
				if rj != nil {
					t.Fatalf("rejected: %v", rj)
				}
				if n, ok := m["t"].(json.Number); ok && n.String() != "1594209078132495123" {
					t.Fatalf("number changed: %s", n)
				}
				return
			}
			if rj == nil || rj.Code != tc.code {
				t.Fatalf("got %v, want code %s", rj, tc.code)
			}
		})
	}
}

func TestBuildReadsLatin1Events(t *testing.T) {
	p := newTestPipeline(t)
	raw := []byte("{\"username\":\"u\",\"time\":\"2017-07-28T03:42:23+00:00\",\"agent\":\"Orange Espa\xf1a\"}")
	it := &Item{Raw: raw}
	rec, _, rj := p.build(nil, p.codecs["edx"], p.adapters["edx"].Adapt, &Request{Family: "edx"}, &adapter.Meta{}, 0, it)
	if rj != nil {
		t.Fatalf("rejected: %v", rj)
	}
	if !bytes.Contains(rec.Value, []byte("Orange España")) {
		t.Fatalf("agent not transcoded: %q", rec.Value)
	}
	if !slices.Contains(it.Quirks, "latin1_event") {
		t.Fatalf("quirk not recorded: %v", it.Quirks)
	}
}

// TestBuildKeepsNothingOfTheRequestBuffer checks that what build returns
// (the record's value, key and headers) does not reference the event's
// bytes, which live in the request's pooled body buffer: it must not change
// when the buffer is overwritten, as it is once the request is answered and
// the buffer reused. (decodeObject's strings share sonic's own copy of the
// event, not the buffer; this guards any change to that.)
func TestBuildKeepsNothingOfTheRequestBuffer(t *testing.T) {
	p := newTestPipeline(t)
	p.fast = map[event.Family]adapter.FastAdapter{event.EdX: adapter.EdX{}} // its strings share the event's bytes
	files, err := filepath.Glob("../adapter/testdata/*/*.json*")
	if err != nil || len(files) < 10 {
		t.Fatalf("test events: %v (%d files)", err, len(files))
	}
	families := map[string]event.Family{"edx": event.EdX, "crowdframe": event.CrowdFrame, "clicks": event.Clicks,
		"weaklayer": event.Weaklayer, "workstation": event.Workstation, "hec": event.HEC}
	built := 0
	for _, f := range files {
		fam, ok := families[filepath.Base(filepath.Dir(f))]
		if !ok {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			line = bytes.TrimSpace(line)
			if len(line) == 0 || line[0] != '{' {
				continue
			}
			raw := bytes.Clone(line)
			rec, _, rj := p.build(nil, p.codecs[fam], p.adapters[fam].Adapt, &Request{Family: fam, Endpoint: "/test"},
				&adapter.Meta{ReceivedAt: time.Unix(1, 0)}, 0, &Item{Raw: raw})
			if rj != nil {
				continue // some test events are rejected on purpose
			}
			value, key := bytes.Clone(rec.Value), bytes.Clone(rec.Key)
			var headers [][]byte
			for _, h := range rec.Headers {
				headers = append(headers, bytes.Clone(h.Value))
			}
			for i := range raw {
				raw[i] = '#'
			}
			if !bytes.Equal(rec.Value, value) || !bytes.Equal(rec.Key, key) {
				t.Fatalf("%s: the record changed when the request buffer was overwritten", f)
			}
			for i, h := range rec.Headers {
				if !bytes.Equal(h.Value, headers[i]) {
					t.Fatalf("%s: header %s changed when the request buffer was overwritten", f, h.Key)
				}
			}
			built++
		}
	}
	if built < 20 {
		t.Fatalf("only %d events built", built)
	}
}
