package ingest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/gateway/internal/adapter"
)

// edxTestLines returns every edX test line: the adapter's test events
// (testdata/edx, real lines from edX repositories and their EAP logs) and
// the benchmark's 400 real lines.
func edxTestLines(tb testing.TB) [][]byte {
	tb.Helper()
	var files []string
	for _, pat := range []string{"../adapter/testdata/edx/*", "../adapter/testdata/edx/*/*", "../../../standalone/tools/sluice-bench/testdata/edx.ndjson"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			tb.Fatal(err)
		}
		files = append(files, m...)
	}
	var lines [][]byte
	for _, f := range files {
		if st, err := os.Stat(f); err != nil || st.IsDir() || strings.HasSuffix(f, ".md") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		if bytes.HasSuffix([]byte(f), []byte(".json")) && bytes.Count(bytes.TrimSpace(data), []byte("\n")) > 0 && data[0] == '{' {
			// a pretty-printed single event
			var buf bytes.Buffer
			for _, l := range bytes.Split(data, []byte("\n")) {
				buf.Write(bytes.TrimSpace(l))
			}
			lines = append(lines, buf.Bytes())
			continue
		}
		for _, l := range bytes.Split(data, []byte("\n")) {
			if l = bytes.TrimSpace(l); len(l) > 0 && l[0] == '{' {
				lines = append(lines, l)
			}
		}
	}
	if len(lines) < 400 {
		tb.Fatalf("only %d edX test lines", len(lines))
	}
	return lines
}

// compareFast builds raw with the edX fast path and the general path and
// fails when the fast path took it and the two records differ. It returns
// whether the fast path took it.
func compareFast(t testing.TB, p *Pipeline, raw []byte, meta adapter.Meta, drop DropFunc) bool {
	if !utf8.Valid(raw) {
		return false // the pipeline reads such an event as Latin-1, the general way
	}
	fa := p.adapters[event.EdX].(adapter.FastAdapter)
	codec := p.codecs[event.EdX]
	req := &Request{Family: event.EdX, Endpoint: "/v1/events/edx", SourceKey: "src", BatchID: "b", Drop: drop}
	fast, took, fign := p.buildFast(nil, fa, codec, req, &meta, 3, &Item{Raw: bytes.Clone(raw)})
	if !took {
		return false
	}
	slow, sign, rj := p.build(nil, codec, fa.Adapt, req, &meta, 3, &Item{Raw: bytes.Clone(raw)})
	if rj != nil {
		t.Fatalf("the fast path took an event the general path rejects (%s: %s):\n%s", rj.Code, rj.Message, raw)
	}
	if (fign == nil) != (sign == nil) || fign != nil && *fign != *sign {
		t.Fatalf("drop rules differ: fast %v, general %v:\n%s", fign, sign, raw)
	}
	if fign != nil {
		return true
	}
	if err := sameRecord(codec, fast, slow); err != nil {
		t.Fatalf("%v\nevent: %s", err, raw)
	}
	return true
}

// TestEdXFastPathMatchesTheGeneralPath: on every edX test line, whenever
// the fast path takes the line its record is the one the general path
// builds, and it takes most real lines.
func TestEdXFastPathMatchesTheGeneralPath(t *testing.T) {
	p := newTestPipeline(t)
	lines := edxTestLines(t)
	meta := adapter.Meta{ReceivedAt: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC), IP: "192.0.2.7", UserAgent: "ua"}
	dropLogs := func(in *adapter.Input) (string, string) {
		if et, _ := in.TopString("event_type"); strings.HasPrefix(et, "/event_logs") {
			return "staff", "dropped"
		}
		return "", ""
	}
	took := 0
	for _, l := range lines {
		if compareFast(t, p, l, meta, dropLogs) {
			took++
		}
		strict := meta
		strict.Strict = true
		compareFast(t, p, l, strict, nil)
	}
	t.Logf("the fast path took %d of %d lines", took, len(lines))
	if took < len(lines)*3/4 {
		t.Fatalf("the fast path took only %d of %d lines", took, len(lines))
	}
	// The server enables it: the samples pass checkFast with the schema.
	if err := checkFast(p.adapters[event.EdX].(adapter.FastAdapter), p.codecs[event.EdX], fastSamples[event.EdX]); err != nil {
		t.Fatalf("checkFast: %v", err)
	}
}

// FuzzEdXFastMatchesGeneral: for any input the fast path takes, the
// general path builds the same record (and does not reject it).
func FuzzEdXFastMatchesGeneral(f *testing.F) {
	for _, l := range edxTestLines(f) {
		f.Add(l)
	}
	for _, s := range fastSamples[event.EdX] {
		f.Add([]byte(s))
	}
	p := newTestPipeline(f)
	meta := adapter.Meta{ReceivedAt: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 64<<10 {
			return
		}
		compareFast(t, p, raw, meta, nil)
	})
}

// TestServerUsesTheEdXFastPath: the server turns the edX fast path on with
// the schema in the registry, and NoFastPath turns it off.
func TestServerUsesTheEdXFastPath(t *testing.T) {
	if g := newTestGW(t, nil); g.srv.pipe.fast[event.EdX] == nil {
		t.Fatal("the edX fast path is off: checkFast failed with the registry's schema")
	}
	if g := newTestGW(t, func(s *gwSetup) { s.opts.NoFastPath = true }); len(g.srv.pipe.fast) != 0 {
		t.Fatal("NoFastPath left a fast path on")
	}
}

// NDJSON lines are not measured when split: the fast path bounds their
// nesting at limits.max_depth as it scans, and a deeper line goes the
// general way, which measures it and refuses it with too_deep, as a line
// measured when split was refused before.
func TestFastPathBoundsNesting(t *testing.T) {
	p := newTestPipeline(t)
	p.fast = map[event.Family]adapter.FastAdapter{event.EdX: adapter.EdX{}}
	codec := p.codecs[event.EdX]
	req := &Request{Family: event.EdX, Endpoint: "/v1/events/edx"}
	meta := adapter.Meta{ReceivedAt: time.Now()}
	line := func(depth int) []byte { // the event object holds depth-2 more levels
		return []byte(`{"username":"u","event_type":"t","time":"2024-01-02T03:04:05Z","event":` +
			strings.Repeat(`{"a":`, depth-1) + "1" + strings.Repeat("}", depth-1) + `}`)
	}
	max := p.limits.MaxDepth
	for _, depth := range []int{2, max - 1, max} {
		items, err := split(line(depth), formatNDJSON, 10)
		if err != nil || len(items) != 1 || items[0].depth != depthUnknown {
			t.Fatalf("split: %v %+v", err, items)
		}
		if _, took, ign := p.buildFast(nil, adapter.EdX{}, codec, req, &meta, 0, &items[0]); !took || ign != nil {
			t.Fatalf("depth %d: the fast path did not take it", depth)
		}
		if _, _, rj := p.build(nil, codec, p.adapters[event.EdX].Adapt, req, &meta, 0, &items[0]); rj != nil {
			t.Fatalf("depth %d: %s", depth, rj.Message)
		}
	}
	for _, depth := range []int{max + 1, max + 2, 500} {
		items, _ := split(line(depth), formatNDJSON, 10)
		if _, took, _ := p.buildFast(nil, adapter.EdX{}, codec, req, &meta, 0, &items[0]); took {
			t.Fatalf("depth %d: the fast path took it", depth)
		}
		_, _, rj := p.build(nil, codec, p.adapters[event.EdX].Adapt, req, &meta, 0, &items[0])
		if rj == nil || rj.Code != "too_deep" || items[0].depth != depth {
			t.Fatalf("depth %d: %+v, measured %d", depth, rj, items[0].depth)
		}
	}
}
