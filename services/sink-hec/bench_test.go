package sinkhec

import (
	"os"
	"testing"

	"github.com/sluicehq/sluice/pkg/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/services/sink-hec/hectest"
)

// BenchmarkSink measures the HEC sink process against the in-project HEC
// server on b.N events (make bench runs it with -benchtime 1000000x):
// events/s from joining the group to committing the last offset, and peak
// RSS. Production settings: gzip, batches of 1000 events or 1 MB.
func BenchmarkSink(b *testing.B) { benchSink(b, false) }

// BenchmarkSinkAck is BenchmarkSink with indexer acknowledgement.
func BenchmarkSinkAck(b *testing.B) { benchSink(b, true) }

func benchSink(b *testing.B, ack bool) {
	srv := hectest.New(hectest.Config{Ack: ack, Discard: true})
	defer srv.Close()
	a := "0"
	if ack {
		a = "1"
	}
	pipelinetest.BenchSink(b, []string{"SINKTEST_HEC_URL=" + srv.URL, "SINKTEST_BENCH=1", "SINKTEST_ACK=" + a,
		"SINKTEST_CHANNELS=" + os.Getenv("SINKTEST_CHANNELS")},
		func() int64 { return srv.Count() })
}
