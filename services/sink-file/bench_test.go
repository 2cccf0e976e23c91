package sinkfile

import (
	"testing"

	"github.com/sluicehq/sluice/pkg/pipeline/pipelinetest"
)

// BenchmarkSink measures the file sink process on b.N events (make bench
// runs it with -benchtime 2000000x): events/s from joining the group to
// committing the last offset, and peak RSS.
func BenchmarkSink(b *testing.B) {
	benchSink(b, "0")
}

// BenchmarkSinkGzip is BenchmarkSink with gzip files.
func BenchmarkSinkGzip(b *testing.B) {
	benchSink(b, "1")
}

func benchSink(b *testing.B, gz string) {
	dir := b.TempDir()
	var n int64
	pipelinetest.BenchSink(b, []string{"SINKTEST_DIR=" + dir, "SINKTEST_GZIP=" + gz, "SINKTEST_BENCH=1"}, func() int64 {
		cs, err := publishedCopies(dir)
		if err != nil {
			b.Fatal(err)
		}
		n = int64(len(cs))
		return n
	})
}
