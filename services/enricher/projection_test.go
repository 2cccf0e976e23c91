package enricher

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/avro/avrotest"
)

// TestProjectionEnrichesLikeFullDecode enriches the same mixed records
// twice, decoding only the fields resolve.Reads lists and decoding whole
// records, and requires byte-identical enriched records: a field the
// enrichment reads but the list lacks shows up here.
func TestProjectionEnrichesLikeFullDecode(t *testing.T) {
	_, serde := avrotest.Registry(t)
	cfg := Defaults()
	cfg.GeoIP = testDatabases(t)
	build := func(project bool) *Service {
		svc, err := New(cfg, Deps{Serde: serde})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = svc.Stop(context.Background()) })
		svc.handler.project = project
		return svc
	}
	partial, whole := build(true), build(false)
	recs := mixedRaw(t, serde, 3000, 200)
	for i, r := range recs {
		r.Partition, r.Offset = int32(i%6), int64(i)
	}
	now := time.Now()
	run := func(s *Service) [][]byte {
		s.store.Begin()
		out, err := s.handler.transform(context.Background(), recs, now)
		if err != nil {
			t.Fatal(err)
		}
		s.store.Commit()
		if len(out.dead) > 0 {
			t.Fatalf("dead letter: %s", out.dead[0].Message)
		}
		var vals [][]byte
		for _, r := range out.records {
			vals = append(vals, r.Value)
		}
		return vals
	}
	a, b := run(partial), run(whole)
	if len(a) != len(b) || len(a) != len(recs) {
		t.Fatalf("%d and %d records, want %d", len(a), len(b), len(recs))
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("record %d (%s) differs between the partial and the whole decode", i, recs[i].Topic)
		}
	}
}
