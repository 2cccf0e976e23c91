package standalone

// Helpers of the whole-pipeline integration suite (integration_test.go and
// brokerfailure_integration_test.go). The suite runs the services the way a
// deployment does, each on its own against one Kafka: the broker named by
// KAFKA_BROKERS (a real Apache Kafka, shared by the whole run) or an
// in-process kfake. Tests isolate themselves by unique event ids, consumer
// groups that start at the current end of their topics, and their own
// instance names, so that records other tests left behind never count.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/avro/avrotest"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/kafka/kafkatest"
	"github.com/sluicehq/sluice/services/enricher"
	"github.com/sluicehq/sluice/services/gateway"
	sinkfile "github.com/sluicehq/sluice/services/sink-file"
)

// itCluster is one test's view of the shared Kafka and registry.
type itCluster struct {
	kcfg   kafka.Config
	regURL string
	serde  *avro.Serde
	adm    *kadm.Client
	id     string // unique to this test: prefix of its event ids, groups and instances
}

// allTopics are the topics the pipeline uses.
func allTopics() []string {
	topics := []string{event.DLQTopic}
	for _, f := range event.Families {
		topics = append(topics, event.RawTopic(f), event.EnrichedTopic(f))
	}
	return topics
}

func rawTopics() []string {
	var out []string
	for _, f := range event.Families {
		out = append(out, event.RawTopic(f))
	}
	return out
}

func enrichedTopics() []string {
	var out []string
	for _, f := range event.Families {
		out = append(out, event.EnrichedTopic(f))
	}
	return out
}

func newITCluster(t *testing.T) *itCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := &itCluster{kcfg: kafkatest.Cluster(t)}
	c.kcfg.ClientID = "sluice-it"
	c.regURL, c.serde = avrotest.Registry(t)
	if err := kafka.EnsureTopics(ctx, c.kcfg, nil, allTopics()...); err != nil {
		t.Fatalf("creating the pipeline's topics: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.kcfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	c.adm = kadm.NewClient(cl)
	// A topic just created may not be known to every broker yet: wait
	// until each partition has a leader and answers for its end offset.
	var last error
	for {
		ends, err := c.adm.ListEndOffsets(ctx, allTopics()...)
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			break
		}
		last = err
		if ctx.Err() != nil {
			t.Fatalf("the pipeline's topics are not ready: %v", last)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.id = kafkatest.UniqueName(t, "it")
	t.Logf("kafka %v (real broker: %v), test id %s", c.kcfg.Brokers, kafkatest.Real(), c.id)
	return c
}

// offsets is topic → partition → offset.
type offsets map[string]map[int32]int64

// endOffsets returns the current end of every partition of topics.
func (c *itCluster) endOffsets(ctx context.Context, t *testing.T, topics ...string) offsets {
	t.Helper()
	ends, err := c.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatalf("listing end offsets: %v", err)
	}
	out := offsets{}
	var ferr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil && ferr == nil {
			ferr = fmt.Errorf("%s/%d: %w", o.Topic, o.Partition, o.Err)
		}
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.Offset
	})
	if ferr != nil {
		t.Fatalf("listing end offsets: %v", ferr)
	}
	return out
}

// groupAtEnd names a new consumer group and commits the current end of
// topics for it, so that the group's members read only what comes after:
// what other tests left on the shared broker is never theirs.
func (c *itCluster) groupAtEnd(ctx context.Context, t *testing.T, name string, topics ...string) string {
	t.Helper()
	group := c.id + "." + name
	ends, err := c.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.adm.CommitOffsets(ctx, group, ends.Offsets())
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("seeding group %s at the end of its topics: %v", group, err)
	}
	return group
}

// committedOffsets returns group's committed offsets for topic.
func (c *itCluster) committedOffsets(ctx context.Context, group, topic string) (map[int32]int64, error) {
	resp, err := c.adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, err
	}
	if err := resp.Error(); err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for p, o := range resp[topic] {
		if o.At >= 0 {
			out[p] = o.At
		}
	}
	return out, nil
}

// readFrom reads topics from the given offsets (partitions absent from
// from start at their beginning) and hands every record to keep until done
// says so, or fails at the deadline with what was seen.
func (c *itCluster) readFrom(ctx context.Context, t *testing.T, from offsets, within time.Duration,
	keep func(*kgo.Record), done func() bool, what func() string) {
	t.Helper()
	parts := map[string]map[int32]kgo.Offset{}
	for topic, ps := range from {
		parts[topic] = map[int32]kgo.Offset{}
		for p, o := range ps {
			parts[topic][p] = kgo.NewOffset().At(o)
		}
	}
	// read_committed, as every downstream reader: records of aborted
	// transactions (the enricher's) are not deliveries.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.kcfg.Brokers...), kgo.ConsumePartitions(parts),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for !done() {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("after %s: %s", within, what())
		}
		fs.EachRecord(keep)
	}
	// Read on until the topic is quiet, so that duplicates written before
	// done became true are counted too.
	for range 100 {
		qctx, qcancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		fs := cl.PollFetches(qctx)
		qcancel()
		if fs.NumRecords() == 0 {
			return
		}
		fs.EachRecord(keep)
	}
}

// header returns the value of the record header k.
func header(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// enrichedBy decodes an enriched record and returns its event id and the
// instance that enriched it.
func (c *itCluster) enrichedBy(ctx context.Context, r *kgo.Record) (id, instance string, err error) {
	native, _, err := c.serde.Decode(ctx, r.Value)
	if err != nil {
		return "", "", err
	}
	rec, _ := native.(map[string]any)
	env, _ := rec["envelope"].(map[string]any)
	id, _ = env["event_id"].(string)
	if u, ok := rec["enrichment"].(map[string]any); ok {
		if e, ok := u[avro.EnrichmentName].(map[string]any); ok {
			instance, _ = e["enricher_instance"].(string)
		}
	}
	return id, instance, nil
}

// ---------------------------------------------------------------- services

func quietLog(t *testing.T) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
}

// startGateway runs a gateway on a free loopback port with the dev key and
// returns its base URL; it stops at the end of the test.
func (c *itCluster) startGateway(t *testing.T, tune func(*gateway.Config)) (string, *gateway.Service) {
	t.Helper()
	cfg := gateway.Defaults()
	cfg.Listen = "127.0.0.1:0"
	cfg.Kafka = c.kcfg
	cfg.Kafka.ClientID = c.id + ".gateway"
	cfg.DevKey = true
	if tune != nil {
		tune(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(cfg, gateway.Deps{Log: quietLog(t), Metrics: prometheus.NewRegistry(), Serde: c.serde})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		if err := gw.Stop(sctx); err != nil {
			t.Errorf("stopping the gateway: %v", err)
		}
	})
	return "http://" + gw.Addr(), gw
}

// startEnricher runs an enricher in this process.
func (c *itCluster) startEnricher(t *testing.T, group, instance string) {
	t.Helper()
	cfg := enricher.Defaults()
	cfg.Kafka = c.kcfg
	cfg.Kafka.ClientID = instance
	cfg.Group = group
	cfg.Instance = instance
	svc, err := enricher.New(cfg, enricher.Deps{Log: quietLog(t), Metrics: prometheus.NewRegistry(), Serde: c.serde})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		if err := svc.Stop(sctx); err != nil {
			t.Errorf("stopping the enricher: %v", err)
		}
	})
}

// startSinkFile runs a file sink in this process.
func (c *itCluster) startSinkFile(t *testing.T, group, dir string) {
	t.Helper()
	cfg := sinkfile.Defaults()
	cfg.Kafka = c.kcfg
	cfg.Kafka.ClientID = c.id + ".sink-file"
	cfg.Group = group
	cfg.Dir = dir
	cfg.RotateAge = 300 * time.Millisecond // publish (and commit) quickly
	svc, err := sinkfile.New(cfg, sinkfile.Deps{Log: quietLog(t), Metrics: prometheus.NewRegistry(), Serde: c.serde})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		if err := svc.Stop(sctx); err != nil {
			t.Errorf("stopping the file sink: %v", err)
		}
	})
}

// ---------------------------------------------------------------- HTTP

// edxEvent is one valid edX tracking-log event with a client event id.
func edxEvent(id, user string) string {
	return fmt.Sprintf(`{"username":%q,"event_type":"sluice.it","event_source":"server","time":"2026-01-02T03:04:05Z","event_id":%q,"event":{"n":1}}`, user, id)
}

type gwReply struct {
	status     int
	retryAfter string
	Accepted   int               `json:"accepted"`
	Rejected   int               `json:"rejected"`
	Errors     []event.Rejection `json:"errors"`
	Error      string            `json:"error"`
}

var itHTTP = &http.Client{Timeout: 60 * time.Second}

// postNDJSON posts lines to the gateway's generic endpoint for family.
func postNDJSON(ctx context.Context, url string, family event.Family, lines []string) (*gwReply, error) {
	body := strings.Join(lines, "\n") + "\n"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/events/"+string(family), strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+gateway.DevKey)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := itHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	r := &gwReply{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if err := json.Unmarshal(b, r); err != nil {
		return r, fmt.Errorf("reply %d is not JSON: %q", resp.StatusCode, b)
	}
	return r, nil
}

// acked returns the ids of lines that the reply says Kafka acknowledged:
// all on 200, all but the reported indexes on 207, none otherwise.
func acked(r *gwReply, ids []string) []string {
	switch r.status {
	case http.StatusOK:
		return ids
	case http.StatusMultiStatus:
		bad := map[int]bool{}
		for _, e := range r.Errors {
			bad[e.Index] = true
		}
		var out []string
		for i, id := range ids {
			if !bad[i] {
				out = append(out, id)
			}
		}
		return out
	}
	return nil
}

// ---------------------------------------------------------------- delivery

// delivery counts how often each expected id arrived.
type delivery struct {
	mu     sync.Mutex
	want   map[string]bool
	counts map[string]int
}

func newDelivery() *delivery {
	return &delivery{want: map[string]bool{}, counts: map[string]int{}}
}

func (d *delivery) expect(ids ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		d.want[id] = true
	}
}

func (d *delivery) saw(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.counts[id]++
}

// missing returns how many expected ids have not arrived.
func (d *delivery) missing() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for id := range d.want {
		if d.counts[id] == 0 {
			n++
		}
	}
	return n
}

// report returns lost (expected, never arrived) and duplicates (extra
// arrivals of expected ids), and up to 5 lost ids.
func (d *delivery) report() (lost, dups int, sample []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id := range d.want {
		switch n := d.counts[id]; {
		case n == 0:
			lost++
			if len(sample) < 5 {
				sample = append(sample, id)
			}
		case n > 1:
			dups += n - 1
		}
	}
	return lost, dups, sample
}

// Guarantee is what a stage promises for the events it was given.
type Guarantee int

const (
	// AtLeastOnce: none lost; duplicates allowed and counted.
	AtLeastOnce Guarantee = iota
	// ExactlyOnce: none lost, none twice.
	ExactlyOnce
)

// check fails the test if the guarantee does not hold, and logs the counts.
func (d *delivery) check(t *testing.T, stage string, g Guarantee) {
	t.Helper()
	lost, dups, sample := d.report()
	d.mu.Lock()
	n := len(d.want)
	d.mu.Unlock()
	t.Logf("%s: %d events expected, %d lost, %d duplicates", stage, n, lost, dups)
	if lost > 0 {
		t.Errorf("%s: %d of %d acknowledged events were lost, e.g. %v", stage, lost, n, sample)
	}
	if g == ExactlyOnce && dups > 0 {
		t.Errorf("%s: %d duplicates, want exactly once", stage, dups)
	}
}

// ---------------------------------------------------------------- files

// sinkFileIDs reads every finished file under dir (not hidden, not
// temporary) and returns the event id of each line, with the lines that are
// not JSON (a torn write) counted apart.
func sinkFileIDs(dir string) (ids []string, torn int) {
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || isTempName(d.Name()) {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var l struct {
				Envelope struct {
					EventID string `json:"event_id"`
				} `json:"envelope"`
			}
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				torn++
				continue
			}
			ids = append(ids, l.Envelope.EventID)
		}
		return nil
	})
	return ids, torn
}

func isTempName(name string) bool {
	if strings.HasPrefix(name, ".") {
		return true
	}
	for _, s := range []string{".tmp", ".partial", ".inprogress", ".open"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------- child processes

// The helper process: the test binary re-executed with SLUICE_IT_HELPER set
// runs one service (enricher or sink-file) until its stdin closes or it gets
// SIGTERM, so that a test can kill -9 a real process.
const (
	envHelper   = "SLUICE_IT_HELPER"
	envRegistry = "SLUICE_IT_REGISTRY"
	envGroup    = "SLUICE_IT_GROUP"
	envInstance = "SLUICE_IT_INSTANCE"
	envDir      = "SLUICE_IT_DIR"
)

// TestHelperProcess is not a test: it is the body of the child processes
// the integration tests start (see child).
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(envHelper)
	if role == "" {
		t.Skip("the body of the integration tests' child processes")
	}
	kcfg := kafkatest.Cluster(t) // KAFKA_BROKERS is set by the parent
	kcfg.ClientID = os.Getenv(envInstance)
	log, _ := zap.NewDevelopment(zap.IncreaseLevel(zap.WarnLevel))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	serde, err := avro.Connect(ctx, avro.RegistryConfig{URLs: []string{os.Getenv(envRegistry)}, AutoRegister: true})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	type component interface {
		Start(context.Context) error
		Stop(context.Context) error
	}
	var svc component
	switch role {
	case "enricher":
		cfg := enricher.Defaults()
		cfg.Kafka = kcfg
		cfg.Group = os.Getenv(envGroup)
		cfg.Instance = os.Getenv(envInstance)
		// A killed instance's open transaction holds its partitions until
		// the broker aborts it: keep that short.
		cfg.TransactionTimeout = 10 * time.Second
		svc, err = enricher.New(cfg, enricher.Deps{Log: log, Metrics: prometheus.NewRegistry(), Serde: serde})
	case "sink-file":
		cfg := sinkfile.Defaults()
		cfg.Kafka = kcfg
		cfg.Group = os.Getenv(envGroup)
		cfg.Dir = os.Getenv(envDir)
		cfg.MaxPollRecords = 100
		cfg.RotateAge = 300 * time.Millisecond // publish (and commit) quickly
		svc, err = sinkfile.New(cfg, sinkfile.Deps{Log: log, Metrics: prometheus.NewRegistry(), Serde: serde})
	default:
		t.Fatalf("unknown helper role %q", role)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	err = svc.Start(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "helper %s %s: started\n", role, os.Getenv(envInstance))
	// Run until the parent closes stdin (it ended, or asks to stop), a
	// SIGTERM, or 10 minutes at most.
	stdin := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdin)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	select {
	case <-stdin:
	case <-sig:
	case <-time.After(10 * time.Minute):
	}
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	if err := svc.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "helper %s %s: stopped\n", role, os.Getenv(envInstance))
}

// child is a running helper process.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bytes.Buffer
	mu    *sync.Mutex
	done  chan struct{}
	err   error
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// startChild starts the helper process for role; it is stopped (SIGTERM,
// then SIGKILL) at the end of the test, and its output is logged if the
// test failed.
func (c *itCluster) startChild(t *testing.T, role, instance string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.timeout=15m", "-test.v")
	cmd.Env = append(os.Environ(),
		envHelper+"="+role,
		"KAFKA_BROKERS="+strings.Join(c.kcfg.Brokers, ","),
		envRegistry+"="+c.regURL,
		envInstance+"="+instance,
	)
	cmd.Env = append(cmd.Env, env...)
	ch := &child{name: role + " " + instance, cmd: cmd, out: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	w := lockedWriter{mu: ch.mu, w: ch.out}
	cmd.Stdout, cmd.Stderr = w, w
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	ch.stdin = stdin
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", ch.name, err)
	}
	go func() {
		ch.err = cmd.Wait()
		close(ch.done)
	}()
	t.Cleanup(func() {
		ch.stop(t, 30*time.Second)
		if t.Failed() {
			ch.mu.Lock()
			out := ch.out.String()
			ch.mu.Unlock()
			if len(out) > 8000 {
				out = "…" + out[len(out)-8000:]
			}
			t.Logf("output of %s:\n%s", ch.name, out)
		}
	})
	return ch
}

// waitStarted waits until the child says it started.
func (ch *child) waitStarted(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		ch.mu.Lock()
		ok := strings.Contains(ch.out.String(), ": started")
		ch.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch.done:
			t.Fatalf("%s exited while starting: %v\n%s", ch.name, ch.err, ch.out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not start within %s", ch.name, within)
}

// kill9 kills the child with SIGKILL: no stop, no commit, no leaving the
// group.
func (ch *child) kill9(t *testing.T) {
	t.Helper()
	if err := ch.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %s: %v", ch.name, err)
	}
	select {
	case <-ch.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s survived SIGKILL", ch.name)
	}
	if ws, ok := ch.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("%s ended with %v, not by SIGKILL", ch.name, ch.cmd.ProcessState)
	}
}

// stop asks the child to stop (stdin closed, SIGTERM) and kills it after
// within.
func (ch *child) stop(t *testing.T, within time.Duration) {
	select {
	case <-ch.done:
		return
	default:
	}
	_ = ch.stdin.Close()
	_ = ch.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ch.done:
		if ch.err != nil {
			t.Errorf("%s stopped with %v", ch.name, ch.err)
		}
	case <-time.After(within):
		_ = ch.cmd.Process.Kill()
		<-ch.done
		t.Errorf("%s did not stop within %s; killed", ch.name, within)
	}
}
