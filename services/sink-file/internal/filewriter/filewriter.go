// Package filewriter is the file sink's storage seam: it appends JSON lines
// to one file per family, day and source partition, and makes them durable
// batch by batch.
package filewriter

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sluicehq/sluice/pkg/event"
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

// Writer stores lines. It is not safe for concurrent use.
type Writer interface {
	// Append adds lines; they are durable only once Sync returns nil.
	Append(lines []Line) error
	// Sync makes every line appended since the last Sync durable: flushed,
	// fsynced, and reachable through fsynced folders. On error, or after a
	// failed Append, what was appended since the last successful Sync is
	// discarded, so that a retried batch is not stored twice.
	Sync() error
	// Close syncs and closes every file; it is safe to call twice.
	Close() error
}

// Options tune an Appender.
type Options struct {
	// Idle closes a file that has not been written for this long (at the
	// next Sync). Zero keeps files open until Close.
	Idle time.Duration
	// OnFsync, when set, is told how long each file fsync took.
	OnFsync func(time.Duration)
}

// Appender is the minimal Writer: it appends to
// <dir>/<family>/<yyyy-mm-dd>/<topic>-p<partition>.jsonl, creating folders
// and files as needed. Files are never rotated.
type Appender struct {
	dir     string
	opts    Options
	files   map[string]*file
	touched map[*file]struct{}  // appended to since the last Sync
	newDirs map[string]struct{} // folders whose entries changed since the last Sync
	now     func() time.Time
}

var _ Writer = (*Appender)(nil)

type file struct {
	path    string
	f       *os.File
	buf     *bufio.Writer
	synced  int64 // size after the last successful Sync
	lastUse time.Time
}

// New returns an Appender writing under dir, which it creates.
func New(dir string, opts Options) (*Appender, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating sink folder: %w", err)
	}
	return &Appender{
		dir:     dir,
		opts:    opts,
		files:   map[string]*file{},
		touched: map[*file]struct{}{},
		newDirs: map[string]struct{}{},
		now:     time.Now,
	}, nil
}

// Path returns the file a line goes to.
func (a *Appender) Path(l Line) string {
	return filepath.Join(a.dir, string(l.Family), l.Day.UTC().Format(time.DateOnly),
		fmt.Sprintf("%s-p%d.jsonl", l.Topic, l.Partition))
}

// Append implements Writer.
func (a *Appender) Append(lines []Line) error {
	now := a.now()
	for _, l := range lines {
		f, err := a.open(a.Path(l))
		if err == nil {
			a.touched[f] = struct{}{}
			f.lastUse = now
			_, err = f.buf.Write(l.Data)
			if err == nil {
				err = f.buf.WriteByte('\n')
			}
		}
		if err != nil {
			return errors.Join(fmt.Errorf("appending to %s/%d@%d: %w", l.Topic, l.Partition, l.Offset, err), a.rollback())
		}
	}
	return nil
}

// Sync implements Writer.
func (a *Appender) Sync() error {
	var errs []error
	for f := range a.touched {
		if err := f.buf.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("writing %s: %w", f.path, err))
			continue
		}
		t0 := time.Now()
		if err := f.f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("syncing %s: %w", f.path, err))
			continue
		}
		if a.opts.OnFsync != nil {
			a.opts.OnFsync(time.Since(t0))
		}
	}
	// New files and folders are durable only once the folders holding
	// their names are synced too.
	for d := range a.newDirs {
		if err := syncDir(d); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(append(errs, a.rollback())...)
	}
	for f := range a.touched {
		size, err := f.f.Seek(0, io.SeekCurrent) // O_APPEND: the offset is the size
		if err != nil {
			return errors.Join(fmt.Errorf("sizing %s: %w", f.path, err), a.rollback())
		}
		f.synced = size
	}
	clear(a.touched)
	clear(a.newDirs)
	a.closeIdle()
	return nil
}

// rollback truncates every file touched since the last Sync back to its
// synced size and closes it; the next Append reopens it.
func (a *Appender) rollback() error {
	var errs []error
	for f := range a.touched {
		f.buf.Reset(f.f) // drop what was never written
		if err := f.f.Truncate(f.synced); err != nil {
			errs = append(errs, fmt.Errorf("truncating %s after a failed batch: %w", f.path, err))
		}
		if err := f.f.Close(); err != nil {
			errs = append(errs, err)
		}
		delete(a.files, f.path)
	}
	clear(a.touched)
	return errors.Join(errs...)
}

func (a *Appender) closeIdle() {
	if a.opts.Idle <= 0 {
		return
	}
	cutoff := a.now().Add(-a.opts.Idle)
	for p, f := range a.files {
		if f.lastUse.Before(cutoff) {
			_ = f.f.Close() // synced already: nothing is lost
			delete(a.files, p)
		}
	}
}

// Close implements Writer.
func (a *Appender) Close() error {
	err := a.Sync()
	for p, f := range a.files {
		err = errors.Join(err, f.f.Close())
		delete(a.files, p)
	}
	return err
}

// OpenFiles returns how many files are open.
func (a *Appender) OpenFiles() int { return len(a.files) }

// open returns the open file at path, opening or creating it (and its
// folders) when needed.
func (a *Appender) open(path string) (*file, error) {
	if f, ok := a.files[path]; ok {
		return f, nil
	}
	dir := filepath.Dir(path)
	if err := a.mkdirs(dir); err != nil {
		return nil, err
	}
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if errors.Is(statErr, os.ErrNotExist) {
		a.newDirs[dir] = struct{}{}
	}
	fl := &file{path: path, f: f, buf: bufio.NewWriterSize(f, 64<<10), synced: size}
	a.files[path] = fl
	return fl, nil
}

// mkdirs creates dir and the folders above it up to a.dir, noting each
// parent that gained an entry.
func (a *Appender) mkdirs(dir string) error {
	if dir == a.dir {
		return nil
	}
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := a.mkdirs(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	a.newDirs[filepath.Dir(dir)] = struct{}{}
	return nil
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
