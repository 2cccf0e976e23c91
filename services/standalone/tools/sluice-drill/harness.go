package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/sluicehq/sluice/pkg/event"
)

// roleEnv makes this binary (or a test binary) run as a drill's child
// process: "broker" (a kfake broker, brokerMain) or "gateway" (the gateway
// binary's main, gatewayMain; tests use it instead of bin/sluice-gateway).
const roleEnv = "SLUICE_DRILL_ROLE"

// Environment of the broker role: the address to listen on (port 0: any
// free one), the data directory, and a file to write the address it
// listens on to, once it does.
const (
	brokerAddrEnv     = "SLUICE_DRILL_BROKER_ADDR"
	brokerDirEnv      = "SLUICE_DRILL_BROKER_DIR"
	brokerAddrFileEnv = "SLUICE_DRILL_BROKER_ADDR_FILE"
)

// childSpec says how to start a child process.
type childSpec struct {
	path string
	args []string
	env  []string
}

func (s childSpec) command(extraEnv ...string) *exec.Cmd {
	cmd := exec.Command(s.path, s.args...)
	cmd.Env = append(append(os.Environ(), s.env...), extraEnv...)
	// Its own process group: a Ctrl-C of the drill does not reach it, and
	// the drill ends it by pid.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// brokerMain is the broker role: a one-node kfake cluster on the address
// and data directory in the environment, until SIGTERM or SIGINT. Once it
// listens it writes its address to the address file, so that the drill
// never mistakes another process's listener for it.
func brokerMain() int {
	addr, dir, addrFile := os.Getenv(brokerAddrEnv), os.Getenv(brokerDirEnv), os.Getenv(brokerAddrFileEnv)
	_, portStr, err := net.SplitHostPort(addr)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil || dir == "" || addrFile == "" {
		fmt.Fprintf(os.Stderr, "broker role: %s=%q %s=%q %s=%q\n", brokerAddrEnv, addr, brokerDirEnv, dir, brokerAddrFileEnv, addrFile)
		return 2
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DataDir(dir), kfake.DefaultNumPartitions(3)}
	if port != 0 {
		opts = append(opts, kfake.Ports(port))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "broker role:", err)
		return 1
	}
	listen := c.ListenAddrs()[0]
	if err := writeFileAtomic(addrFile, []byte(listen)); err != nil {
		fmt.Fprintln(os.Stderr, "broker role:", err)
		c.Close()
		return 1
	}
	fmt.Fprintf(os.Stderr, "kfake broker on %s, data in %s\n", listen, dir)
	<-sigs
	c.Close()
	return 0
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// broker is the drill's Kafka: stop makes it unreachable, start brings it
// back on the same address with its data.
type broker interface {
	brokers() []string
	stop() error
	start() error
	close()
}

func brokerKind() string {
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		return "Apache Kafka at " + b
	}
	return "kfake broker in a child process"
}

// newBroker returns the real broker when KAFKA_BROKERS is set, else starts
// a kfake broker process with its data under dir.
func newBroker(o options, dir string) (broker, error) {
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		nodes, _ := strconv.Atoi(os.Getenv("SLUICE_KAFKA_NODES"))
		return &realBroker{addrs: strings.Split(b, ","), ctl: os.Getenv("SLUICE_KAFKA_CTL"), nodes: max(nodes, 1)}, nil
	}
	// The first start takes any free port and says which; restarts take
	// the same one.
	fb := &fakeBroker{spec: o.brokerSpec, addr: "127.0.0.1:0", dir: filepath.Join(dir, "kafka"),
		logPath: filepath.Join(dir, "broker.log"), addrFile: filepath.Join(dir, "broker.addr")}
	return fb, fb.start()
}

type fakeBroker struct {
	spec     childSpec
	addr     string
	dir      string
	logPath  string
	addrFile string
	cmd      *exec.Cmd
	done     chan struct{}
}

func (b *fakeBroker) brokers() []string { return []string{b.addr} }

func (b *fakeBroker) start() error {
	logf, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_ = os.Remove(b.addrFile)
	cmd := b.spec.command(brokerAddrEnv+"="+b.addr, brokerDirEnv+"="+b.dir, brokerAddrFileEnv+"="+b.addrFile)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting the kfake broker: %w", err)
	}
	b.cmd, b.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(b.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if a, err := os.ReadFile(b.addrFile); err == nil && len(a) > 0 {
			b.addr = string(a)
			return nil
		}
		select {
		case <-b.done:
			out, _ := os.ReadFile(b.logPath)
			return fmt.Errorf("the kfake broker exited: %s", out)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return errors.New("the kfake broker did not listen within 60s")
}

func (b *fakeBroker) stop() error {
	if b.cmd == nil {
		return nil
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(15 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
	b.cmd = nil
	return nil
}

func (b *fakeBroker) close() { _ = b.stop() }

type realBroker struct {
	addrs []string
	ctl   string
	nodes int
}

func (b *realBroker) brokers() []string { return b.addrs }

func (b *realBroker) ctlAll(verb string) error {
	if b.ctl == "" {
		return errors.New("SLUICE_KAFKA_CTL is not set (eval \"$(.ci/kafka.sh env)\")")
	}
	for i := 1; i <= b.nodes; i++ {
		out, err := exec.Command(b.ctl, verb, strconv.Itoa(i)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s %d: %v: %s", b.ctl, verb, i, err, out)
		}
	}
	return nil
}

func (b *realBroker) stop() error  { return b.ctlAll("stop-node") }
func (b *realBroker) start() error { return b.ctlAll("start-node") }
func (b *realBroker) close()       {}

// rig is one drill's processes: a registry, a broker and a gateway.
type rig struct {
	o        options
	dir      string
	registry *srfake.Registry
	broker   broker
	gw       *gwProc
}

// newRig starts the registry and the broker, and prepares (does not start)
// a gateway with the drill's settings on top of the base ones.
func newRig(o options, name string, gwEnv ...string) (*rig, error) {
	dir, err := os.MkdirTemp("", "sluice-drill-"+name+"-")
	if err != nil {
		return nil, err
	}
	r := &rig{o: o, dir: dir, registry: srfake.New()}
	o.logf("%s: working directory %s (%s)", name, dir, brokerKind())
	r.broker, err = newBroker(o, dir)
	if err != nil {
		r.close()
		return nil, err
	}
	// The gateway's first start takes free ports and logs them; restarts
	// take the same ones (gwProc.start).
	r.gw = &gwProc{
		spec:    o.gatewaySpec,
		listen:  "127.0.0.1:0",
		admin:   "127.0.0.1:0",
		logPath: filepath.Join(dir, "gateway.log"),
	}
	r.gw.env = append([]string{
		"SLUICE_KAFKA_BROKERS=" + strings.Join(r.broker.brokers(), ","),
		"SLUICE_KAFKA_PARTITIONS=3",
		"SLUICE_REGISTRY_URLS=" + r.registry.URL(),
		"SLUICE_DEV_KEY=true",
		"SLUICE_LOG_LEVEL=info",
		"SLUICE_LOG_FORMAT=json",
	}, append(gwEnv, o.gatewayEnv...)...)
	return r, nil
}

func (r *rig) close() {
	if r.gw != nil {
		r.gw.kill()
	}
	if r.broker != nil {
		r.broker.close()
	}
	r.registry.Close()
	if r.o.keep {
		fmt.Fprintf(os.Stderr, "kept %s\n", r.dir)
		return
	}
	_ = os.RemoveAll(r.dir)
}

// gwProc is the gateway process.
type gwProc struct {
	spec    childSpec
	listen  string
	admin   string
	env     []string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	state  *os.ProcessState
	starts int
}

// addr is the public listener's address; url its base URL.
func (g *gwProc) addr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.listen
}

func (g *gwProc) url() string { return "http://" + g.addr() }

// start starts the gateway. The first start listens on free ports, read
// back from its log (listen returns them); later starts reuse them, so
// that clients find the restarted gateway where it was.
func (g *gwProc) start() error {
	logf, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	offset, _ := logf.Seek(0, io.SeekEnd)
	g.mu.Lock()
	env := append(slices.Clone(g.env), "SLUICE_LISTEN="+g.listen, "SLUICE_ADMIN_ADDR="+g.admin)
	g.mu.Unlock()
	cmd := g.spec.command(env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting the gateway: %w", err)
	}
	done := make(chan struct{})
	g.mu.Lock()
	g.cmd, g.done, g.state = cmd, done, nil
	g.starts++
	g.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		logf.Close()
		g.mu.Lock()
		g.state = cmd.ProcessState
		g.mu.Unlock()
		close(done)
	}()
	return g.listenAddrs(offset, done)
}

// listenAddrs reads the addresses the gateway logs it listens on (the
// "gateway listening" and "admin listening" lines after offset).
func (g *gwProc) listenAddrs(offset int64, done <-chan struct{}) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(g.logPath)
		if int64(len(b)) > offset {
			var listen, admin string
			for _, line := range strings.Split(string(b[offset:]), "\n") {
				var l struct{ Msg, Addr string }
				if json.Unmarshal([]byte(line), &l) != nil {
					continue
				}
				switch l.Msg {
				case "gateway listening":
					listen = l.Addr
				case "admin listening":
					admin = l.Addr
				}
			}
			if listen != "" && admin != "" {
				g.mu.Lock()
				g.listen, g.admin = listen, admin
				g.mu.Unlock()
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("the gateway exited while starting:\n%s", g.logTail(30))
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("the gateway did not log its addresses within 60s:\n%s", g.logTail(30))
}

// startReady starts the gateway and waits for /readyz.
func (g *gwProc) startReady(within time.Duration) error {
	if err := g.start(); err != nil {
		return err
	}
	return g.waitReady(within)
}

func (g *gwProc) pid() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd == nil {
		return 0
	}
	return g.cmd.Process.Pid
}

func (g *gwProc) exited() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.done
}

// ready reports /readyz's status code (0 when it does not answer).
func (g *gwProc) ready() int {
	c := http.Client{Timeout: time.Second}
	g.mu.Lock()
	admin := g.admin
	g.mu.Unlock()
	resp, err := c.Get("http://" + admin + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (g *gwProc) waitReady(within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if g.ready() == http.StatusOK {
			return nil
		}
		select {
		case <-g.exited():
			return fmt.Errorf("the gateway exited while starting:\n%s", g.logTail(30))
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("the gateway was not ready within %s:\n%s", within, g.logTail(30))
}

func (g *gwProc) signal(sig syscall.Signal) {
	g.mu.Lock()
	cmd := g.cmd
	g.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(sig)
	}
}

// kill9 SIGKILLs the gateway and waits for it to be gone.
func (g *gwProc) kill9() {
	g.signal(syscall.SIGKILL)
	if ch := g.exited(); ch != nil {
		<-ch
	}
}

// kill ends the gateway if it runs (cleanup).
func (g *gwProc) kill() {
	if ch := g.exited(); ch != nil {
		select {
		case <-ch:
		default:
			g.kill9()
		}
	}
}

// wait waits up to d for the gateway to exit and returns its state.
func (g *gwProc) wait(d time.Duration) (*os.ProcessState, bool) {
	ch := g.exited()
	if ch == nil {
		return nil, false
	}
	select {
	case <-ch:
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.state, true
	case <-time.After(d):
		return nil, false
	}
}

func (g *gwProc) logTail(n int) string {
	b, _ := os.ReadFile(g.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (g *gwProc) logContains(s string) bool {
	b, _ := os.ReadFile(g.logPath)
	return strings.Contains(string(b), s)
}

// rss returns the process's resident set size and its high-water mark.
func rss(pid int) (cur, hwm int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		for _, k := range []struct {
			p string
			v *int64
		}{{"VmRSS:", &cur}, {"VmHWM:", &hwm}} {
			if rest, ok := strings.CutPrefix(line, k.p); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				*k.v = kb << 10
			}
		}
	}
	return cur, hwm
}

// rssWatch samples a process's RSS until stopped and returns the peak seen
// (and the kernel's high-water mark at the end).
func rssWatch(pid int, every time.Duration) (stop func() (peak, hwm int64)) {
	var peak int64
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if cur, _ := rss(pid); cur > peak {
				peak = cur
			}
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	return func() (int64, int64) {
		close(quit)
		<-done
		_, hwm := rss(pid)
		return peak, hwm
	}
}

// endOffsets lists the end offset of each partition of topic.
func endOffsets(ctx context.Context, brokers []string, topic string) (map[int32]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var last error
	for ctx.Err() == nil {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			out := map[int32]int64{}
			ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
			if len(out) > 0 {
				return out, nil
			}
			err = fmt.Errorf("topic %s has no partitions yet", topic)
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return nil, fmt.Errorf("listing the end offsets of %s: %w", topic, errors.Join(last, ctx.Err()))
}

// eventIDs reads topic from the offsets in from (the start of each
// partition when absent) to its current end and counts the records of each
// event id (header sluice-event-id) that starts with prefix.
func eventIDs(ctx context.Context, brokers []string, topic string, from map[int32]int64, prefix string) (map[string]int, error) {
	ends, err := endOffsets(ctx, brokers, topic)
	if err != nil {
		return nil, err
	}
	parts := map[int32]kgo.Offset{}
	remaining := 0
	for p, end := range ends {
		start := from[p]
		if end > start {
			parts[p] = kgo.NewOffset().At(start)
			remaining++
		}
	}
	ids := map[string]int{}
	if remaining == 0 {
		return ids, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	done := map[int32]bool{}
	for len(done) < remaining {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return ids, fmt.Errorf("reading %s: %w (%d of %d partitions read)", topic, err, len(done), remaining)
		}
		fs.EachError(func(_ string, p int32, e error) { err = fmt.Errorf("partition %d: %w", p, e) })
		if err != nil {
			return ids, err
		}
		fs.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == event.HeaderEventID && strings.HasPrefix(string(h.Value), prefix) {
					ids[string(h.Value)]++
				}
			}
			if r.Offset >= ends[r.Partition]-1 {
				done[r.Partition] = true
			}
		})
	}
	return ids, nil
}

// readyzWatch polls /readyz every interval until stopped, recording each
// change of status.
type readyzWatch struct {
	mu      sync.Mutex
	changes []statusAt
	quit    chan struct{}
	done    chan struct{}
}

type statusAt struct {
	at     time.Time
	status int
}

func watchReadyz(g *gwProc, every time.Duration) *readyzWatch {
	w := &readyzWatch{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		last := -1
		for {
			s := g.ready()
			if s != last {
				w.mu.Lock()
				w.changes = append(w.changes, statusAt{time.Now(), s})
				w.mu.Unlock()
				last = s
			}
			select {
			case <-w.quit:
				return
			case <-time.After(every):
			}
		}
	}()
	return w
}

func (w *readyzWatch) stop() []statusAt {
	close(w.quit)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changes
}

// firstStatus returns when the status first became want at or after t.
func firstStatus(changes []statusAt, after time.Time, want func(int) bool) (time.Time, bool) {
	state := -1
	for _, c := range changes {
		if c.at.Before(after) {
			state = c.status
			continue
		}
		if want(c.status) {
			return c.at, true
		}
		state = c.status
	}
	if want(state) {
		return after, true
	}
	return time.Time{}, false
}
