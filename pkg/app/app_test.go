package app

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// journal records lifecycle calls in order.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(e string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
}

func (j *journal) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.events)
}

// comp is a scripted component.
type comp struct {
	name     string
	j        *journal
	startErr error
	stopErr  error
	// stop, when set, runs as the body of Stop.
	stop func(ctx context.Context) error
}

func (c *comp) Name() string { return c.name }

func (c *comp) Start(context.Context) error {
	c.j.add("start " + c.name)
	return c.startErr
}

func (c *comp) Stop(ctx context.Context) error {
	c.j.add("stop " + c.name)
	if c.stop != nil {
		return c.stop(ctx)
	}
	return c.stopErr
}

// failer is a comp that can fail after Start.
type failer struct {
	comp
	failed chan error
}

func (f *failer) Failed() <-chan error { return f.failed }

// runAsync runs run in the background and returns its result channel.
func runAsync(t *testing.T, ctx context.Context, timeout time.Duration, sigs chan os.Signal, exitNow func(), comps ...Component) <-chan error {
	t.Helper()
	if exitNow == nil {
		exitNow = func() { t.Error("exitNow called") }
	}
	res := make(chan error, 1)
	// zap.NewNop, not zaptest: a Stop that outlives run logs after the test.
	go func() { res <- run(ctx, zap.NewNop(), timeout, sigs, exitNow, comps...) }()
	return res
}

// wait returns run's result, failing the test if it takes longer than d.
func wait(t *testing.T, res <-chan error, d time.Duration) error {
	t.Helper()
	select {
	case err := <-res:
		return err
	case <-time.After(d):
		t.Fatalf("run did not return within %s", d)
		return nil
	}
}

// waitFor polls until cond holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func started(j *journal, n int) func() bool {
	return func() bool {
		c := 0
		for _, e := range j.get() {
			if strings.HasPrefix(e, "start ") {
				c++
			}
		}
		return c == n
	}
}

func TestRunOrder(t *testing.T) {
	want := []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}
	for _, tc := range []struct {
		name    string
		trigger func(cancel context.CancelFunc, sigs chan os.Signal, b *failer)
		wantErr string
	}{
		{"context cancelled", func(cancel context.CancelFunc, _ chan os.Signal, _ *failer) { cancel() }, ""},
		{"signal", func(_ context.CancelFunc, sigs chan os.Signal, _ *failer) { sigs <- syscall.SIGTERM }, ""},
		{"component failed", func(_ context.CancelFunc, _ chan os.Signal, b *failer) { b.failed <- errors.New("boom") }, "b: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := &journal{}
			b := &failer{comp: comp{name: "b", j: j}, failed: make(chan error, 1)}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sigs := make(chan os.Signal, 2)
			res := runAsync(t, ctx, 5*time.Second, sigs, nil, &comp{name: "a", j: j}, b, &comp{name: "c", j: j})
			waitFor(t, "all started", started(j, 3))
			tc.trigger(cancel, sigs, b)
			err := wait(t, res, 10*time.Second)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("run = %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("run = %v, want %q", err, tc.wantErr)
			}
			if got := j.get(); !slices.Equal(got, want) {
				t.Fatalf("lifecycle %v, want %v", got, want)
			}
		})
	}
}

func TestRunStartFails(t *testing.T) {
	j := &journal{}
	boom := errors.New("no broker")
	res := runAsync(t, context.Background(), 5*time.Second, make(chan os.Signal), nil,
		&comp{name: "a", j: j}, &comp{name: "b", j: j}, &comp{name: "c", j: j, startErr: boom}, &comp{name: "d", j: j})
	err := wait(t, res, 10*time.Second)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "starting c") {
		t.Fatalf("run = %v", err)
	}
	want := []string{"start a", "start b", "start c", "stop b", "stop a"}
	if got := j.get(); !slices.Equal(got, want) {
		t.Fatalf("lifecycle %v, want %v", got, want)
	}
}

func TestRunStopErrorsJoined(t *testing.T) {
	j := &journal{}
	e1, e2 := errors.New("flush failed"), errors.New("commit failed")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := runAsync(t, ctx, 5*time.Second, make(chan os.Signal), nil,
		&comp{name: "a", j: j, stopErr: e1}, &comp{name: "b", j: j}, &comp{name: "c", j: j, stopErr: e2})
	err := wait(t, res, 10*time.Second)
	if !errors.Is(err, e1) || !errors.Is(err, e2) || !strings.Contains(err.Error(), "stopping a") || !strings.Contains(err.Error(), "stopping c") {
		t.Fatalf("run = %v", err)
	}
	if got := j.get(); len(got) != 6 {
		t.Fatalf("a failing Stop kept the others from stopping: %v", got)
	}
}

func TestRunStopTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	t.Run("stop honours its context", func(t *testing.T) {
		j := &journal{}
		slow := &comp{name: "slow", j: j, stop: func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		}}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		t0 := time.Now()
		err := wait(t, runAsync(t, ctx, timeout, make(chan os.Signal), nil, &comp{name: "a", j: j}, slow), 10*time.Second)
		if err == nil || !strings.Contains(err.Error(), "shutdown exceeded") || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("run = %v", err)
		}
		if took := time.Since(t0); took < timeout {
			t.Fatalf("returned after %s, before the %s timeout", took, timeout)
		}
		want := []string{"start a", "start slow", "stop slow", "stop a"}
		if got := j.get(); !slices.Equal(got, want) {
			t.Fatalf("lifecycle %v, want %v", got, want)
		}
	})

	t.Run("stop ignores its context", func(t *testing.T) {
		j := &journal{}
		release := make(chan struct{})
		defer close(release)
		stuck := &comp{name: "stuck", j: j, stop: func(context.Context) error {
			<-release
			return nil
		}}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		t0 := time.Now()
		err := wait(t, runAsync(t, ctx, timeout, make(chan os.Signal), nil, &comp{name: "a", j: j}, stuck), timeout+stopGrace+5*time.Second)
		if err == nil || !strings.Contains(err.Error(), "shutdown exceeded") || !strings.Contains(err.Error(), "stuck") {
			t.Fatalf("run = %v", err)
		}
		if took := time.Since(t0); took > timeout+stopGrace+time.Second {
			t.Fatalf("returned after %s", took)
		}
	})
}

func TestRunSecondSignal(t *testing.T) {
	j := &journal{}
	release := make(chan struct{})
	stopping := make(chan struct{})
	stuck := &comp{name: "stuck", j: j, stop: func(context.Context) error {
		close(stopping)
		<-release
		return nil
	}}
	exited := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	res := runAsync(t, context.Background(), time.Minute, sigs, func() { close(exited) }, stuck)
	waitFor(t, "started", started(j, 1))
	sigs <- syscall.SIGTERM
	<-stopping
	sigs <- syscall.SIGINT
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("second signal did not exit")
	}
	err := wait(t, res, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "second signal") {
		t.Fatalf("run = %v", err)
	}
	close(release)
}

// TestRunFailerNeverFails checks that watching a component that never
// fails, or has no failure channel at all, leaves no goroutine behind.
func TestRunFailerNeverFails(t *testing.T) {
	j := &journal{}
	quiet := &failer{comp: comp{name: "quiet", j: j}, failed: make(chan error)}
	nilChan := &failer{comp: comp{name: "nil", j: j}}
	closed := &failer{comp: comp{name: "closed", j: j}, failed: make(chan error)}
	close(closed.failed)
	ctx, cancel := context.WithCancel(context.Background())
	res := runAsync(t, ctx, 5*time.Second, make(chan os.Signal), nil, quiet, nilChan, closed)
	waitFor(t, "started", started(j, 3))
	cancel()
	if err := wait(t, res, 10*time.Second); err != nil {
		t.Fatalf("run = %v (a closed Failed channel is not a failure)", err)
	}
	goleak.VerifyNone(t)
}

// TestRunSignal drives the exported Run with a real SIGTERM.
func TestRunSignal(t *testing.T) {
	j := &journal{}
	up := make(chan struct{})
	c := Func{N: "c", StartFn: func(context.Context) error { close(up); return nil }, StopFn: func(context.Context) error { j.add("stop c"); return nil }}
	res := make(chan error, 1)
	go func() { res <- Run(context.Background(), zaptest.NewLogger(t), 5*time.Second, c) }()
	<-up // Run listens for signals before it starts anything
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, res, 10*time.Second); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got := j.get(); !slices.Equal(got, []string{"stop c"}) {
		t.Fatalf("lifecycle %v", got)
	}
}

func TestFunc(t *testing.T) {
	var f Func
	f.N = "noop"
	if f.Name() != "noop" || f.Start(context.Background()) != nil || f.Stop(context.Background()) != nil {
		t.Fatal("a Func without functions is not a no-op")
	}
	boom := errors.New("boom")
	f.StartFn = func(context.Context) error { return boom }
	f.StopFn = func(context.Context) error { return boom }
	if f.Start(context.Background()) != boom || f.Stop(context.Background()) != boom {
		t.Fatal("Func does not call its functions")
	}
}

func TestCommonValidate(t *testing.T) {
	if err := CommonDefaults().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	c := Common{}
	c.Log.Level, c.Log.Format = "loud", "xml"
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate succeeded")
	}
	got := strings.Split(err.Error(), "\n")
	want := []string{"log.level:", "log.format:", "admin_addr: required", "shutdown_timeout: must be positive"}
	if len(got) != len(want) {
		t.Fatalf("problems %q, want %d", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
}
