// Command sluice-bench is `make bench`: it starts sluice-standalone as a child
// process on free loopback ports, then posts batches of real edX events over
// many connections for a fixed time, first to the real ingest endpoint and
// then to the passthrough baseline (split and produce, no validation), and
// prints throughput, latency, errors and the gateway's peak RSS.
package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

//go:embed testdata/edx.ndjson
var edxLines []byte

type options struct {
	duration    time.Duration
	warmup      time.Duration
	conns       int
	batch       int
	maxRequests int64
	binary      string
	keep        bool
	retries     int
	rounds      int
	cpuprofile  string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "load time per phase")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "warm-up load before each phase (not measured)")
	flag.IntVar(&o.conns, "conns", 32, "concurrent connections")
	flag.IntVar(&o.batch, "batch", 50, "events per request")
	flag.Int64Var(&o.maxRequests, "max-requests", 2_000_000, "upper bound on requests per phase")
	flag.StringVar(&o.binary, "standalone", "", "path to sluice-standalone (default: next to this binary)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary data directory")
	flag.IntVar(&o.rounds, "rounds", 4, "rounds; each round loads both phases for duration/rounds, in alternating order")
	flag.IntVar(&o.retries, "retries", 5, "retries of a batch (same Idempotency-Key) on no reply, 429 and 5xx, after Retry-After (at most 5 s)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write CPU profiles of the child, taken from its admin /debug/pprof during round 1, to this file (gateway load) and to this file + .passthrough (baseline load)")
	flag.Parse()
	if o.rounds < 1 {
		o.rounds = 1
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "sluice-bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.binary = filepath.Join(filepath.Dir(exe), "sluice-standalone")
	}
	lines := bytes.Split(bytes.TrimSpace(edxLines), []byte("\n"))
	dir, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	gw := fmt.Sprintf("127.0.0.1:%d", ports[0])
	admin := fmt.Sprintf("127.0.0.1:%d", ports[1])
	cmd := exec.Command(o.binary)
	cmd.Env = append(os.Environ(),
		"SLUICE_DATA_DIR="+dir,
		"SLUICE_GATEWAY_LISTEN="+gw,
		"SLUICE_ADMIN_ADDR="+admin,
		fmt.Sprintf("SLUICE_KAFKA_ADDR=127.0.0.1:%d", ports[2]),
		fmt.Sprintf("SLUICE_REGISTRY_ADDR=127.0.0.1:%d", ports[3]),
		"SLUICE_RUN_ENRICHER=false",
		"SLUICE_RUN_SINK_FILE=false",
		"SLUICE_GATEWAY_BENCH_PASSTHROUGH=true",
		"SLUICE_LOG_LEVEL=warn",
	)
	logf, err := os.Create(filepath.Join(dir, "standalone.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w (run `make build` first)", o.binary, err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()
	if err := waitReady("http://"+admin+"/readyz", 60*time.Second); err != nil {
		b, _ := os.ReadFile(logf.Name())
		return fmt.Errorf("%w\n%s", err, b)
	}
	fmt.Printf("sluice-bench: %d connections, %d edX events per request (%d distinct real events, avg %d B), %s per phase, pid %d\n",
		o.conns, o.batch, len(lines), len(edxLines)/len(lines), o.duration, cmd.Process.Pid)

	gwURL := "http://" + gw + "/v1/events/edx"
	ptURL := "http://" + gw + "/bench/passthrough"
	load(o, gwURL, lines, o.warmup)
	load(o, ptURL, lines, o.warmup)
	// The two phases alternate in rounds (gateway first in odd rounds,
	// passthrough first in even ones), so that both sample the same
	// conditions: on a shared machine the CPU available drifts over a run,
	// and one long phase after the other would fold that drift into the
	// ratio.
	gwRes, ptRes := &result{}, &result{}
	slice := o.duration / time.Duration(o.rounds)
	ro := o // -max-requests bounds a phase: each round gets its share
	ro.maxRequests = max(o.maxRequests/int64(o.rounds), 1)
	pid := cmd.Process.Pid
	debug := os.Getenv("SLUICE_BENCH_DEBUG") != "" // the load generator's CPU too, per round
	measured := func(url string) *result {
		c0, s0 := procCPU(pid), procCPU(os.Getpid())
		r := load(ro, url, lines, slice)
		r.cpu = procCPU(pid) - c0
		if debug {
			client := &result{events: r.events, cpu: procCPU(os.Getpid()) - s0}
			fmt.Printf("  %s: server %.2f µs/event, client %.2f µs/event, wall %s\n", url, r.cpuPerEvent(), client.cpuPerEvent(), r.elapsed)
		}
		return r
	}
	fmt.Printf("\n%-6s %16s %16s %8s\n", "round", "gateway ev/s", "passthrough ev/s", "ratio")
	for r := 0; r < o.rounds; r++ {
		var g, p *result
		if r%2 == 0 {
			var err error
			g, err = profiled(o, r, "http://"+admin, o.cpuprofile, func() *result { return measured(gwURL) })
			if err != nil {
				return err
			}
			p, err = profiled(o, r, "http://"+admin, o.cpuprofile+".passthrough", func() *result { return measured(ptURL) })
			if err != nil {
				return err
			}
		} else {
			p = measured(ptURL)
			g = measured(gwURL)
		}
		fmt.Printf("%-6d %16.0f %16.0f %8.2f\n", r+1, g.eventsPerSec(), p.eventsPerSec(), g.eventsPerSec()/max(p.eventsPerSec(), 1))
		gwRes.merge(g)
		ptRes.merge(p)
	}
	slices.Sort(gwRes.lat)
	slices.Sort(ptRes.lat)
	rss := peakRSS(cmd.Process.Pid)

	fmt.Println()
	fmt.Printf("%-28s %12s %10s %10s %10s %10s %10s %10s %14s %14s\n", "phase", "events/s", "p50 ms", "p99 ms", "requests", "refused", "retries", "errors", "peak RSS MB", "cpu µs/event")
	gwRes.print("gateway (validate+Avro)", rss)
	ptRes.print("passthrough baseline", rss)
	for _, r := range []struct {
		name string
		res  *result
	}{{"gateway", gwRes}, {"passthrough", ptRes}} {
		if r.res.refused > 0 {
			fmt.Printf("%s: %d replies 429/503 (backpressure); connections spent %.0f %% of the phase waiting to retry (Retry-After, or a backoff after no reply)\n",
				r.name, r.res.refused, 100*r.res.backoff.Seconds()/(float64(o.conns)*r.res.elapsed.Seconds()))
		}
		if r.res.unfinished > 0 {
			fmt.Printf("%s: %d batches were still waiting to be retried when their round ended (neither stored nor counted as errors)\n",
				r.name, r.res.unfinished)
		}
	}
	ratio := 0.0
	if ptRes.eventsPerSec() > 0 {
		ratio = gwRes.eventsPerSec() / ptRes.eventsPerSec()
	}
	fmt.Printf("\nratio gateway/passthrough: %.2f (target >= 0.50); gateway p99 %.1f ms (target <= 50); peak RSS %d MB (target < 300)\n",
		ratio, gwRes.pct(0.99), rss>>20)
	if gwRes.errors > 0 || ptRes.errors > 0 {
		return errors.New("some requests failed; see the errors column")
	}
	return nil
}

type result struct {
	elapsed  time.Duration
	cpu      time.Duration // the child's CPU time (user + system) during the phase
	events   int64
	requests int64
	errors   int64 // batches not stored after their retries
	retries  int64
	// refused counts the 429 and 503 replies (the gateway's backpressure),
	// and backoff the time connections spent waiting to retry, Retry-After
	// or backoff, cut at the phase's end.
	refused int64
	backoff time.Duration
	// unfinished batches were waiting to be retried when the phase ended.
	unfinished int64
	lat        []time.Duration
	firstErr   string
}

// merge adds o's counts, time and latencies to r (r.lat is left unsorted).
func (r *result) merge(o *result) {
	r.cpu += o.cpu
	r.elapsed += o.elapsed
	r.events += o.events
	r.requests += o.requests
	r.errors += o.errors
	r.retries += o.retries
	r.unfinished += o.unfinished
	r.refused += o.refused
	r.backoff += o.backoff
	r.lat = append(r.lat, o.lat...)
	if r.firstErr == "" {
		r.firstErr = o.firstErr
	}
}

// cpuPerEvent is the child's CPU time per stored event, in µs.
func (r *result) cpuPerEvent() float64 {
	if r.events == 0 {
		return 0
	}
	return float64(r.cpu.Microseconds()) / float64(r.events)
}

func (r *result) eventsPerSec() float64 { return float64(r.events) / r.elapsed.Seconds() }

func (r *result) pct(p float64) float64 {
	if len(r.lat) == 0 {
		return 0
	}
	return float64(r.lat[int(float64(len(r.lat)-1)*p)].Microseconds()) / 1000
}

func (r *result) print(name string, rss int64) {
	fmt.Printf("%-28s %12.0f %10.1f %10.1f %10d %10d %10d %10d %14d %14.2f\n", name, r.eventsPerSec(), r.pct(0.5), r.pct(0.99), r.requests, r.refused, r.retries, r.errors, rss>>20, r.cpuPerEvent())
	if r.firstErr != "" {
		fmt.Printf("  first error: %s\n", r.firstErr)
	}
}

// load posts batches from o.conns goroutines until d passes or the request
// budget is spent.
func load(o options, url string, lines [][]byte, d time.Duration) *result {
	tr := &http.Transport{MaxIdleConnsPerHost: o.conns, MaxConnsPerHost: o.conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var (
		mu     sync.Mutex
		res    = &result{}
		budget = o.maxRequests
		wg     sync.WaitGroup
		reqs   atomic.Int64
	)
	start := time.Now()
	for w := 0; w < o.conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var body bytes.Buffer
			var lat []time.Duration
			var events, errs, sent, retries, unfinished, refused int64
			var backoff time.Duration
			var firstErr string
			next := w * 7
			seq := 0
			for ctx.Err() == nil && reqs.Add(1) <= budget {
				body.Reset()
				for i := 0; i < o.batch; i++ {
					body.Write(lines[next%len(lines)])
					body.WriteByte('\n')
					next++
				}
				// Each batch has its own Idempotency-Key and is retried with the
				// same key and bytes (docs/retries.md), so a retried batch's
				// events carry the same ids.
				key := fmt.Sprintf("bench-%d-w%d-%d", runID, w, seq)
				seq++
				stored, cut := false, false
				var lastErr string
				for attempt := 0; attempt <= o.retries; attempt++ {
					if attempt > 0 {
						retries++
					}
					req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body.Bytes()))
					req.Header.Set("Authorization", "Bearer dev")
					req.Header.Set("Content-Type", "application/x-ndjson")
					req.Header.Set("Idempotency-Key", key)
					t0 := time.Now()
					sent++
					resp, err := client.Do(req)
					var retryAfter string
					if err != nil {
						lastErr = err.Error()
					} else {
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							lat = append(lat, time.Since(t0))
							stored = true
							break
						}
						lastErr = fmt.Sprintf("%d %s", resp.StatusCode, truncate(string(b), 300))
						retryAfter = resp.Header.Get("Retry-After")
						if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
							refused++
						}
						if !retryable(resp.StatusCode, b) {
							break
						}
					}
					slept := time.Now()
					ok := sleepCtx(ctx, retryDelay(retryAfter, attempt))
					backoff += time.Since(slept)
					if !ok {
						cut = true // the phase ended while the batch waited to be retried
						break
					}
				}
				if cut {
					unfinished++
					continue
				}
				if !stored {
					errs++
					if firstErr == "" {
						firstErr = lastErr
					}
					continue
				}
				events += int64(o.batch)
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.events += events
			res.errors += errs
			res.requests += sent
			res.retries += retries
			res.unfinished += unfinished
			res.refused += refused
			res.backoff += backoff
			if res.firstErr == "" {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	slices.Sort(res.lat)
	return res
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// profiled runs phase; in round 0 with -cpuprofile set, it profiles the
// child meanwhile into path.
func profiled(o options, round int, admin, path string, phase func() *result) (*result, error) {
	if round != 0 || o.cpuprofile == "" {
		return phase(), nil
	}
	prof := make(chan error, 1)
	go func() { prof <- cpuProfile(admin, path, o.duration/time.Duration(o.rounds)) }()
	res := phase()
	if err := <-prof; err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return res, nil
}

// cpuProfile fetches a CPU profile of d (whole seconds, at least 1) from the
// child's admin listener and writes it to path.
func cpuProfile(admin, path string, d time.Duration) error {
	secs := max(int(d/time.Second), 1)
	c := &http.Client{Timeout: time.Duration(secs)*time.Second + 30*time.Second}
	resp, err := c.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", admin, secs)) //nolint:noctx // loopback, bounded by the client timeout
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func waitReady(url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url) //nolint:noctx // loopback poll
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("standalone not ready after %s", d)
}

// procCPU reads the process's CPU time so far (user + system, from
// /proc/<pid>/stat, in clock ticks of 10 ms); 0 where /proc is missing.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14, stime 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// peakRSS reads the process's high-water resident set size (VmHWM).
func peakRSS(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// runID makes this run's Idempotency-Keys unique.
var runID = time.Now().UnixNano()

// retryable reports whether a reply means "send the same batch again":
// 429, 5xx, or a 207 that lists events not stored for a retryable reason.
func retryable(status int, body []byte) bool {
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		return true
	case status == http.StatusMultiStatus:
		for _, code := range []string{`"produce_failed"`, `"overloaded"`, `"kafka_unavailable"`, `"rate_limited"`} {
			if bytes.Contains(body, []byte(code)) {
				return true
			}
		}
	}
	return false
}

// retryDelay is Retry-After (whole seconds, at most 5 s) when the gateway
// sent one, else a backoff doubling from 100 ms.
func retryDelay(retryAfter string, attempt int) time.Duration {
	if s, err := strconv.Atoi(retryAfter); err == nil && s > 0 {
		return min(time.Duration(s)*time.Second, 5*time.Second)
	}
	return min(100*time.Millisecond<<attempt, 5*time.Second)
}

// sleepCtx sleeps d, or less when ctx ends first (then it returns false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}
