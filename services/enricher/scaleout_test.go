package enricher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pkg/app"
	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/avro/avrotest"
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/kafka/kafkatest"
	"github.com/sluicehq/sluice/services/enricher/internal/enrich"
	"github.com/sluicehq/sluice/services/enricher/internal/eventtest"
)

// childEnv makes the test binary run as an enricher instance instead of
// running tests: the scale-out test starts real child processes of it.
const childEnv = "SLUICE_ENRICHER_TEST_CHILD"

// childDelayEnv holds each child transaction open (produced, not yet
// committed) for a duration, so the kill lands inside one.
const childDelayEnv = "SLUICE_ENRICHER_TEST_TXN_DELAY"

// childConfig mirrors the sluice-enricher binary's configuration, so the
// children read the same SLUICE_* variables the binary does.
type childConfig struct {
	app.Common `yaml:",inline"`
	Registry   avro.RegistryConfig `yaml:"registry" envPrefix:"REGISTRY_"`
	Enricher   Config              `yaml:",inline"`
}

func (c *childConfig) CommonConfig() app.Common { return c.Common }

func (c *childConfig) Validate() error {
	var p config.Problems
	p.Add("registry", c.Registry.Validate())
	return errors.Join(c.Common.Validate(), p.Err(), c.Enricher.Validate())
}

// runChild is the child process's main.
func runChild() int {
	os.Args = os.Args[:1] // the test flags are not the binary's
	if d, err := time.ParseDuration(os.Getenv(childDelayEnv)); err == nil {
		beforeEnd = func() { time.Sleep(d) } // hold each transaction open a while
	}
	cfg := childConfig{Common: app.CommonDefaults(), Registry: avro.RegistryDefaults(), Enricher: Defaults()}
	return app.Main("enricher", &cfg, func(ctx context.Context, env app.Env) ([]app.Component, error) {
		serde, err := avro.Connect(ctx, cfg.Registry)
		if err != nil {
			return nil, err
		}
		svc, err := New(cfg.Enricher, Deps{Log: env.Log, Metrics: env.Metrics, Ready: env.Ready, Serde: serde})
		return []app.Component{svc}, err
	})
}

// child is one enricher process.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startChild(t *testing.T, name string, env []string) *child {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), childEnv+"=1", "SLUICE_INSTANCE="+name), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	t.Cleanup(func() {
		// A clean stop first; a child that does not stop is killed.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(40 * time.Second):
			_ = cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("---- %s log (tail) ----\n%s", name, b)
		}
	})
	return c
}

// tally follows the enriched topics, committed records only, and counts
// each event of this run.
type tally struct {
	mu         sync.Mutex
	pos        map[string]map[int32]int64 // next offset to read, control records included
	count      map[string]int             // event id → enriched records
	rec        map[string]map[string]any  // event id → last enriched record
	byInstance map[string]int
}

// caughtUp reports whether the follower read every partition to ends.
func (ta *tally) caughtUp(ends kadm.ListedOffsets) bool {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	ok := true
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 && ta.pos[o.Topic][o.Partition] < o.Offset {
			ok = false
		}
	})
	return ok
}

func (ta *tally) snapshot() (distinct int, perInstance map[string]int) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	perInstance = map[string]int{}
	for k, v := range ta.byInstance {
		perInstance[k] = v
	}
	return len(ta.count), perInstance
}

func (ta *tally) follow(ctx context.Context, t *testing.T, kcfg kafka.Config, serde *avro.Serde, prefix string) {
	opts, err := kcfg.ClientOpts()
	if err != nil {
		t.Error(err)
		return
	}
	var topics []string
	for _, f := range event.Families {
		topics = append(topics, event.EnrichedTopic(f))
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(), kgo.FetchMaxWait(200*time.Millisecond))...)
	if err != nil {
		t.Error(err)
		return
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			ta.mu.Lock()
			if ta.pos[r.Topic] == nil {
				ta.pos[r.Topic] = map[int32]int64{}
			}
			ta.pos[r.Topic][r.Partition] = r.Offset + 1
			ta.mu.Unlock()
			if r.Attrs.IsControl() {
				return
			}
			native, _, err := serde.Decode(ctx, r.Value)
			if err != nil {
				return // another run's records, or a deadline
			}
			rec := native.(map[string]any)
			id := eventID(rec)
			if !strings.HasPrefix(id, prefix) {
				return
			}
			inst, _ := enrichmentOf(rec)["enricher_instance"].(string)
			ta.mu.Lock()
			ta.count[id]++
			ta.rec[id] = rec
			ta.byInstance[inst]++
			ta.mu.Unlock()
		})
	}
}

// TestScaleOutKillOneInstance is the acceptance test of the exactly-once
// enricher: 6 partitions, 3 enricher instances in one group as real child
// processes, one killed with SIGKILL mid-stream. Every event of the run is
// then in sluice.enriched.* exactly once (read committed), and the events
// whose context came before the kill are still resolved correctly by the
// instances that took the dead one's partitions over (they restored its
// committed state from the changelog).
//
// It runs against kfake, or against the broker in KAFKA_BROKERS.
func TestScaleOutKillOneInstance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three enricher processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	kcfg := kafkatest.Cluster(t)
	kcfg.Partitions = 6
	regURL, serde := avrotest.Registry(t)
	geoCfg := testDatabases(t)
	group := kafkatest.UniqueName(t, "enricher")
	cfg := Defaults()
	plain, changelogs := cfg.Topics()
	if err := ensurePartitions(ctx, kcfg, 6, plain, changelogs); err != nil {
		t.Fatal(err)
	}

	env := []string{
		"SLUICE_KAFKA_BROKERS=" + strings.Join(kcfg.Brokers, ","),
		"SLUICE_KAFKA_PARTITIONS=6",
		"SLUICE_KAFKA_SESSION_TIMEOUT=6s",
		"SLUICE_KAFKA_HEARTBEAT_INTERVAL=500ms",
		"SLUICE_KAFKA_REBALANCE_TIMEOUT=10s",
		"SLUICE_TRANSACTION_TIMEOUT=8s",
		"SLUICE_REGISTRY_URLS=" + regURL,
		"SLUICE_GROUP=" + group,
		"SLUICE_MAX_POLL_RECORDS=100",
		"SLUICE_GEOIP_CITY=" + strings.Join(geoCfg.City, ","),
		"SLUICE_GEOIP_ASN=" + strings.Join(geoCfg.ASN, ","),
		"SLUICE_ADMIN_ADDR=127.0.0.1:0",
		"SLUICE_LOG_LEVEL=info",
		"SLUICE_SHUTDOWN_TIMEOUT=30s",
		childDelayEnv + "=150ms",
	}
	children := map[string]*child{}
	for i := range 3 {
		name := fmt.Sprintf("child-%d", i)
		children[name] = startChild(t, name, env)
	}
	waitMembers(ctx, t, kcfg, group, 3)

	run := fmt.Sprintf("so%d-", time.Now().UnixNano())
	ta := &tally{pos: map[string]map[int32]int64{}, count: map[string]int{}, rec: map[string]map[string]any{}, byInstance: map[string]int{}}
	fctx, stopFollow := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func() { defer close(followed); ta.follow(fctx, t, kcfg, serde, run) }()
	defer func() { stopFollow(); <-followed }()

	w := newWorkload(t, serde, run, 24)
	cl := newClient(t, kcfg)
	produce := func(recs []*kgo.Record) {
		t.Helper()
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	// Phase 1: the context-giving events, fully enriched before phase 2.
	produce(w.phase1)
	waitFor(ctx, t, "phase 1 enriched", func() bool { n, _ := ta.snapshot(); return n >= len(w.phase1) })
	_, per := ta.snapshot()
	victim := ""
	for name := range children {
		if victim == "" || per[name] > per[victim] {
			victim = name
		}
	}
	t.Logf("phase 1: %d events enriched, by instance %v; killing %s mid-stream", len(w.phase1), per, victim)

	// Phase 2: the dependent events, in steps; the victim is killed with
	// SIGKILL once it is enriching them, with steps still to come.
	before := per[victim]
	for i, step := range w.phase2 {
		produce(step)
		if i == len(w.phase2)/2 {
			waitFor(ctx, t, victim+" enriching phase 2", func() bool { _, p := ta.snapshot(); return p[victim] > before })
			if err := children[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-children[victim].done
			t.Logf("killed %s after step %d of %d", victim, i+1, len(w.phase2))
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(100 * time.Millisecond): // pace the steps so the kill lands mid-stream
		}
	}

	total := w.total()
	waitFor(ctx, t, "every event enriched", func() bool { n, _ := ta.snapshot(); return n >= total })
	// Everything is consumed and committed: any duplicate would be visible
	// by now. Read a little longer to be sure none arrives late.
	var rawTopics []string
	for _, f := range event.Families {
		rawTopics = append(rawTopics, event.RawTopic(f))
	}
	waitFor(ctx, t, "offsets committed to the end", func() bool {
		return committedToEndAll(ctx, kadm.NewClient(cl), group, rawTopics) == nil
	})
	// Then wait until the follower has read every enriched partition up to
	// its last stable offset: a duplicate, if any, would be in its counts.
	var enrichedTopics []string
	for _, f := range event.Families {
		enrichedTopics = append(enrichedTopics, event.EnrichedTopic(f))
	}
	lso, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, enrichedTopics...)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the follower reading to the end of the enriched topics", func() bool { return ta.caughtUp(lso) })

	aborted := uncommittedCount(ctx, t, kcfg, run, enrichedTopics) - total
	ta.mu.Lock()
	defer ta.mu.Unlock()
	dups, missing := 0, 0
	for _, id := range w.ids {
		switch n := ta.count[id]; {
		case n == 0:
			missing++
		case n > 1:
			dups += n - 1
		}
	}
	t.Logf("scale-out: %d events, 1 instance killed (SIGKILL), %d missing, %d duplicates; enriched by instance %v; "+
		"%d records of aborted transactions in the log (read uncommitted), invisible to read_committed consumers",
		total, missing, dups, ta.byInstance, aborted)
	if missing > 0 || dups > 0 {
		t.Fatalf("%d events missing and %d duplicated in sluice.enriched.*", missing, dups)
	}
	if ta.byInstance[victim] == 0 {
		t.Fatalf("the killed instance enriched nothing")
	}
	w.verify(t, ta.rec, victim)
}

// uncommittedCount counts the run's records in topics read uncommitted,
// aborted transactions included, up to the high watermarks.
func uncommittedCount(ctx context.Context, t *testing.T, kcfg kafka.Config, prefix string, topics []string) int {
	t.Helper()
	opts, err := kcfg.ClientOpts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	hwm, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	left := map[string]int64{}
	hwm.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[fmt.Sprint(o.Topic, o.Partition)] = o.Offset
		}
	})
	n := 0
	for len(left) > 0 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			k := fmt.Sprint(r.Topic, r.Partition)
			if end, ok := left[k]; ok && r.Offset >= end-1 {
				delete(left, k)
			}
			if !r.Attrs.IsControl() && bytes.Contains(r.Value, []byte(prefix)) {
				n++
			}
		})
	}
	return n
}

func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not before the deadline", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func waitMembers(ctx context.Context, t *testing.T, kcfg kafka.Config, group string, n int) {
	t.Helper()
	cl := newClient(t, kcfg)
	adm := kadm.NewClient(cl)
	waitFor(ctx, t, fmt.Sprintf("%d members in %s", n, group), func() bool {
		gs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return false
		}
		g, ok := gs[group]
		return ok && g.State == "Stable" && len(g.Members) == n
	})
}

// ensurePartitions creates the topics with n partitions, or adds
// partitions to existing ones with fewer (a shared real broker).
func ensurePartitions(ctx context.Context, kcfg kafka.Config, n int32, plain, compacted []string) error {
	kcfg.Partitions = n
	if err := kafka.EnsureTopics(ctx, kcfg, nil, plain...); err != nil {
		return err
	}
	compact := "compact"
	if err := kafka.EnsureTopics(ctx, kcfg, map[string]*string{"cleanup.policy": &compact}, compacted...); err != nil {
		return err
	}
	opts, err := kcfg.ClientOpts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	td, err := adm.ListTopics(ctx, append(plain, compacted...)...)
	if err != nil {
		return err
	}
	var grow []string
	for _, d := range td.Sorted() {
		if len(d.Partitions) < int(n) {
			grow = append(grow, d.Topic)
		}
	}
	if len(grow) > 0 {
		if _, err := adm.UpdatePartitions(ctx, int(n), grow...); err != nil {
			return err
		}
	}
	return nil
}

func committedToEndAll(ctx context.Context, adm *kadm.Client, group string, topics []string) error {
	var errs []error
	for _, t := range topics {
		errs = append(errs, committedToEnd(ctx, adm, group, t))
	}
	return errors.Join(errs...)
}

// workload is the scale-out test's events: per key, context-giving events
// in phase 1 and dependent ones in phase 2, in steps.
type workload struct {
	phase1 []*kgo.Record
	phase2 [][]*kgo.Record
	ids    []string
	// expectations for dependent events, by event id
	wlURL   map[string]string // TextInput → URL
	wlLabel map[string]string
	cfIP    map[string]string // query → context IP
	clPage  map[string]string // click without page → session page
	keyOf   map[string]string // dependent event id → state key
	ctxID   map[string]string // state key → id of the event that gave its context in phase 1
}

func (w *workload) total() int { return len(w.ids) }

func newWorkload(t *testing.T, serde *avro.Serde, run string, keys int) *workload {
	w := &workload{wlURL: map[string]string{}, wlLabel: map[string]string{}, cfIP: map[string]string{},
		clPage: map[string]string{}, keyOf: map[string]string{}, ctxID: map[string]string{}}
	seq := 0
	id := func(kind string) string {
		seq++
		s := fmt.Sprintf("%s%s-%05d", run, kind, seq)
		w.ids = append(w.ids, s)
		return s
	}
	rec := func(f event.Family, n map[string]any) *kgo.Record { return rawRecord(t, serde, f, n) }
	const steps = 10
	w.phase2 = make([][]*kgo.Record, steps)
	for k := range keys {
		sensor, worker, session, user := fmt.Sprintf("%sS%02d", run, k), fmt.Sprintf("%sW%02d", run, k), fmt.Sprintf("%sC%02d", run, k), fmt.Sprintf("%sU%02d", run, k)
		ip := fmt.Sprintf("81.2.69.%d", 10+k)
		label, url1, url2 := fmt.Sprintf("label-%d", k), fmt.Sprintf("https://host-%d.example/a", k), fmt.Sprintf("https://host-%d.example/b?x=%d", k, k)
		page := fmt.Sprintf("https://site.example/game/%d", k)
		base := int64(1_700_000_000_000_000) + int64(k)*1_000_000_000
		tWin, tLoc, tWin2, tLoc2 := base+10, base+20, base+5_000_010, base+5_000_020

		cid := id("wl")
		w.ctxID[sensor] = cid
		w.phase1 = append(w.phase1,
			rec(event.Weaklayer, eventtest.Weaklayer(eventtest.Env{ID: cid}, "Install", sensor, base, eventtest.WLInstall(label, chromeUA))),
			rec(event.Weaklayer, eventtest.Weaklayer(eventtest.Env{ID: id("wl")}, "Window", sensor, tWin, eventtest.WLWindow(true, 0))),
			rec(event.Weaklayer, eventtest.Weaklayer(eventtest.Env{ID: id("wl")}, "WindowLocation", sensor, tLoc,
				eventtest.WLLocation("https", fmt.Sprintf("host-%d.example", k), 0, "/a", "", "", tWin))))
		cfid := id("cf")
		w.ctxID[worker] = cfid
		w.phase1 = append(w.phase1, rec(event.CrowdFrame, eventtest.CrowdFrame(eventtest.Env{ID: cfid}, "context", worker, "task", "batch", 0, eventtest.CFContext(chromeUA, ip))))
		clid := id("cl")
		w.ctxID[session] = clid
		w.phase1 = append(w.phase1, rec(event.Clicks, eventtest.Clicks(eventtest.Env{ID: clid, IP: ip}, "mousedown", session, page, "start", "btn")))
		w.phase1 = append(w.phase1, rec(event.EdX, eventtest.EdX(eventtest.Env{ID: id("ex"), Key: user}, map[string]any{
			"username": user, "ip": ip, "event_type": "play_video", "context": eventtest.EdXContext("course-v1:edX+DemoX+2026", "edX", int64(k))})))

		for s := range steps {
			var step []*kgo.Record
			switch {
			case s == 4:
				step = append(step, rec(event.Weaklayer, eventtest.Weaklayer(eventtest.Env{ID: id("wl")}, "Window", sensor, tWin2, eventtest.WLWindow(true, 0))))
			case s == 5:
				step = append(step, rec(event.Weaklayer, eventtest.Weaklayer(eventtest.Env{ID: id("wl")}, "WindowLocation", sensor, tLoc2,
					eventtest.WLLocation("https", fmt.Sprintf("host-%d.example", k), 0, "/b", fmt.Sprintf("?x=%d", k), "", tWin2))))
			default:
				ref, url := tLoc, url1
				if s > 5 {
					ref, url = tLoc2, url2
				}
				tid := id("wl")
				w.wlURL[tid], w.wlLabel[tid], w.keyOf[tid] = url, label, sensor
				step = append(step, rec(event.Weaklayer, eventtest.Weaklayer(eventtest.Env{ID: tid}, "TextInput", sensor, base+int64(6_000_000+s), eventtest.WLTextInput(ref, int64(s)))))
			}
			qid := id("cf")
			w.cfIP[qid], w.keyOf[qid] = ip, worker
			step = append(step, rec(event.CrowdFrame, eventtest.CrowdFrame(eventtest.Env{ID: qid}, "query", worker, "task", "batch", int64(s+1),
				eventtest.CFQuery(fmt.Sprintf("q%d", s), "weather"))))
			ckid := id("cl")
			w.clPage[ckid], w.keyOf[ckid] = page, session
			step = append(step, rec(event.Clicks, eventtest.Clicks(eventtest.Env{ID: ckid}, "mouseup", session, "", fmt.Sprintf("cell-%d", s), "cell")))
			step = append(step, rec(event.EdX, eventtest.EdX(eventtest.Env{ID: id("ex"), Key: user}, map[string]any{
				"username": user, "ip": ip, "event_type": "seq_goto", "page": "https://lms.example/courses/course-v1:edX+DemoX+2026/courseware/"})))
			w.phase2[s] = append(w.phase2[s], step...)
		}
	}
	// Stateless families ride along.
	man := eventtest.Manifest(run+"machine", "jdoe", 10800)
	for s := range steps {
		w.phase2[s] = append(w.phase2[s],
			rec(event.Workstation, eventtest.WorkstationActivity(eventtest.Env{ID: id("ws")}, man, 1692694112+int64(s), 0, 52, 10, 1)),
			rec(event.HEC, eventtest.HEC(eventtest.Env{ID: id("hec"), Key: run + "hec", IP: "81.2.69.1"}, fmt.Sprintf("line %d", s))))
	}
	return w
}

// verify checks the resolved context of every dependent event, and that
// some were resolved by another instance than the one that saw their
// context: state that crossed the kill through the changelog.
func (w *workload) verify(t *testing.T, recs map[string]map[string]any, victim string) {
	t.Helper()
	wrong, crossed := 0, 0
	check := func(id string, ok bool, detail any) {
		if !ok {
			wrong++
			if wrong <= 10 {
				t.Errorf("event %s: %v", id, detail)
			}
		}
		ctxRec := recs[w.ctxID[w.keyOf[id]]]
		if ctxRec != nil && enrichmentOf(ctxRec)["enricher_instance"] == victim && enrichmentOf(recs[id])["enricher_instance"] != victim {
			crossed++
		}
	}
	ids := make([]string, 0, len(w.keyOf))
	for id := range w.keyOf {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		e := enrichmentOf(recs[id])
		switch {
		case w.wlURL[id] != "":
			c := enrich.Rec(e["weaklayer"])
			check(id, c["resolution"] == "resolved" && enrich.Str(c["url"]) == w.wlURL[id] && enrich.Str(c["install_label"]) == w.wlLabel[id], c)
		case w.cfIP[id] != "":
			c := enrich.Rec(e["crowdframe"])
			g := enrich.Rec(e["geo"])
			check(id, c["context_resolved"] == true && enrich.Str(c["ip"]) == w.cfIP[id] && enrich.Str(g["city"]) == "London", c)
		case w.clPage[id] != "":
			c := enrich.Rec(e["clicks"])
			check(id, enrich.Str(c["page"]) == w.clPage[id] && enrich.Str(c["page_source"]) == "session", c)
		}
	}
	t.Logf("resolved context: %d dependent events checked, %d wrong, %d resolved by a survivor from the killed instance's state", len(ids), wrong, crossed)
	if wrong > 0 {
		t.Fatalf("%d dependent events resolved wrongly", wrong)
	}
	if crossed == 0 {
		t.Fatal("no event was resolved from state the killed instance wrote: the test did not exercise the restore")
	}
}
