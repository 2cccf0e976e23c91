package filewriter

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/event"
)

var day = time.Date(2025, 3, 4, 23, 30, 0, 0, time.FixedZone("UTC-2", -2*3600)) // 2025-03-05 in UTC

func line(p int32, off int64, data string) Line {
	return Line{Family: event.EdX, Day: day, Topic: "sluice.enriched.edx", Partition: p, Offset: off, Data: []byte(data)}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAppendSync(t *testing.T) {
	dir := t.TempDir()
	var fsyncs int
	a, err := New(dir, Options{OnFsync: func(time.Duration) { fsyncs++ }})
	if err != nil {
		t.Fatal(err)
	}
	p0 := filepath.Join(dir, "edx", "2025-03-05", "sluice.enriched.edx-p0.jsonl")
	p3 := filepath.Join(dir, "edx", "2025-03-05", "sluice.enriched.edx-p3.jsonl")
	if got := a.Path(line(3, 0, "")); got != p3 {
		t.Fatalf("Path = %s, want %s", got, p3)
	}
	if err := a.Append([]Line{line(0, 0, `{"a":1}`), line(3, 7, `{"b":2}`), line(0, 1, `{"a":2}`)}); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if fsyncs != 2 {
		t.Errorf("%d fsyncs, want one per touched file (2)", fsyncs)
	}
	if err := a.Append([]Line{line(0, 2, `{"a":3}`)}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if got, want := read(t, p0), "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n"; got != want {
		t.Errorf("%s = %q, want %q", p0, got, want)
	}
	if got, want := read(t, p3), "{\"b\":2}\n"; got != want {
		t.Errorf("%s = %q, want %q", p3, got, want)
	}

	// A new Appender appends to what is there.
	a, err = New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Append([]Line{line(3, 8, `{"b":3}`)}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := read(t, p3), "{\"b\":2}\n{\"b\":3}\n"; got != want {
		t.Errorf("after reopening, %s = %q, want %q", p3, got, want)
	}
}

// TestRollback checks that a failed batch leaves the files as the last
// successful Sync left them, so that its retry is stored once.
func TestRollback(t *testing.T) {
	dir := t.TempDir()
	a, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Append([]Line{line(0, 0, `{"ok":1}`)}); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	// Part of a batch reaches the file (a flush), then the batch fails.
	if err := a.Append([]Line{line(0, 1, `{"lost":1}`), line(1, 0, `{"lost":2}`)}); err != nil {
		t.Fatal(err)
	}
	for f := range a.touched {
		if err := f.buf.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.rollback(); err != nil {
		t.Fatal(err)
	}
	if a.OpenFiles() != 0 {
		t.Errorf("%d files open after rollback, want 0", a.OpenFiles())
	}
	// The retry.
	if err := a.Append([]Line{line(0, 1, `{"ok":2}`), line(1, 0, `{"ok":3}`)}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := read(t, a.Path(line(0, 0, ""))), "{\"ok\":1}\n{\"ok\":2}\n"; got != want {
		t.Errorf("partition 0 = %q, want %q", got, want)
	}
	if got, want := read(t, a.Path(line(1, 0, ""))), "{\"ok\":3}\n"; got != want {
		t.Errorf("partition 1 = %q, want %q", got, want)
	}
}

func TestAppendFailureRollsBack(t *testing.T) {
	dir := t.TempDir()
	a, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A file where the family folder should be makes the second line fail.
	if err := os.WriteFile(filepath.Join(dir, "clicks"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := line(0, 0, `{}`)
	bad.Family = event.Clicks
	if err := a.Append([]Line{line(0, 0, `{"lost":1}`), bad}); err == nil {
		t.Fatal("append into a file succeeded")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, a.Path(line(0, 0, ""))); got != "" {
		t.Errorf("after a failed append the file holds %q, want nothing", got)
	}
}

func TestIdleFilesClose(t *testing.T) {
	now := time.Unix(1000, 0)
	a, err := New(t.TempDir(), Options{Idle: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	a.now = func() time.Time { return now }
	if err := a.Append([]Line{line(0, 0, `{}`), line(1, 0, `{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if err := a.Append([]Line{line(1, 1, `{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if a.OpenFiles() != 1 {
		t.Errorf("%d files open, want 1 (partition 0 went idle)", a.OpenFiles())
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}
