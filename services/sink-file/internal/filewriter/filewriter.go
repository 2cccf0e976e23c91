// Package filewriter is the file sink's storage. It writes each source
// partition's lines to a group of temporary files, one per date folder,
// and publishes the group atomically: fsync the files, rename them to names
// that carry the topic, partition and first and last offset, fsync the
// folders. Recover reads those names back after a crash or a rebalance, so
// that consuming resumes right after the last published line.
//
// Final names look like
//
//	<dir>/<family>/<yyyy-mm-dd>/sluice.enriched.edx+3+0000000100-0000000199.jsonl[.gz]
//
// and temporary ones like .sluice.enriched.edx+3+0000000100.jsonl.tmp in the
// same folder. A group that spans several date folders is published through
// a small manifest (.<topic>+<p>+<first>-<last>.publish in the family
// folder), written and fsynced before the first rename, so that a crash
// between two renames is rolled forward by Recover rather than leaving half
// a group on disk.
package filewriter

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/sluicehq/sluice/pkg/event"
)

const (
	tmpSuffix      = ".tmp"
	manifestSuffix = ".publish"
	manifestEnd    = "end"
	extJSONL       = ".jsonl"
	extGzip        = ".gz"
	bufSize        = 128 << 10
	defaultFiles   = 32
)

// Line is one output line and where it came from.
type Line struct {
	Family    event.Family
	Day       time.Time // the line's date folder is Day's UTC date
	Topic     string
	Partition int32
	Offset    int64
	Data      []byte // one JSON document without the newline; not retained
}

// TP names a source partition.
type TP struct {
	Topic     string
	Partition int32
}

func (tp TP) String() string { return tp.Topic + "/" + strconv.Itoa(int(tp.Partition)) }

// Options tune a Writer.
type Options struct {
	// Gzip compresses each file as one gzip stream (.jsonl.gz).
	Gzip bool
	// A partition's open group is published once it holds MaxBytes
	// uncompressed bytes, MaxEvents lines, or lines in MaxFiles date folders
	// (default 32), and by RotateAged once its first line is MaxAge old.
	// Zero turns a limit off.
	MaxBytes  int64
	MaxEvents int
	MaxAge    time.Duration
	MaxFiles  int
	// OnFsync, when set, is told how long each file fsync took.
	OnFsync func(time.Duration)
	// Fault is a test seam: when set, it is called before each create,
	// write, sync, rename and mkdir with the operation and the path, and
	// an error it returns fails that operation (e.g. syscall.ENOSPC).
	Fault func(op, path string) error
	// Now is the clock for MaxAge (default time.Now).
	Now func() time.Time
}

// Published describes one published group.
type Published struct {
	TP          TP
	First, Last int64 // the group's offsets; the next offset to consume is Last+1
	Events      int
	Bytes       int64    // uncompressed
	Files       []string // final paths
}

// Writer writes and publishes groups. It is not safe for concurrent use.
// After any error from Append, RotateAged, Publish or PublishAll the
// affected groups are in an unknown state: the caller must Abort them (or
// AbortAll) and consume again from their first offset.
type Writer struct {
	dir    string
	opts   Options
	groups map[TP]*group
	last   *group // the group of the previous line, a cache for Append
}

type group struct {
	tp          TP
	family      event.Family
	first, last int64
	events      int
	bytes       int64
	opened      time.Time
	files       map[string]*file // by date
	order       []*file
	newDirs     map[string]struct{} // folders created for this group: their parents need an fsync
}

type file struct {
	date        string
	dir         string
	tmp         string
	first, last int64
	f           *os.File
	buf         *bufio.Writer
	gz          *gzip.Writer
	w           io.Writer // gz or buf
}

// New returns a Writer under dir, which it creates.
func New(dir string, opts Options) (*Writer, error) {
	if opts.MaxFiles <= 0 {
		opts.MaxFiles = defaultFiles
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating sink folder: %w", err)
	}
	return &Writer{dir: dir, opts: opts, groups: map[TP]*group{}}, nil
}

// Dir returns the output folder.
func (w *Writer) Dir() string { return w.dir }

// FinalName is the name of a published file.
func FinalName(topic string, partition int32, first, last int64, gz bool) string {
	n := fmt.Sprintf("%s+%d+%010d-%010d%s", topic, partition, first, last, extJSONL)
	if gz {
		n += extGzip
	}
	return n
}

// ParseName reads back a FinalName. Kafka topic names cannot hold '+', so
// the split is unambiguous.
func ParseName(name string) (topic string, partition int32, first, last int64, ok bool) {
	base, found := strings.CutSuffix(name, extJSONL+extGzip)
	if !found {
		if base, found = strings.CutSuffix(name, extJSONL); !found {
			return "", 0, 0, 0, false
		}
	}
	parts := strings.Split(base, "+")
	if len(parts) != 3 || parts[0] == "" || strings.HasPrefix(parts[0], ".") {
		return "", 0, 0, 0, false
	}
	a, b, found := strings.Cut(parts[2], "-")
	if !found {
		return "", 0, 0, 0, false
	}
	p, err1 := strconv.ParseInt(parts[1], 10, 32)
	f, err2 := strconv.ParseInt(a, 10, 64)
	l, err3 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || p < 0 || f < 0 || l < f {
		return "", 0, 0, 0, false
	}
	return parts[0], int32(p), f, l, true
}

func tmpName(topic string, partition int32, first int64, gz bool) string {
	n := fmt.Sprintf(".%s+%d+%010d%s", topic, partition, first, extJSONL)
	if gz {
		n += extGzip
	}
	return n + tmpSuffix
}

// parseTmp returns the topic and partition of a temporary file name.
func parseTmp(name string) (topic string, partition int32, ok bool) {
	if !strings.HasPrefix(name, ".") || !strings.HasSuffix(name, tmpSuffix) {
		return "", 0, false
	}
	parts := strings.Split(strings.TrimPrefix(name, "."), "+")
	if len(parts) != 3 {
		return "", 0, false
	}
	p, err := strconv.ParseInt(parts[1], 10, 32)
	if err != nil {
		return "", 0, false
	}
	return parts[0], int32(p), true
}

func manifestName(topic string, partition int32, first, last int64) string {
	return fmt.Sprintf(".%s+%d+%010d-%010d%s", topic, partition, first, last, manifestSuffix)
}

func parseManifest(name string) (topic string, partition int32, ok bool) {
	base, found := strings.CutSuffix(name, manifestSuffix)
	if !found || !strings.HasPrefix(base, ".") {
		return "", 0, false
	}
	parts := strings.Split(base[1:], "+")
	if len(parts) != 3 {
		return "", 0, false
	}
	p, err := strconv.ParseInt(parts[1], 10, 32)
	if err != nil {
		return "", 0, false
	}
	return parts[0], int32(p), true
}

func (w *Writer) fault(op, path string) error {
	if w.opts.Fault == nil {
		return nil
	}
	if err := w.opts.Fault(op, path); err != nil {
		return &os.PathError{Op: op, Path: path, Err: err}
	}
	return nil
}

// Open reports the first offset of tp's open group, if it has one.
func (w *Writer) Open(tp TP) (first int64, ok bool) {
	if g, ok := w.groups[tp]; ok {
		return g.first, true
	}
	return 0, false
}

// OpenGroups returns how many partitions have an open group.
func (w *Writer) OpenGroups() int { return len(w.groups) }

// Append writes lines, each to its partition's open group (starting one
// when needed), and publishes the groups that reach a size, count or
// folder limit. Lines of one partition must come in offset order.
func (w *Writer) Append(lines []Line) ([]Published, error) {
	var pubs []Published
	for i := range lines {
		l := &lines[i]
		g := w.last
		if g == nil || g.tp.Partition != l.Partition || g.tp.Topic != l.Topic {
			g = w.groups[TP{l.Topic, l.Partition}]
		}
		date := l.Day.UTC().Format(time.DateOnly)
		if g != nil && g.files[date] == nil && len(g.order) >= w.opts.MaxFiles {
			p, err := w.publish(g)
			if err != nil {
				return pubs, err
			}
			pubs = append(pubs, *p)
			g = nil
		}
		if g == nil {
			tp := TP{l.Topic, l.Partition}
			g = &group{tp: tp, family: l.Family, first: l.Offset, opened: w.opts.Now(), files: map[string]*file{}}
			w.groups[tp] = g
		}
		w.last = g
		f := g.files[date]
		if f == nil {
			var err error
			if f, err = w.create(g, date); err != nil {
				return pubs, err
			}
		}
		// Errors of os.File (and of the fault seam) name the path already.
		if _, err := f.w.Write(l.Data); err != nil {
			return pubs, err
		}
		if _, err := f.w.Write(newline); err != nil {
			return pubs, err
		}
		if f.first < 0 {
			f.first = l.Offset
		}
		f.last = l.Offset
		g.last = l.Offset
		g.events++
		g.bytes += int64(len(l.Data) + 1)
		if (w.opts.MaxEvents > 0 && g.events >= w.opts.MaxEvents) || (w.opts.MaxBytes > 0 && g.bytes >= w.opts.MaxBytes) {
			p, err := w.publish(g)
			if err != nil {
				return pubs, err
			}
			pubs = append(pubs, *p)
		}
	}
	return pubs, nil
}

var newline = []byte{'\n'}

// RotateAged publishes every group whose first line is MaxAge old.
func (w *Writer) RotateAged() ([]Published, error) {
	if w.opts.MaxAge <= 0 {
		return nil, nil
	}
	cutoff := w.opts.Now().Add(-w.opts.MaxAge)
	var pubs []Published
	for _, g := range w.sorted() {
		if g.opened.After(cutoff) {
			continue
		}
		p, err := w.publish(g)
		if err != nil {
			return pubs, err
		}
		pubs = append(pubs, *p)
	}
	return pubs, nil
}

// Publish publishes tp's open group; it returns nil when there is none.
func (w *Writer) Publish(tp TP) (*Published, error) {
	g, ok := w.groups[tp]
	if !ok {
		return nil, nil
	}
	return w.publish(g)
}

// PublishAll publishes every open group.
func (w *Writer) PublishAll() ([]Published, error) {
	var pubs []Published
	for _, g := range w.sorted() {
		p, err := w.publish(g)
		if err != nil {
			return pubs, err
		}
		pubs = append(pubs, *p)
	}
	return pubs, nil
}

func (w *Writer) sorted() []*group {
	gs := make([]*group, 0, len(w.groups))
	for _, g := range w.groups {
		gs = append(gs, g)
	}
	slices.SortFunc(gs, func(a, b *group) int {
		if c := strings.Compare(a.tp.Topic, b.tp.Topic); c != 0 {
			return c
		}
		return int(a.tp.Partition - b.tp.Partition)
	})
	return gs
}

// Abort closes tp's open group and removes its temporary files; the lines
// in it must be consumed again. Removal is best effort: Recover removes
// what is left.
func (w *Writer) Abort(tp TP) error {
	g, ok := w.groups[tp]
	if !ok {
		return nil
	}
	return w.abort(g)
}

// AbortAll aborts every open group.
func (w *Writer) AbortAll() error {
	var errs []error
	for _, g := range w.sorted() {
		errs = append(errs, w.abort(g))
	}
	return errors.Join(errs...)
}

func (w *Writer) abort(g *group) error {
	var errs []error
	for _, f := range g.order {
		if f.f != nil {
			_ = f.f.Close() // the data is thrown away: a close error changes nothing
			f.f = nil
		}
		if err := os.Remove(f.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	w.drop(g)
	return errors.Join(errs...)
}

func (w *Writer) drop(g *group) {
	delete(w.groups, g.tp)
	if w.last == g {
		w.last = nil
	}
}

// Close aborts every open group: what was not published is consumed again.
func (w *Writer) Close() error { return w.AbortAll() }

// create opens the temporary file of g's date folder, creating folders.
func (w *Writer) create(g *group, date string) (*file, error) {
	dir := filepath.Join(w.dir, string(g.family), date)
	if err := w.mkdirs(g, dir); err != nil {
		return nil, fmt.Errorf("creating folder %s: %w", dir, err)
	}
	path := filepath.Join(dir, tmpName(g.tp.Topic, g.tp.Partition, g.first, w.opts.Gzip))
	if err := w.fault("create", path); err != nil {
		return nil, err
	}
	// O_TRUNC: a leftover of an aborted group with the same first offset
	// whose removal failed is overwritten, not appended to.
	osf, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	f := &file{date: date, dir: dir, tmp: path, first: -1, f: osf}
	var out io.Writer = osf
	if w.opts.Fault != nil {
		out = faultWriter{w: osf, fault: func() error { return w.fault("write", path) }}
	}
	f.buf = bufio.NewWriterSize(out, bufSize)
	f.w = f.buf
	if w.opts.Gzip {
		f.gz, _ = gzip.NewWriterLevel(f.buf, gzip.BestSpeed) // a valid level never fails
		f.w = f.gz
	}
	g.files[date] = f
	g.order = append(g.order, f)
	return f, nil
}

type faultWriter struct {
	w     io.Writer
	fault func() error
}

func (f faultWriter) Write(p []byte) (int, error) {
	if err := f.fault(); err != nil {
		return 0, err
	}
	return f.w.Write(p)
}

// mkdirs creates dir and the folders above it up to w.dir, noting each
// new folder in g so that its parent is fsynced before the group is
// published.
func (w *Writer) mkdirs(g *group, dir string) error {
	if dir == w.dir || dir == "." || dir == string(filepath.Separator) {
		return nil
	}
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := w.mkdirs(g, filepath.Dir(dir)); err != nil {
		return err
	}
	if err := w.fault("mkdir", dir); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if g.newDirs == nil {
		g.newDirs = map[string]struct{}{}
	}
	g.newDirs[dir] = struct{}{}
	return nil
}

// publish makes g durable under its final names. On error g stays in
// w.groups, for the caller to Abort.
func (w *Writer) publish(g *group) (*Published, error) {
	// 1. Every file complete and on disk.
	for _, f := range g.order {
		if err := w.finish(f); err != nil {
			return nil, err
		}
	}
	// 2. Folders created for the group are reachable.
	parents := map[string]struct{}{}
	for d := range g.newDirs {
		parents[filepath.Dir(d)] = struct{}{}
	}
	for _, d := range sortedKeys(parents) {
		if err := w.syncDir(d); err != nil {
			return nil, err
		}
	}
	finals := make([]string, len(g.order))
	for i, f := range g.order {
		finals[i] = filepath.Join(f.dir, FinalName(g.tp.Topic, g.tp.Partition, f.first, f.last, w.opts.Gzip))
	}
	// 3. Several folders: the manifest makes the renames all or nothing.
	var manifest string
	famDir := filepath.Join(w.dir, string(g.family))
	if len(g.order) > 1 {
		manifest = filepath.Join(famDir, manifestName(g.tp.Topic, g.tp.Partition, g.first, g.last))
		if err := w.writeManifest(manifest, g, finals); err != nil {
			return nil, err
		}
	}
	// 4. Rename, then make the new names durable.
	dirs := map[string]struct{}{}
	for i, f := range g.order {
		if err := w.fault("rename", f.tmp); err != nil {
			return nil, err
		}
		if err := os.Rename(f.tmp, finals[i]); err != nil {
			return nil, err
		}
		dirs[f.dir] = struct{}{}
	}
	for _, d := range sortedKeys(dirs) {
		if err := w.syncDir(d); err != nil {
			return nil, err
		}
	}
	if manifest != "" {
		// Published already; a manifest left behind is removed by Recover.
		_ = os.Remove(manifest)
	}
	w.drop(g)
	return &Published{TP: g.tp, First: g.first, Last: g.last, Events: g.events, Bytes: g.bytes, Files: finals}, nil
}

// finish flushes, fsyncs and closes f.
func (w *Writer) finish(f *file) error {
	if f.f == nil {
		return nil // finished by an earlier, failed publish
	}
	if f.gz != nil {
		if err := f.gz.Close(); err != nil {
			return fmt.Errorf("compressing %s: %w", f.tmp, err)
		}
	}
	if err := f.buf.Flush(); err != nil {
		return err
	}
	if err := w.fault("sync", f.tmp); err != nil {
		return err
	}
	t0 := time.Now()
	if err := f.f.Sync(); err != nil {
		return err
	}
	if w.opts.OnFsync != nil {
		w.opts.OnFsync(time.Since(t0))
	}
	err := f.f.Close()
	f.f = nil
	return err
}

// writeManifest writes the temporary → final pairs (relative to the
// output folder) and a closing line, fsyncs the manifest and its folder.
func (w *Writer) writeManifest(path string, g *group, finals []string) error {
	var b strings.Builder
	for i, f := range g.order {
		tmp, _ := filepath.Rel(w.dir, f.tmp)
		final, _ := filepath.Rel(w.dir, finals[i])
		b.WriteString(tmp + "\t" + final + "\n")
	}
	b.WriteString(manifestEnd + "\n")
	if err := w.fault("create", path); err != nil {
		return err
	}
	mf, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = mf.WriteString(b.String())
	if err == nil {
		if err = w.fault("sync", path); err == nil {
			err = mf.Sync()
		}
	}
	if cerr := mf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing manifest %s: %w", path, err)
	}
	return w.syncDir(filepath.Dir(path))
}

func (w *Writer) syncDir(dir string) error {
	if err := w.fault("sync", dir); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening folder %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing folder %s: %w", dir, err)
	}
	return nil
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Recover prepares partitions of topic (whose files are under family)
// for consuming: it rolls forward groups whose publishing a crash
// interrupted, removes leftover temporary files, and returns, per
// partition that has published files, the offset after the highest last
// offset on disk. Those partitions must have no open group.
func (w *Writer) Recover(family event.Family, topic string, partitions []int32) (map[int32]int64, error) {
	want := map[int32]bool{}
	for _, p := range partitions {
		want[p] = true
		if g, ok := w.groups[TP{topic, p}]; ok {
			_ = w.abort(g)
		}
	}
	famDir := filepath.Join(w.dir, string(family))
	entries, err := os.ReadDir(famDir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[int32]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", famDir, err)
	}
	var errs []error
	for _, e := range entries {
		if t, p, ok := parseManifest(e.Name()); ok && t == topic && want[p] {
			errs = append(errs, w.rollForward(filepath.Join(famDir, e.Name())))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	next := map[int32]int64{}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		dateDir := filepath.Join(famDir, e.Name())
		files, err := os.ReadDir(dateDir)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading %s: %w", dateDir, err))
			continue
		}
		for _, f := range files {
			name := f.Name()
			if t, p, ok := parseTmp(name); ok {
				if t == topic && want[p] {
					if err := os.Remove(filepath.Join(dateDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
						errs = append(errs, fmt.Errorf("removing a leftover temporary file: %w", err))
					}
				}
				continue
			}
			if t, p, _, last, ok := ParseName(name); ok && t == topic && want[p] && last+1 > next[p] {
				next[p] = last + 1
			}
		}
	}
	return next, errors.Join(errs...)
}

// rollForward completes the renames a manifest lists, or drops a manifest
// that was never completely written (its renames never started).
func (w *Writer) rollForward(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading manifest: %w", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) == 0 || lines[len(lines)-1] != manifestEnd {
		return os.Remove(path)
	}
	dirs := map[string]struct{}{}
	for _, l := range lines[:len(lines)-1] {
		tmp, final, ok := strings.Cut(l, "\t")
		if !ok || strings.Contains(tmp, "..") || strings.Contains(final, "..") {
			return fmt.Errorf("manifest %s: malformed line %q", path, l)
		}
		tmp, final = filepath.Join(w.dir, tmp), filepath.Join(w.dir, final)
		if _, err := os.Stat(tmp); errors.Is(err, fs.ErrNotExist) {
			continue // renamed before the crash
		}
		if err := os.Rename(tmp, final); err != nil {
			return fmt.Errorf("completing a publish: %w", err)
		}
		dirs[filepath.Dir(final)] = struct{}{}
	}
	for _, d := range sortedKeys(dirs) {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return os.Remove(path)
}

// Probe checks that the output folder takes a write and an fsync, the way
// a full or read-only disk would refuse them.
func (w *Writer) Probe() error {
	path := filepath.Join(w.dir, fmt.Sprintf(".probe-%d%s", os.Getpid(), tmpSuffix))
	if err := w.fault("create", path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	block := make([]byte, 64<<10)
	err = w.fault("write", path)
	if err == nil {
		_, err = f.Write(block)
	}
	if err == nil {
		if err = w.fault("sync", path); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
