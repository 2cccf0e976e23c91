package sinkfile

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/services/sink-file/internal/filewriter"
)

// hooks are test seams at the points where a crash matters; the
// conformance tests kill the process there. Nil hooks do nothing.
type hooks struct {
	afterAppend  func() // lines are in temporary files, nothing new published
	afterPublish func() // files renamed and their folders fsynced, offsets not yet committed
}

// handler writes the records of each poll and owns every piece of state
// about files and offsets. Its methods run in the consumer's goroutine or
// in partition callbacks, which BlockRebalanceOnPoll keeps apart; mu makes
// that explicit and covers AdjustFetchOffsetsFn, which runs on its own.
//
// The offset committed for a partition is its watermark: the first offset
// of its open (unpublished) group, or, with no open group, the offset after
// the last record handled (written and published, or dead-lettered).
type handler struct {
	cfg     Config
	serde   *avro.Serde
	w       *filewriter.Writer
	dlq     *pipeline.DLQ
	metrics *metrics
	log     *zap.Logger
	hooks   hooks
	topics  []string

	consumer *kafka.Consumer // set by Service.Start before the first call

	transcoders sync.Map // schema id → *avro.Transcoder, or nil when the schema needs the native path

	mu        sync.Mutex
	parts     map[filewriter.TP]*partState
	pausedErr atomic.Pointer[error] // set while the disk refuses writes
	nextProbe time.Time
	workers   []worker
}

type partState struct {
	consumed  int64 // offset after the last record handled; -1 before the first
	committed int64 // -1 when nothing was committed
}

var _ kafka.Handler = (*handler)(nil)

func (h *handler) part(tp filewriter.TP) *partState {
	ps := h.parts[tp]
	if ps == nil {
		ps = &partState{consumed: -1, committed: -1}
		h.parts[tp] = ps
	}
	return ps
}

// watermark is the offset to commit for tp, or -1.
func (h *handler) watermark(tp filewriter.TP, ps *partState) int64 {
	if first, ok := h.w.Open(tp); ok {
		return first
	}
	return ps.consumed
}

// Handle implements kafka.Handler. The consumer calls it with no records
// on every tick, which rotates files by age and, while paused, probes the
// disk. It returns an error only for a transient failure before anything
// was written (decoding against an unreachable registry, the dead-letter
// topic); a storage failure pauses the sink instead.
func (h *handler) Handle(ctx context.Context, recs []*kgo.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pausedErr.Load() != nil {
		h.rewindPaused(recs)
		if time.Now().After(h.nextProbe) {
			h.probe()
		}
		return nil
	}
	if len(recs) > 0 {
		if err := h.write(ctx, recs); err != nil {
			return err
		}
	}
	if h.pausedErr.Load() == nil {
		targets := h.targets()
		pubs, err := h.w.RotateAged()
		if !h.published(pubs, err, targets) {
			return nil
		}
	}
	h.commit(ctx, nil)
	return nil
}

// write renders recs, dead-letters what cannot be rendered and appends the
// rest.
func (h *handler) write(ctx context.Context, recs []*kgo.Record) error {
	lines, dead, err := h.render(ctx, recs)
	if err != nil {
		return err
	}
	// Dead letters go first: if they fail nothing was written, and the
	// retried batch is written once.
	if err := h.dlq.Send(ctx, dead); err != nil {
		return fmt.Errorf("sending dead letters: %w", err)
	}
	if len(dead) > 0 {
		d := dead[0]
		h.log.Warn("events dead-lettered", zap.Int("count", len(dead)), zap.String("first_topic", d.Topic),
			zap.Int32("first_partition", d.Partition), zap.Int64("first_offset", d.Offset),
			zap.String("first_message", d.Message))
	}
	targets := h.targets()
	for _, r := range recs {
		h.part(filewriter.TP{Topic: r.Topic, Partition: r.Partition}) // a target for partitions new to this batch
		if _, ok := targets[filewriter.TP{Topic: r.Topic, Partition: r.Partition}]; !ok {
			targets[filewriter.TP{Topic: r.Topic, Partition: r.Partition}] = r.Offset
		}
	}
	pubs, err := h.w.Append(lines)
	if !h.published(pubs, err, targets) {
		return nil
	}
	for _, r := range recs {
		h.part(filewriter.TP{Topic: r.Topic, Partition: r.Partition}).consumed = r.Offset + 1
	}
	for i := range lines {
		h.metrics.events.WithLabelValues(string(lines[i].Family)).Inc()
		h.metrics.bytes.WithLabelValues(string(lines[i].Family)).Add(float64(len(lines[i].Data) + 1))
	}
	if h.w.OpenGroups() > 0 && h.hooks.afterAppend != nil {
		h.hooks.afterAppend()
	}
	return nil
}

// targets returns, per known partition, where consuming must resume if
// everything unpublished is thrown away now.
func (h *handler) targets() map[filewriter.TP]int64 {
	t := make(map[filewriter.TP]int64, len(h.parts))
	for tp, ps := range h.parts {
		if wm := h.watermark(tp, ps); wm >= 0 {
			t[tp] = wm
		}
	}
	return t
}

// published accounts for groups the writer published and reports whether
// it did so without error. On error it pauses the sink: targets (from
// before the failed call) say where each partition resumes, unless a
// group of it was published in the call.
func (h *handler) published(pubs []filewriter.Published, err error, targets map[filewriter.TP]int64) bool {
	for _, p := range pubs {
		h.metrics.files.Add(float64(len(p.Files)))
		if t, ok := targets[p.TP]; !ok || p.Last+1 > t {
			targets[p.TP] = p.Last + 1
		}
		if ps := h.parts[p.TP]; ps != nil && p.Last+1 > ps.consumed {
			ps.consumed = p.Last + 1
		}
	}
	if err != nil {
		h.pause(err, targets)
		return false
	}
	if len(pubs) > 0 && h.hooks.afterPublish != nil {
		h.hooks.afterPublish()
	}
	return true
}

// pause handles a storage failure: it throws away every unpublished group,
// sets each partition back to where those began, stops fetching, and
// reports unready until a probe write succeeds. Nothing is skipped: what
// was thrown away is consumed again.
func (h *handler) pause(cause error, targets map[filewriter.TP]int64) {
	h.metrics.writeErrors.Inc()
	if err := h.w.AbortAll(); err != nil {
		h.log.Warn("removing temporary files after a write error", zap.Error(err))
	}
	h.rewind(targets)
	h.consumer.Client().PauseFetchTopics(h.topics...)
	err := fmt.Errorf("output folder refuses writes, consuming is paused: %w", cause)
	// The gauge first: whoever sees the readiness error sees the gauge at 1.
	h.metrics.paused.Set(1)
	h.pausedErr.Store(&err)
	h.nextProbe = time.Now().Add(h.cfg.DiskRetry)
	h.log.Error("pausing: cannot write files; will resume when the folder takes writes again",
		zap.Duration("retry", h.cfg.DiskRetry), zap.Error(cause))
}

// rewind sets the fetch position of each partition in targets.
func (h *handler) rewind(targets map[filewriter.TP]int64) {
	set := map[string]map[int32]kgo.EpochOffset{}
	for tp, off := range targets {
		if off < 0 {
			continue
		}
		if set[tp.Topic] == nil {
			set[tp.Topic] = map[int32]kgo.EpochOffset{}
		}
		set[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: off}
		h.part(tp).consumed = off
	}
	if len(set) > 0 {
		h.consumer.Client().SetOffsets(set)
	}
}

// rewindPaused drops records polled while paused (fetched before the
// pause took effect) and sets their partitions back to where they were.
func (h *handler) rewindPaused(recs []*kgo.Record) {
	targets := map[filewriter.TP]int64{}
	for _, r := range recs {
		tp := filewriter.TP{Topic: r.Topic, Partition: r.Partition}
		if _, ok := targets[tp]; ok {
			continue
		}
		if ps := h.parts[tp]; ps != nil && ps.consumed >= 0 {
			targets[tp] = ps.consumed
		} else {
			targets[tp] = r.Offset
		}
	}
	h.rewind(targets)
}

func (h *handler) probe() {
	if err := h.w.Probe(); err != nil {
		h.nextProbe = time.Now().Add(h.cfg.DiskRetry)
		h.log.Debug("output folder still refuses writes", zap.Error(err))
		return
	}
	// The gauge first: whoever sees the sink ready again sees the gauge at 0.
	h.metrics.paused.Set(0)
	h.pausedErr.Store(nil)
	h.consumer.Client().ResumeFetchTopics(h.topics...)
	h.log.Info("output folder takes writes again; resuming")
}

// ready is the readiness check.
func (h *handler) ready() error {
	if p := h.pausedErr.Load(); p != nil {
		return *p
	}
	return nil
}

// commit commits the watermark of each partition (of only, when not nil)
// that moved. A failed commit is logged and retried on the next call; the
// files already carry the offsets, so a crash in between loses nothing.
func (h *handler) commit(ctx context.Context, only map[string][]int32) {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	moved := map[filewriter.TP]int64{}
	add := func(tp filewriter.TP, ps *partState) {
		wm := h.watermark(tp, ps)
		if wm < 0 || wm <= ps.committed {
			return
		}
		if offsets[tp.Topic] == nil {
			offsets[tp.Topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: wm}
		moved[tp] = wm
	}
	if only == nil {
		for tp, ps := range h.parts {
			add(tp, ps)
		}
	} else {
		for t, ps := range only {
			for _, p := range ps {
				tp := filewriter.TP{Topic: t, Partition: p}
				if st := h.parts[tp]; st != nil {
					add(tp, st)
				}
			}
		}
	}
	if len(offsets) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := h.consumer.CommitOffsets(cctx, offsets); err != nil {
		h.log.Warn("committing offsets; will retry (the file names keep the position meanwhile)", zap.Error(err))
		return
	}
	for tp, wm := range moved {
		h.parts[tp].committed = wm
	}
}

// adjustOffsets is the consumer's AdjustFetchOffsetsFn: for newly assigned
// partitions it recovers the output folder (completes interrupted
// publishes, removes temporary files) and starts each partition after the
// highest last offset in its file names when that is past the committed
// offset — the files are the truth, the commit may lag them by a crash.
func (h *handler) adjustOffsets(_ context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for topic, parts := range offsets {
		fam, ok := event.FamilyOfTopic(topic)
		if !ok {
			continue
		}
		ps := make([]int32, 0, len(parts))
		for p := range parts {
			ps = append(ps, p)
		}
		next, err := h.w.Recover(fam, topic, ps)
		if err != nil {
			h.log.Error("recovering the output folder; rejoining the group to try again", zap.String("topic", topic), zap.Error(err))
			return nil, fmt.Errorf("recovering %s files: %w", topic, err)
		}
		for p, o := range parts {
			committed := o.EpochOffset().Offset
			if committed < 0 {
				committed = -1
			}
			start := committed
			if n, ok := next[p]; ok && n > committed {
				start = n
				parts[p] = kgo.NewOffset().At(n).WithEpoch(-1)
				h.log.Info("resuming after the files on disk", zap.String("topic", topic), zap.Int32("partition", p),
					zap.Int64("committed", committed), zap.Int64("resume", n))
			}
			h.parts[filewriter.TP{Topic: topic, Partition: p}] = &partState{consumed: start, committed: committed}
		}
	}
	return offsets, nil
}

// revoked publishes the open groups of partitions taken away and commits
// them, so the next owner starts where this one stopped. A group that
// cannot be published is thrown away: the next owner consumes it again.
func (h *handler) revoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for topic, ps := range revoked {
		for _, p := range ps {
			tp := filewriter.TP{Topic: topic, Partition: p}
			if h.pausedErr.Load() != nil {
				_ = h.w.Abort(tp)
				continue
			}
			pub, err := h.w.Publish(tp)
			if err != nil {
				h.log.Warn("publishing a revoked partition's files; the next owner consumes them again", zap.Stringer("partition", tp), zap.Error(err))
				_ = h.w.Abort(tp)
				continue
			}
			if pub != nil {
				h.metrics.files.Add(float64(len(pub.Files)))
				if ps := h.parts[tp]; ps != nil && pub.Last+1 > ps.consumed {
					ps.consumed = pub.Last + 1
				}
			}
		}
	}
	if h.pausedErr.Load() == nil {
		h.commit(ctx, revoked)
	}
	h.forget(revoked)
}

// lost throws away the open groups of partitions lost without a clean
// revoke; their new owner consumes them again.
func (h *handler) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for topic, ps := range lost {
		for _, p := range ps {
			_ = h.w.Abort(filewriter.TP{Topic: topic, Partition: p})
		}
	}
	h.forget(lost)
}

func (h *handler) forget(m map[string][]int32) {
	for topic, ps := range m {
		for _, p := range ps {
			delete(h.parts, filewriter.TP{Topic: topic, Partition: p})
		}
	}
}

// worker renders a share of a poll's records in its own goroutine; its
// buffer is reused from poll to poll.
type worker struct {
	buf   []byte
	vals  []any // captured envelope times
	lines []filewriter.Line
	dead  []*pipeline.DeadLetter
	err   error
}

// minShare is the fewest records worth a goroutine of their own.
const minShare = 128

// render decodes and renders recs as lines in parallel, keeping their
// order. A Permanent failure dead-letters the record; another failure is
// returned.
func (h *handler) render(ctx context.Context, recs []*kgo.Record) ([]filewriter.Line, []*pipeline.DeadLetter, error) {
	n := min(runtime.GOMAXPROCS(0), max(1, len(recs)/minShare))
	if len(h.workers) < n {
		h.workers = append(h.workers, make([]worker, n-len(h.workers))...)
	}
	share := (len(recs) + n - 1) / n
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		lo, hi := i*share, min((i+1)*share, len(recs))
		wk := &h.workers[i]
		wk.buf, wk.lines, wk.dead, wk.err = wk.buf[:0], wk.lines[:0], wk.dead[:0], nil
		if lo >= hi {
			continue
		}
		run := func() {
			for _, r := range recs[lo:hi] {
				l, err := h.line(ctx, r, wk)
				switch {
				case err == nil:
					wk.lines = append(wk.lines, l)
				case pipeline.IsPermanent(err):
					wk.dead = append(wk.dead, deadLetter(r, err))
				default:
					wk.err = err
					return
				}
			}
		}
		if n == 1 {
			run()
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); run() }()
	}
	wg.Wait()
	var lines []filewriter.Line
	var dead []*pipeline.DeadLetter
	var errs []error
	for i := 0; i < n; i++ {
		lines = append(lines, h.workers[i].lines...)
		dead = append(dead, h.workers[i].dead...)
		errs = append(errs, h.workers[i].err)
	}
	return lines, dead, errors.Join(errs...)
}

// Paths the transcoder captures for the date folder.
var datePaths = []string{"envelope.received_at", "envelope.client_time"}

// transcoder returns the transcoder of schema id, nil when the schema
// needs the native path.
func (h *handler) transcoder(ctx context.Context, id int) (*avro.Transcoder, error) {
	if t, ok := h.transcoders.Load(id); ok {
		return t.(*avro.Transcoder), nil
	}
	c, err := h.serde.Codec(ctx, id)
	if err != nil {
		return nil, err
	}
	t, err := c.NewTranscoder(datePaths...)
	if err != nil {
		h.log.Info("rendering this schema through native values", zap.Int("schema_id", id), zap.Error(err))
		t = nil
	}
	h.transcoders.Store(id, t)
	return t, nil
}

// line renders r as a JSON line appended to wk.buf. A Permanent error
// means the record goes to the dead-letter topic; any other error is
// transient.
func (h *handler) line(ctx context.Context, r *kgo.Record, wk *worker) (filewriter.Line, error) {
	l := filewriter.Line{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Day: r.Timestamp}
	var ok bool
	if l.Family, ok = event.FamilyOfTopic(r.Topic); !ok {
		return l, pipeline.Permanent(fmt.Errorf("topic %s is not a family's enriched topic", r.Topic))
	}
	id, body, err := avro.SplitWire(r.Value)
	if err != nil {
		return l, pipeline.Permanent(err)
	}
	tr, err := h.transcoder(ctx, id)
	if err != nil {
		if avro.IsTransient(err) {
			return l, fmt.Errorf("decoding %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		return l, pipeline.Permanent(err)
	}
	if tr != nil {
		if len(wk.vals) < len(datePaths) {
			wk.vals = make([]any, len(datePaths))
		}
		start := len(wk.buf)
		if wk.buf, err = tr.AppendJSON(wk.buf, body, wk.vals); err != nil {
			return l, pipeline.Permanent(fmt.Errorf("decoding with schema id %d: %w", id, err))
		}
		l.Data = wk.buf[start:len(wk.buf):len(wk.buf)]
		received, _ := wk.vals[0].(time.Time)
		client, _ := wk.vals[1].(time.Time)
		if t := pickDate(received, client, h.cfg.DateBy); !t.IsZero() {
			l.Day = t
		}
		return l, nil
	}
	buf := &wk.buf
	native, codec, err := h.serde.Decode(ctx, r.Value)
	if err != nil {
		if avro.IsTransient(err) {
			return l, fmt.Errorf("decoding %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		return l, pipeline.Permanent(err)
	}
	start := len(*buf)
	if *buf, err = codec.AppendJSON(*buf, native); err != nil {
		*buf = (*buf)[:start]
		return l, pipeline.Permanent(fmt.Errorf("rendering JSON: %w", err))
	}
	l.Data = (*buf)[start:len(*buf):len(*buf)]
	if t := dateOf(native, h.cfg.DateBy); !t.IsZero() {
		l.Day = t
	}
	return l, nil
}

// dateOf returns the time whose date names an event's folder: the
// device's time (DateByEvent) unless it is more than a day after receipt
// (a wrong clock), else the receipt time; zero when the record has no
// envelope, and the record's timestamp stands in.
func dateOf(native any, dateBy string) time.Time {
	rec, ok := native.(map[string]any)
	if !ok {
		return time.Time{}
	}
	env, ok := rec["envelope"].(map[string]any)
	if !ok {
		return time.Time{}
	}
	received, _ := env["received_at"].(time.Time)
	return pickDate(received, avro.UnionTime(env["client_time"]), dateBy)
}

func pickDate(received, client time.Time, dateBy string) time.Time {
	if dateBy == DateByEvent && !client.IsZero() && (received.IsZero() || !client.After(received.Add(24*time.Hour))) {
		return client
	}
	return received
}

func deadLetter(r *kgo.Record, err error) *pipeline.DeadLetter {
	d := &pipeline.DeadLetter{
		Stage:     Stage,
		Index:     -1,
		Reason:    event.ReasonUndecodable,
		Message:   err.Error(),
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Raw:       r.Value,
		Key:       r.Key,
	}
	d.Family, _ = event.FamilyOfTopic(r.Topic)
	return d
}

// metrics are the sink's own; dead letters are counted by pipeline.DLQ in
// sluice_dlq_records_total{stage="sink-file",family,reason}.
type metrics struct {
	events       *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	files        prometheus.Counter
	writeErrors  prometheus.Counter
	paused       prometheus.Gauge
	fsyncSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sink_file_events_total",
			Help: "Events written to files, by family (published by the next rotation, or consumed again).",
		}, []string{"family"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sink_file_bytes_total",
			Help: "Uncompressed bytes written to files, newlines included, by family.",
		}, []string{"family"}),
		files: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_sink_file_files_published_total",
			Help: "Files fsynced and renamed to their final names.",
		}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_sink_file_write_errors_total",
			Help: "Storage failures (full disk, unwritable folder) that paused the sink.",
		}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_sink_file_paused",
			Help: "1 while consuming is paused because the output folder refuses writes.",
		}),
		fsyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_sink_file_fsync_seconds",
			Help:    "Time to fsync one file.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9), // 0.1ms .. 6.5s
		}),
	}
	for _, f := range event.Families {
		m.events.WithLabelValues(string(f)) // export zeros, not gaps
		m.bytes.WithLabelValues(string(f))
	}
	for _, c := range []prometheus.Collector{m.events, m.bytes, m.files, m.writeErrors, m.paused, m.fsyncSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering sink-file metrics: %w", err)
		}
	}
	return m, nil
}
