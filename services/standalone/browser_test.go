package standalone

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice/pkg/app"
	"github.com/sluicehq/sluice/pkg/telemetry"
	"github.com/sluicehq/sluice/services/gateway"
)

// The browser end-to-end test: Debian's Chromium, driven by chromedp,
// against the whole standalone pipeline in this process. It plays the demo
// page and reads the file sink; then it checks CORS from pages on two other
// loopback origins. Without a browser (and no way to install one) it skips,
// saying why.

const (
	browserKey = "browser-key-for-the-e2e-test"
	// secret is typed in the demo's password field and must never be stored.
	secret = "hunter2-never-logged"
)

// chromiumPath finds Chromium, installing Debian's package with
// .ci/chromium.sh when there is none; it skips the test when it cannot.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("SLUICE_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if fi, err := os.Stat(p); p != "" && err == nil && !fi.IsDir() {
			return p
		}
	}
	if os.Getenv("SLUICE_NO_BROWSER_INSTALL") != "" {
		t.Skip("SKIP browser test: no Chromium (/usr/bin/chromium), and SLUICE_NO_BROWSER_INSTALL forbids installing it; run .ci/chromium.sh or set SLUICE_CHROMIUM")
	}
	t.Log("no Chromium: installing Debian's chromium with .ci/chromium.sh")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "../../.ci/chromium.sh")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("SKIP browser test: no Chromium, and installing Debian's chromium failed (%v): %s", err, lastLines(stderr.String(), 5))
	}
	return strings.TrimSpace(string(out))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// newBrowser starts a headless Chromium with a fresh profile; it is
// closed when the test ends.
func newBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() {
		cancelTime()
		cancelTab()
		cancelAlloc() // waits for the browser to exit
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return ctx
}

// startPipelineWith is startPipeline with a change to the configuration.
func startPipelineWith(t *testing.T, dir string, mutate func(*Config)) string {
	t.Helper()
	cfg := Defaults()
	cfg.DataDir = dir
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.RegistryAddr = "127.0.0.1:0"
	cfg.Gateway.Listen = "127.0.0.1:0"
	for _, k := range []*time.Duration{&cfg.Enricher.Kafka.HeartbeatInterval, &cfg.SinkFile.Kafka.HeartbeatInterval} {
		*k = 300 * time.Millisecond
	}
	// Files become visible when the sink publishes them: soon, here.
	cfg.SinkFile.RotateAge = 500 * time.Millisecond
	mutate(&cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	env := app.Env{Log: log, Metrics: prometheus.NewRegistry(), Ready: &telemetry.Readiness{}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	comps, err := Build(ctx, &cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	var gw *gateway.Service
	for _, c := range comps {
		if v, ok := c.(*gateway.Service); ok {
			gw = v
		}
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx, log, 30*time.Second, comps...) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("pipeline stopped with error: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for gw.Addr() == cfg.Gateway.Listen && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return "http://" + gw.Addr()
}

// sinkEvent is one line of the file sink, with its Crowd Frame details or
// clicks info decoded.
type sinkEvent struct {
	line    map[string]any
	text    string
	typ     string
	worker  string
	details map[string]any
}

func (e sinkEvent) envelope(key string) string {
	env, _ := e.line["envelope"].(map[string]any)
	s, _ := unwrap(env[key]).(string)
	return s
}

// unwrap returns the value of an Avro JSON union ({"type": value}), else v.
func unwrap(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for k, x := range m {
			if strings.Contains(k, ".") || k == "string" || k == "long" || k == "double" || k == "boolean" {
				return x
			}
		}
	}
	return v
}

// sinkEvents reads every line the file sink wrote for a family.
func sinkEvents(t *testing.T, dir, family string) []sinkEvent {
	t.Helper()
	var out []sinkEvent
	_ = filepath.WalkDir(filepath.Join(dir, "sink", family), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") || strings.HasSuffix(d.Name(), ".tmp") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("%s: not JSON: %v", p, err)
				continue
			}
			e := sinkEvent{line: m, text: sc.Text()}
			e.typ, _ = m["type"].(string)
			e.worker, _ = unwrap(m["worker"]).(string)
			if dj, ok := m["details_json"].(string); ok {
				_ = json.Unmarshal([]byte(dj), &e.details)
			} else if info, ok := m["info"].(map[string]any); ok {
				e.details = info
			}
			out = append(out, e)
		}
		return nil
	})
	return out
}

// waitSink polls the sink until done holds for its events.
func waitSink(t *testing.T, dir, family string, what string, done func([]sinkEvent) bool) []sinkEvent {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		evs := sinkEvents(t, dir, family)
		if done(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			var types []string
			for _, e := range evs {
				types = append(types, e.typ)
			}
			t.Fatalf("the file sink does not show %s after 30 s; %s events: %v", what, family, types)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func find(evs []sinkEvent, ok func(sinkEvent) bool) *sinkEvent {
	for i := range evs {
		if ok(evs[i]) {
			return &evs[i]
		}
	}
	return nil
}

// recorder is a reverse proxy in front of the gateway that notes every
// request, so the test sees how the browser sent each batch: a beacon has
// its key and batch id in the query and no Authorization header.
type recorder struct {
	url  string
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method, path, query, auth, contentType string
}

func newRecorder(t *testing.T, gw string) *recorder {
	t.Helper()
	target, err := url.Parse(gw)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Content-Type")})
		rec.mu.Unlock()
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	rec.url = "http://" + ln.Addr().String()
	return rec
}

// beaconBatches returns the batch ids of the beacons: POSTs with the key in
// the query and no Authorization header.
func (rec *recorder) beaconBatches() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var ids []string
	for _, r := range rec.reqs {
		q, _ := url.ParseQuery(r.query)
		if r.method == http.MethodPost && r.auth == "" && q.Get("key") != "" && q.Get("idempotency_key") != "" {
			ids = append(ids, q.Get("idempotency_key"))
		}
	}
	return ids
}

func TestBrowserAgentEndToEnd(t *testing.T) {
	chromium := chromiumPath(t)
	dir := t.TempDir()
	// Two more loopback origins for the CORS checks: one the browser key
	// lists, one it does not.
	allowed, blocked := pageServer(t), pageServer(t)
	gw := startPipelineWith(t, dir, func(c *Config) {
		c.Gateway.Sources = append(c.Gateway.Sources, gateway.Source{
			ID: "site", Key: browserKey, Browser: true, Families: []string{"crowdframe", "clicks"},
			Origins: []string{allowed.origin},
		})
	})
	allowed.gateway, blocked.gateway = gw, gw
	ctx := newBrowser(t, chromium)

	// The demo is opened through a recording proxy: the page, and so the
	// agent, which posts to where its script came from, use the proxy.
	t.Run("demo", func(t *testing.T) { playDemo(t, ctx, newRecorder(t, gw), dir) })
	t.Run("clicks family", func(t *testing.T) { clicksFamily(t, ctx, gw, dir) })
	t.Run("cors", func(t *testing.T) { corsFromOtherOrigins(t, ctx, dir, allowed, blocked) })
}

// playDemo plays the demo as a person would and finds what it did in the
// file sink.
func playDemo(t *testing.T, ctx context.Context, rec *recorder, dir string) {
	gw := rec.url
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	worker := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	do("open the demo", chromedp.Navigate(gw+"/demo/?workerId="+worker), chromedp.WaitVisible(chromedp.ID("board")))
	if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof Sluice == 'object' && !!Sluice.agent`)); err != nil || !ok {
		t.Fatalf("the agent did not start: %v", err)
	}
	// X takes the middle row: (1,1), (0,1), (2,1); O plays (0,0), (2,2).
	for _, cell := range []string{"(1,1)", "(0,0)", "(0,1)", "(2,2)", "(2,1)"} {
		do("click "+cell, chromedp.Click(chromedp.CSS(`td[id="`+cell+`"]`)), chromedp.Sleep(150*time.Millisecond))
	}
	if s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("status"))); err != nil || s != "X wins" {
		t.Fatalf("game status %q (%v), want X wins", s, err)
	}
	do("type a comment", chromedp.SendKeys(chromedp.ID("comment"), "hello sluice"))
	do("type a password", chromedp.SendKeys(chromedp.ID("password"), secret))
	do("pick a radio", chromedp.Click(chromedp.ID("hard")))
	do("scroll", func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Call(ctx, input.DispatchMouseEvent, input.DispatchMouseEventParams{
			// DeltaX is required, and a zero would be left out: -1 at
			// scrollX 0 moves nothing.
			Type: input.DispatchMouseEventTypeMouseWheel, X: 400, Y: 400, DeltaX: -1, DeltaY: 900,
		})
		return chromedp.Void{}, err
	}, chromedp.Sleep(600*time.Millisecond))
	if y, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`scrollY`)); err != nil || y <= 0 {
		t.Fatalf("the page did not scroll: %v %v", y, err)
	}
	do("select a word", chromedp.DoubleClick(chromedp.ID("word")))
	if sel, err := chromedp.Run(ctx, chromedp.Evaluate[string](`String(getSelection())`)); err != nil || !strings.Contains(sel, "backpressure") {
		t.Fatalf("selection %q (%v)", sel, err)
	}
	// Close the page: navigating away fires pagehide, and the agent sends
	// what it still holds, the unload last, by beacon.
	do("leave the page", chromedp.Navigate("about:blank"))

	evs := waitSink(t, dir, "crowdframe", "the demo's unload", func(evs []sinkEvent) bool {
		return find(evs, func(e sinkEvent) bool { return e.worker == worker && e.typ == "unload" }) != nil
	})
	mine := slices.DeleteFunc(evs, func(e sinkEvent) bool { return e.worker != worker })
	var types []string
	for _, e := range mine {
		types = append(types, e.typ)
	}
	t.Logf("%d crowdframe events from the demo: %v", len(mine), types)

	click := find(mine, func(e sinkEvent) bool {
		tg, _ := e.details["target"].(map[string]any)
		return e.typ == "click" && tg["id"] == "(1,1)"
	})
	if click == nil {
		t.Fatal("no click on cell (1,1) with its target id")
	}
	if !strings.Contains(click.text, `"(1,1)"`) || click.details["clicks"] != float64(1) {
		t.Errorf("click: %s", click.text)
	}
	if tg := click.typedTarget(); tg["id"] != "(1,1)" || tg["elementName"] != "td" {
		t.Errorf("the typed details (schema v2) lack the target id: %v", tg)
	}
	keys := find(mine, func(e sinkEvent) bool { return e.typ == "keySequence" && e.details["sentence"] == "hello sluice" })
	if keys == nil {
		t.Fatal("no key sequence with the sentence \"hello sluice\"")
	}
	if ks, _ := keys.details["keySequence"].([]any); len(ks) != len("hello sluice") {
		t.Errorf("key sequence of %d keys: %v", len(ks), keys.details)
	}
	if find(mine, func(e sinkEvent) bool { y, _ := e.details["y"].(float64); return e.typ == "scroll" && y > 0 }) == nil {
		t.Error("no scroll")
	}
	if find(mine, func(e sinkEvent) bool {
		s, _ := e.details["selected"].(string)
		return e.typ == "selection" && strings.Contains(s, "backpressure")
	}) == nil {
		t.Error("no selection of the word")
	}
	if find(mine, func(e sinkEvent) bool { return e.typ == "radioChange" && e.details["value"] == "hard" }) == nil {
		t.Error("no radio change")
	}
	if find(mine, func(e sinkEvent) bool { return e.typ == "text" && e.details["text"] == "hello sluice" }) == nil {
		t.Error("no text on blur")
	}
	unload := find(mine, func(e sinkEvent) bool { return e.typ == "unload" })
	if ids := rec.beaconBatches(); !slices.Contains(ids, unload.envelope("batch_id")) {
		t.Errorf("the unload's batch %q is not one of the beacons %v", unload.envelope("batch_id"), ids)
	}
	// The agent's event ids are UUIDv4 (the gateway mints v7, or v5 for a batch).
	if id := unload.envelope("event_id"); len(id) != 36 || id[14] != '4' {
		t.Errorf("the envelope's event id %q is not the agent's", id)
	}
	// Sequence numbers: one per event, from the page load's 0.
	seqs := map[float64]bool{}
	for _, e := range mine {
		s, _ := unwrap(e.line["sequence"]).(float64)
		if seqs[s] {
			t.Errorf("sequence %v twice", s)
		}
		seqs[s] = true
	}
	// The password never left the page.
	assertNowhere(t, filepath.Join(dir, "sink"), secret)
}

// typedTarget is the click's typed details target.
func (e sinkEvent) typedTarget() map[string]any {
	d, _ := unwrap(e.line["details"]).(map[string]any)
	tg, _ := unwrap(d["target"]).(map[string]any)
	out := map[string]any{}
	for k, v := range tg {
		out[k] = unwrap(v)
	}
	return out
}

func assertNowhere(t *testing.T, root, s string) {
	t.Helper()
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), s) {
			t.Errorf("%s holds %q", p, s)
		}
		return nil
	})
}

// clicksFamily runs the demo in dejavu's shape.
func clicksFamily(t *testing.T, ctx context.Context, gw, dir string) {
	session := fmt.Sprintf("e2e-clicks-%d", time.Now().UnixNano())
	if err := chromedp.Do(ctx,
		chromedp.Navigate(gw+"/demo/?family=clicks&workerId="+session),
		chromedp.WaitVisible(chromedp.ID("board")),
		chromedp.Click(chromedp.CSS(`td[id="(1,1)"]`)),
		chromedp.Navigate("about:blank"),
	); err != nil {
		t.Fatal(err)
	}
	evs := waitSink(t, dir, "clicks", "the mousedown on (1,1)", func(evs []sinkEvent) bool {
		return find(evs, func(e sinkEvent) bool {
			return e.typ == "mousedown" && strings.Contains(e.text, session) && strings.Contains(e.text, `"(1,1)"`)
		}) != nil
	})
	md := find(evs, func(e sinkEvent) bool { return e.typ == "mousedown" && strings.Contains(e.text, session) })
	tg, _ := unwrap(md.details["target"]).(map[string]any)
	if unwrap(tg["id"]) != "(1,1)" || unwrap(tg["class"]) != "cell" {
		t.Errorf("mousedown target: %s", md.text)
	}
}

// page is a loopback server that serves a page loading the agent from the
// gateway.
type page struct {
	origin  string
	gateway string
}

func pageServer(t *testing.T) *page {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &page{origin: "http://" + ln.Addr().String()}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>another site</title><p id="ready">ready</p><script src="%s/sdk/sluice.js"></script>`, p.gateway)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

// probe posts from the page with fetch (Authorization header, so with a
// preflight), by beacon (?key=), and with the dev key; it returns what the
// page could see.
const probe = `(async (gw, key, who) => {
  const body = (w) => JSON.stringify({worker: w, type: 'cors_probe', details: {}});
  const out = {};
  try {
    const r = await fetch(gw + '/v1/events/crowdframe', {method: 'POST', headers: {Authorization: 'Bearer ' + key, 'Content-Type': 'application/json'}, body: body(who)});
    out.status = r.status;
  } catch (e) { out.error = String(e); }
  out.beacon = navigator.sendBeacon(gw + '/v1/events/crowdframe?key=' + encodeURIComponent(key), body(who + '-beacon'));
  try {
    const r = await fetch(gw + '/v1/events/crowdframe', {method: 'POST', headers: {Authorization: 'Bearer dev', 'Content-Type': 'application/json'}, body: body(who + '-dev')});
    out.devStatus = r.status;
  } catch (e) { out.devError = String(e); }
  // The agent itself, which finds the gateway from its script's address.
  Sluice.init({key: key, context: {worker: who + '-agent'}, capture: {resize: false}});
  Sluice.track('cors_probe', {});
  Sluice.flush();
  await new Promise((r) => setTimeout(r, 500));
  out.agent = Sluice.stats();
  return out;
})(%q, %q, %q)`

type probeResult struct {
	Status    int    `json:"status"`
	Error     string `json:"error"`
	Beacon    bool   `json:"beacon"`
	DevStatus int    `json:"devStatus"`
	DevError  string `json:"devError"`
	Agent     struct {
		Sent    int `json:"sent"`
		Retries int `json:"retries"`
	} `json:"agent"`
}

// corsFromOtherOrigins checks that a page on the origin the browser key
// lists can post with it, and a page on another origin cannot.
func corsFromOtherOrigins(t *testing.T, ctx context.Context, dir string, allowed, blocked *page) {
	run := func(p *page, who string) probeResult {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(p.origin+"/"), chromedp.WaitVisible(chromedp.ID("ready"))); err != nil {
			t.Fatal(err)
		}
		res, err := chromedp.Run(ctx, chromedp.Evaluate[probeResult](fmt.Sprintf(probe, p.gateway, browserKey, who), chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("probe from %s: %v", p.origin, err)
		}
		t.Logf("from %s: %+v", p.origin, res)
		return res
	}
	ok := run(allowed, "cors-allowed")
	if ok.Status != 200 || ok.Error != "" || !ok.Beacon || ok.Agent.Sent != 1 {
		t.Errorf("the allowed origin could not post with the key: %+v", ok)
	}
	if ok.DevError == "" {
		t.Errorf("the dev key worked from another origin: %+v", ok)
	}
	bad := run(blocked, "cors-blocked")
	if bad.Error == "" || bad.Status != 0 {
		t.Errorf("a disallowed origin could post with the key: %+v", bad)
	}
	if bad.DevError == "" || bad.Agent.Sent != 0 {
		t.Errorf("a disallowed origin got through: %+v", bad)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	evs := waitSink(t, dir, "crowdframe", "the allowed origin's events", func(evs []sinkEvent) bool {
		n := 0
		for _, w := range []string{"cors-allowed", "cors-allowed-beacon", "cors-allowed-agent"} {
			if find(evs, func(e sinkEvent) bool { return e.worker == w }) != nil {
				n++
			}
		}
		return n == 3
	})
	// Give a stray event time to arrive before checking that none did.
	time.Sleep(3 * time.Second)
	evs = sinkEvents(t, dir, "crowdframe")
	for _, e := range evs {
		if strings.HasPrefix(e.worker, "cors-blocked") || e.worker == "cors-allowed-dev" {
			t.Errorf("stored although refused: %s", e.text)
		}
		if strings.HasPrefix(e.worker, "cors-allowed") && e.envelope("source_key") != "site" {
			t.Errorf("source_key %q: %s", e.envelope("source_key"), e.text)
		}
	}
}
