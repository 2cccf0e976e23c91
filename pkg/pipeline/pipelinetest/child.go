package pipelinetest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sluicehq/sluice/pkg/app"
	"github.com/sluicehq/sluice/pkg/kafka"
)

// Environment of a child process.
const (
	envChild    = "SLUICE_SINKTEST_CHILD"
	envBrokers  = "SLUICE_SINKTEST_BROKERS"
	envRegistry = "SLUICE_SINKTEST_REGISTRY"
	envGroup    = "SLUICE_SINKTEST_GROUP"
	envCrash    = "SLUICE_SINKTEST_CRASH" // <point>:<occurrence>
	envClientID = "SLUICE_SINKTEST_CLIENT_ID"
)

// Lines a child prints on stdout.
const (
	lineReady = "READY"
	lineCrash = "CRASHPOINT "
)

// IsChild reports whether this process is a sink started by the suite. A
// sink's TestMain checks it first and then calls RunChild instead of the
// tests.
func IsChild() bool { return os.Getenv(envChild) == "1" }

// ChildConfig is what a child process is told.
type ChildConfig struct {
	// Kafka points at the suite's broker, with the suite's group timings.
	Kafka kafka.Config
	// Registry is the schema registry URL.
	Registry string
	// Group is the consumer group of the scenario.
	Group string
	// Getenv reads the destination's environment (Destination.Env).
	Getenv func(string) string
	// Point is the crash seam: the sink calls it at each of its hook points
	// with the point's name. At the scenario's crash point it announces
	// the crash and blocks until the suite kills the process (SIGKILL).
	Point func(name string)
}

// childKafka is the Kafka configuration of children: the shortest group
// session brokers allow by default (group.min.session.timeout.ms), so that
// a killed member leaves the group quickly.
func childKafka(brokers []string, clientID string) kafka.Config {
	cfg := kafka.Defaults()
	cfg.Brokers = brokers
	if clientID != "" {
		cfg.ClientID = clientID
	}
	cfg.Partitions = 3
	cfg.SessionTimeout = 6 * time.Second
	cfg.HeartbeatInterval = 500 * time.Millisecond
	cfg.RebalanceTimeout = 10 * time.Second
	cfg.CreateTopics = false
	if os.Getenv("KAFKA_BROKERS") != "" {
		cfg.ReplicationFactor = -1
	}
	return cfg
}

// RunChild runs the sink that build returns until SIGTERM and returns the
// process exit code. It prints READY on stdout once the sink has started.
func RunChild(build func(ctx context.Context, cfg ChildConfig, log *zap.Logger) (app.Component, error)) int {
	enc := zap.NewDevelopmentEncoderConfig()
	level := zap.InfoLevel
	if os.Getenv("SLUICE_SINKTEST_DEBUG") != "" {
		level = zap.DebugLevel
	}
	log := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(os.Stderr), level))
	defer func() { _ = log.Sync() }()
	cfg := ChildConfig{
		Kafka:    childKafka(strings.Split(os.Getenv(envBrokers), ","), os.Getenv(envClientID)),
		Registry: os.Getenv(envRegistry),
		Group:    os.Getenv(envGroup),
		Getenv:   os.Getenv,
		Point:    crashPoint(os.Getenv(envCrash), log),
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(300) // as app.Main sets it for the service binaries
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	comp, err := build(ctx, cfg, log)
	cancel()
	if err != nil {
		log.Error("building the sink", zap.Error(err))
		return 1
	}
	if path := os.Getenv("SLUICE_SINKTEST_CPUPROFILE"); path != "" {
		// For profiling a benchmark's sink process.
		if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
			defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
		}
	}
	if path := os.Getenv("SLUICE_SINKTEST_MEMPROFILE"); path != "" {
		go peakHeapProfile(path)
	}
	ready := app.Func{N: "ready", StartFn: func(context.Context) error {
		fmt.Println(lineReady)
		return nil
	}}
	if err := app.Run(context.Background(), log, 20*time.Second, comp, ready); err != nil {
		log.Error("sink stopped with an error", zap.Error(err))
		return 1
	}
	return 0
}

// peakHeapProfile writes a heap profile to path whenever the heap in use
// reaches a new peak (for profiling a benchmark's sink process).
func peakHeapProfile(path string) {
	var peak uint64
	for range time.Tick(200 * time.Millisecond) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse <= peak {
			continue
		}
		peak = ms.HeapInuse
		if f, err := os.Create(path); err == nil {
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			_ = f.Close()
		}
	}
}

// crashPoint returns the Point function for a crash spec "<name>:<n>".
func crashPoint(spec string, log *zap.Logger) func(string) {
	name, nStr, _ := strings.Cut(spec, ":")
	n, _ := strconv.Atoi(nStr)
	var mu sync.Mutex
	seen := map[string]int{}
	return func(point string) {
		if spec == "" || point != name {
			return
		}
		mu.Lock()
		seen[point]++
		hit := seen[point] == n
		mu.Unlock()
		if !hit {
			return
		}
		log.Info("at the crash point; waiting for SIGKILL", zap.String("point", point), zap.Int("occurrence", n))
		fmt.Println(lineCrash + point)
		select {} // the suite kills the process here
	}
}

// child is a running sink process.
type child struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	lines  chan string
	stderr *lockedBuffer
	exited chan struct{}
	code   int
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startChild re-executes the test binary as a sink process and waits for
// READY.
func startChild(ctx context.Context, t testing.TB, name string, env []string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(append(os.Environ(), envChild+"=1", envClientID+"="+clientID(name)), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, name: name, cmd: cmd, lines: make(chan string, 64), stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case c.lines <- sc.Text():
			default: // nobody listens to more than a few lines
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		err := cmd.Wait()
		c.code = cmd.ProcessState.ExitCode()
		if err != nil && c.code == 0 {
			c.code = -1
		}
		close(c.exited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			c.dump()
		}
		c.kill()
		if t.Failed() || os.Getenv("SLUICE_SINKTEST_LOGS") != "" {
			n := 400
			if os.Getenv("SLUICE_SINKTEST_DEBUG") != "" {
				n = 1 << 30
			}
			t.Logf("stderr of %s:\n%s", c.name, tail(c.stderr.String(), n))
		}
	})
	if _, err := c.waitLine(ctx, lineReady); err != nil {
		t.Fatalf("%s did not start: %v", name, err)
	}
	return c
}

// waitLine waits for a stdout line starting with prefix.
func (c *child) waitLine(ctx context.Context, prefix string) (string, error) {
	for {
		select {
		case l := <-c.lines:
			if strings.HasPrefix(l, prefix) {
				return l, nil
			}
		case <-c.exited:
			return "", fmt.Errorf("%s exited with code %d before %q", c.name, c.code, prefix)
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for %q from %s: %w", prefix, c.name, ctx.Err())
		}
	}
}

// dump makes a running child print its goroutines (SIGQUIT) into its
// stderr, for the log of a failed test.
func (c *child) dump() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGQUIT)
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
	}
}

// kill sends SIGKILL and waits for the process to go.
func (c *child) kill() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
}

// term sends SIGTERM and waits for a clean exit; it kills the process if
// it does not exit by ctx's end.
func (c *child) term(ctx context.Context) error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		if c.code != 0 {
			return fmt.Errorf("%s exited with code %d after SIGTERM", c.name, c.code)
		}
		return nil
	case <-ctx.Done():
		c.kill()
		return fmt.Errorf("%s did not exit after SIGTERM: %w", c.name, ctx.Err())
	}
}

// clientID is the Kafka client id of a child: the suite tells group
// members apart by it.
func clientID(name string) string {
	return "sinktest-" + strings.NewReplacer("/", "-", " ", "-").Replace(name)
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
