package filewriter

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/sluicehq/sluice/pkg/event"
)

const topic = "sluice.enriched.edx"

var (
	day1 = time.Date(2025, 3, 4, 23, 30, 0, 0, time.FixedZone("UTC-2", -2*3600)) // 2025-03-05 in UTC
	day2 = time.Date(2025, 3, 6, 1, 0, 0, 0, time.UTC)
)

func line(p int32, off int64, day time.Time) Line {
	return Line{Family: event.EdX, Day: day, Topic: topic, Partition: p, Offset: off, Data: []byte(`{"o":` + strconv.FormatInt(off, 10) + `}`)}
}

// tree lists every file under dir (relative paths), sorted.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return string(b)
}

func TestNames(t *testing.T) {
	n := FinalName(topic, 3, 100, 199, false)
	if n != "sluice.enriched.edx+3+0000000100-0000000199.jsonl" {
		t.Fatalf("FinalName = %s", n)
	}
	for _, gz := range []bool{false, true} {
		tp, p, f, l, ok := ParseName(FinalName(topic, 7, 12345678901, 12345678999, gz))
		if !ok || tp != topic || p != 7 || f != 12345678901 || l != 12345678999 {
			t.Errorf("ParseName round trip (gzip %v) = %s %d %d %d %v", gz, tp, p, f, l, ok)
		}
	}
	for _, bad := range []string{
		"x.jsonl", ".sluice.enriched.edx+3+0000000100.jsonl.tmp", "a+b+1-2.jsonl", "a+1+5-2.jsonl", "a+1+2.jsonl",
		"a+1+1-2.json", "sluice.enriched.edx-p0.jsonl",
	} {
		if _, _, _, _, ok := ParseName(bad); ok {
			t.Errorf("ParseName(%q) accepted", bad)
		}
	}
	if tp, p, ok := parseTmp(tmpName(topic, 4, 9, true)); !ok || tp != topic || p != 4 {
		t.Errorf("parseTmp = %s %d %v", tp, p, ok)
	}
}

// TestRotateByCount writes two partitions and checks that a group is
// published under its offsets once it holds MaxEvents lines, and only then.
func TestRotateByCount(t *testing.T) {
	dir := t.TempDir()
	var fsyncs int
	w, err := New(dir, Options{MaxEvents: 3, OnFsync: func(time.Duration) { fsyncs++ }})
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := w.Append([]Line{line(0, 10, day1), line(3, 7, day1), line(0, 11, day1)})
	if err != nil || len(pubs) != 0 {
		t.Fatalf("Append = %v, %v; want nothing published", pubs, err)
	}
	if first, ok := w.Open(TP{topic, 0}); !ok || first != 10 {
		t.Errorf("Open(p0) = %d, %v", first, ok)
	}
	want := []string{
		"edx/2025-03-05/.sluice.enriched.edx+0+0000000010.jsonl.tmp",
		"edx/2025-03-05/.sluice.enriched.edx+3+0000000007.jsonl.tmp",
	}
	if got := tree(t, dir); !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	pubs, err = w.Append([]Line{line(0, 12, day1), line(0, 13, day1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(pubs) != 1 || pubs[0].TP != (TP{topic, 0}) || pubs[0].First != 10 || pubs[0].Last != 12 || pubs[0].Events != 3 {
		t.Fatalf("published %+v, want p0 10..12", pubs)
	}
	if fsyncs != 1 {
		t.Errorf("%d fsyncs, want 1", fsyncs)
	}
	final := filepath.Join(dir, "edx/2025-03-05/sluice.enriched.edx+0+0000000010-0000000012.jsonl")
	if got := read(t, final); got != "{\"o\":10}\n{\"o\":11}\n{\"o\":12}\n" {
		t.Errorf("%s = %q", final, got)
	}
	if first, ok := w.Open(TP{topic, 0}); !ok || first != 13 {
		t.Errorf("after rotation Open(p0) = %d, %v; want 13", first, ok)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want = []string{"edx/2025-03-05/sluice.enriched.edx+0+0000000010-0000000012.jsonl"}
	if got := tree(t, dir); !slices.Equal(got, want) {
		t.Errorf("after Close (which aborts) files %v, want %v", got, want)
	}
}

// TestGroupSpansDates publishes one partition's lines of two dates as one
// group, gzipped, and checks both files and that no manifest is left.
func TestGroupSpansDates(t *testing.T) {
	dir := t.TempDir()
	w, err := New(dir, Options{Gzip: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append([]Line{line(1, 5, day1), line(1, 6, day2), line(1, 7, day1), line(1, 8, day2)}); err != nil {
		t.Fatal(err)
	}
	p, err := w.Publish(TP{topic, 1})
	if err != nil {
		t.Fatal(err)
	}
	if p.First != 5 || p.Last != 8 || len(p.Files) != 2 {
		t.Fatalf("published %+v", p)
	}
	want := []string{
		"edx/2025-03-05/sluice.enriched.edx+1+0000000005-0000000007.jsonl.gz",
		"edx/2025-03-06/sluice.enriched.edx+1+0000000006-0000000008.jsonl.gz",
	}
	if got := tree(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	if got := read(t, filepath.Join(dir, want[1])); got != "{\"o\":6}\n{\"o\":8}\n" {
		t.Errorf("%s = %q", want[1], got)
	}
	next, err := w.Recover(event.EdX, topic, []int32{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(next) != 1 || next[1] != 9 {
		t.Errorf("Recover = %v, want p1 at 9", next)
	}
}

// TestMaxFiles publishes a group before it would open one folder too many.
func TestMaxFiles(t *testing.T) {
	dir := t.TempDir()
	w, err := New(dir, Options{MaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	day3 := day2.Add(24 * time.Hour)
	pubs, err := w.Append([]Line{line(0, 1, day1), line(0, 2, day2), line(0, 3, day1), line(0, 4, day3)})
	if err != nil {
		t.Fatal(err)
	}
	if len(pubs) != 1 || pubs[0].First != 1 || pubs[0].Last != 3 {
		t.Fatalf("published %+v, want 1..3 before the third folder", pubs)
	}
	if first, _ := w.Open(TP{topic, 0}); first != 4 {
		t.Errorf("open group starts at %d, want 4", first)
	}
}

func TestRotateAged(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	w, err := New(dir, Options{MaxAge: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append([]Line{line(0, 1, day1)}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(30 * time.Second)
	if _, err := w.Append([]Line{line(1, 1, day1)}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(31 * time.Second)
	pubs, err := w.RotateAged()
	if err != nil {
		t.Fatal(err)
	}
	if len(pubs) != 1 || pubs[0].TP.Partition != 0 {
		t.Fatalf("RotateAged published %+v, want p0 only", pubs)
	}
	if w.OpenGroups() != 1 {
		t.Errorf("%d open groups, want 1", w.OpenGroups())
	}
}

// TestRecover lays out what crashes leave behind: published files, a
// temporary file, a complete manifest whose renames did not all happen and
// a manifest cut short, and checks what Recover makes of them.
func TestRecover(t *testing.T) {
	dir := t.TempDir()
	d1 := filepath.Join(dir, "edx", "2025-03-05")
	d2 := filepath.Join(dir, "edx", "2025-03-06")
	for _, d := range []string{d1, d2} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	put := func(path, data string) {
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// p0: published up to 199, then a temporary file of an unpublished group.
	put(filepath.Join(d1, FinalName(topic, 0, 100, 199, false)), "x\n")
	put(filepath.Join(d2, FinalName(topic, 0, 0, 99, false)), "x\n")
	put(filepath.Join(d1, tmpName(topic, 0, 200, false)), "y\n")
	// p1: a two-folder group 300..305 whose first rename happened.
	put(filepath.Join(d1, FinalName(topic, 1, 300, 304, false)), "a\n")
	put(filepath.Join(d2, tmpName(topic, 1, 300, false)), "b\n")
	put(filepath.Join(dir, "edx", manifestName(topic, 1, 300, 305)),
		"edx/2025-03-05/"+tmpName(topic, 1, 300, false)+"\tedx/2025-03-05/"+FinalName(topic, 1, 300, 304, false)+"\n"+
			"edx/2025-03-06/"+tmpName(topic, 1, 300, false)+"\tedx/2025-03-06/"+FinalName(topic, 1, 301, 305, false)+"\n"+
			"end\n")
	// p2: a manifest cut short: nothing was renamed; the group is dropped.
	put(filepath.Join(d1, tmpName(topic, 2, 50, false)), "c\n")
	put(filepath.Join(dir, "edx", manifestName(topic, 2, 50, 60)), "edx/2025-03-05/"+tmpName(topic, 2, 50, false)+"\tedx/2025-")
	// p5 belongs to another instance: untouched.
	put(filepath.Join(d1, tmpName(topic, 5, 1, false)), "z\n")

	w, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	next, err := w.Recover(event.EdX, topic, []int32{0, 1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(next) != 2 || next[0] != 200 || next[1] != 306 {
		t.Errorf("Recover = %v, want p0 at 200 and p1 at 306", next)
	}
	want := []string{
		"edx/2025-03-05/.sluice.enriched.edx+5+0000000001.jsonl.tmp",
		"edx/2025-03-05/sluice.enriched.edx+0+0000000100-0000000199.jsonl",
		"edx/2025-03-05/sluice.enriched.edx+1+0000000300-0000000304.jsonl",
		"edx/2025-03-06/sluice.enriched.edx+0+0000000000-0000000099.jsonl",
		"edx/2025-03-06/sluice.enriched.edx+1+0000000301-0000000305.jsonl",
	}
	if got := tree(t, dir); !slices.Equal(got, want) {
		t.Errorf("after Recover:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if next, err := w.Recover(event.Clicks, "sluice.enriched.clicks", []int32{0}); err != nil || len(next) != 0 {
		t.Errorf("Recover of a family with no folder = %v, %v", next, err)
	}
}

// TestFaults fails writes with ENOSPC and checks that the error surfaces,
// that AbortAll leaves no temporary file, and that Probe tracks the fault.
func TestFaults(t *testing.T) {
	for _, op := range []string{"write", "sync", "rename", "create", "mkdir"} {
		t.Run(op, func(t *testing.T) {
			dir := t.TempDir()
			full := false
			w, err := New(dir, Options{MaxEvents: 2, Fault: func(o, _ string) error {
				if full && o == op {
					return syscall.ENOSPC
				}
				return nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			full = true
			_, err = w.Append([]Line{line(0, 1, day1), line(0, 2, day1), line(0, 3, day1)})
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Append = %v, want ENOSPC", err)
			}
			if err := w.Probe(); op != "rename" && op != "mkdir" && !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("Probe = %v while the disk is full", err)
			}
			if err := w.AbortAll(); err != nil {
				t.Fatal(err)
			}
			for _, f := range tree(t, dir) {
				if strings.HasSuffix(f, tmpSuffix) {
					t.Errorf("left %s", f)
				}
			}
			full = false
			if err := w.Probe(); err != nil {
				t.Errorf("Probe = %v once space is back", err)
			}
			pubs, err := w.Append([]Line{line(0, 1, day1), line(0, 2, day1)})
			if err != nil || len(pubs) != 1 {
				t.Fatalf("after the fault: %v, %v", pubs, err)
			}
		})
	}
}
