package sinkfile

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/app"
	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/services/sink-file/internal/filewriter"
)

// Crash points of the file sink (hooks and the filewriter fault seam).
const (
	pointAfterAppend  = "after-append"  // lines in temporary files, unpublished
	pointAfterPublish = "after-publish" // renamed and fsynced, offsets not committed
	pointRename       = "rename"        // before each rename: the second splits a multi-folder group
)

// buildChild builds the file sink of a conformance-suite process.
func buildChild(ctx context.Context, c pipelinetest.ChildConfig, log *zap.Logger) (app.Component, error) {
	serde, err := avro.Connect(ctx, avro.RegistryConfig{URLs: []string{c.Registry}, AutoRegister: true})
	if err != nil {
		return nil, err
	}
	cfg := Defaults()
	cfg.Kafka = c.Kafka
	cfg.Group = c.Group
	cfg.Dir = c.Getenv("SINKTEST_DIR")
	cfg.Gzip = c.Getenv("SINKTEST_GZIP") == "1"
	if c.Getenv("SINKTEST_BENCH") == "1" {
		// Production settings, the last files published within a second.
		cfg.RotateAge = time.Second
		return New(cfg, Deps{Log: log, Serde: serde})
	}
	cfg.RotateAge = 300 * time.Millisecond
	cfg.RotateEvents = 400
	cfg.MaxPollRecords = 250
	hk := hooks{
		afterAppend:  func() { c.Point(pointAfterAppend) },
		afterPublish: func() { c.Point(pointAfterPublish) },
	}
	fault := func(op, _ string) error {
		if op == "rename" {
			c.Point(pointRename)
		}
		return nil
	}
	return newService(cfg, Deps{Log: log, Serde: serde}, hk, fault)
}

// TestConformance runs the sink conformance suite: real sink processes,
// killed with SIGKILL at the crash points and at random, must leave every
// event in the published files exactly once.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sink processes")
	}
	pipelinetest.RunSinkSuite(t, pipelinetest.Harness{
		Guarantee: pipelinetest.ExactlyOnce,
		NewDestination: func(t *testing.T, scenario string) pipelinetest.Destination {
			dir := t.TempDir()
			gz := "0"
			if strings.Contains(scenario, "unordered") || strings.Contains(scenario, "kill") {
				gz = "1"
			}
			return pipelinetest.Destination{
				Env:    []string{"SINKTEST_DIR=" + dir, "SINKTEST_GZIP=" + gz},
				Copies: func() ([]pipelinetest.Copy, error) { return publishedCopies(dir) },
			}
		},
		CrashPoints: []pipelinetest.CrashPoint{
			{Scenario: "before-commit", Point: pointAfterAppend, At: 3},
			{Scenario: "after-write-before-commit", Point: pointAfterPublish, At: 2},
			{Scenario: "mid-publish", Point: pointRename, At: 2, Spread: true},
		},
	})
}

// publishedCopies reads the event ids of every published file under dir.
func publishedCopies(dir string) ([]pipelinetest.Copy, error) {
	var out []pipelinetest.Copy
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if _, _, _, _, ok := filewriter.ParseName(d.Name()); !ok {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var r io.Reader = bytes.NewReader(b)
		if strings.HasSuffix(path, ".gz") {
			zr, err := gzip.NewReader(r)
			if err != nil {
				return err
			}
			r = zr
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			out = append(out, pipelinetest.Copy{ID: eventIDOf(sc.Text()), Confirmed: true})
		}
		return sc.Err()
	})
	return out, err
}

// eventIDOf finds the envelope's event_id in a JSON line without decoding
// all of it.
func eventIDOf(line string) string {
	const key = `"event_id":"`
	i := strings.Index(line, key)
	if i < 0 {
		return ""
	}
	rest := line[i+len(key):]
	if j := strings.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return ""
}
