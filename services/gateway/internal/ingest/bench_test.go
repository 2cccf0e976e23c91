package ingest

import (
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/avro/avrotest"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/gateway/internal/adapter"
)

// newTestPipeline builds a Pipeline without Kafka, for the validate and
// encode half of the ingest path.
func newTestPipeline(tb testing.TB) *Pipeline {
	tb.Helper()
	_, serde := avrotest.Registry(tb)
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	codecs := map[event.Family]*avro.Codec{}
	for _, f := range event.Families {
		c, err := serde.Subject(avro.ValueSubject(event.RawTopic(f)))
		if err != nil {
			tb.Fatal(err)
		}
		codecs[f] = c
	}
	return &Pipeline{
		adapters: adapter.All(), codecs: codecs, version: "test", keepRaw: true,
		produceTimeout: time.Second, m: m, log: zap.NewNop(),
		limits: Limits{MaxBodyBytes: 4 << 20, MaxDecompressedBytes: 16 << 20, MaxRatio: 100, MaxEvents: 10000, MaxEventBytes: 512 << 10, MaxDepth: 64},
	}
}

// BenchmarkBuildEdX measures decode + adapt + Avro encode of real edX
// lines: the general path (decode, Adapt, encode) and the fast path
// (AdaptFast and the typed envelope), which takes all 400 of these lines.
func BenchmarkBuildEdX(b *testing.B) {
	data, err := os.ReadFile("../../../standalone/tools/sluice-bench/testdata/edx.ndjson")
	if err != nil {
		b.Skip("bench input not found:", err)
	}
	items, err := split(data, formatNDJSON, 10000)
	if err != nil {
		b.Fatal(err)
	}
	for _, path := range []string{"general", "fast"} {
		b.Run(path, func(b *testing.B) {
			p := newTestPipeline(b)
			if path == "fast" {
				p.fast = map[event.Family]adapter.FastAdapter{event.EdX: adapter.EdX{}}
			}
			req := &Request{Family: event.EdX, Endpoint: "/v1/events/edx", SourceKey: "bench", BatchID: "b"}
			meta := adapter.Meta{ReceivedAt: time.Now()}
			adapt := p.adapters[event.EdX].Adapt
			codec := p.codecs[event.EdX]
			var n int
			for _, it := range items {
				n += len(it.Raw)
			}
			b.SetBytes(int64(n / len(items)))
			b.ReportAllocs()
			b.ResetTimer()
			var ar *recArena
			for i := 0; i < b.N; i++ {
				if i%50 == 0 { // a request of 50 events, as in make bench
					if ar != nil {
						ar.release() // as Ingest, when it returns
						ar.release() // as the producer, when the acks are in
					}
					ar = getRecArena(50)
				}
				it := items[i%len(items)]
				if it.blank {
					continue
				}
				if _, _, rj := p.build(ar, codec, adapt, req, &meta, i, &it); rj != nil {
					b.Fatal(rj)
				}
			}
			b.StopTimer()
			ar.release()
			ar.release()
		})
	}
}
