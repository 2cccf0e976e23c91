package ingest

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

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
	rec, _, rj := p.build(p.codecs["edx"], p.adapters["edx"].Adapt, &Request{Family: "edx"}, &adapter.Meta{}, 0, it)
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
