package telemetry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startAdmin starts an admin server on a free loopback port.
func startAdmin(t *testing.T, reg *prometheus.Registry, ready *Readiness) *Admin {
	t.Helper()
	a := NewAdmin("127.0.0.1:0", reg, ready, zaptest.NewLogger(t))
	if err := a.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	if strings.HasSuffix(a.Addr, ":0") {
		t.Fatalf("Addr %s was not updated to the bound port", a.Addr)
	}
	return a
}

func get(t *testing.T, a *Admin, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + a.Addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestHealthz(t *testing.T) {
	a := startAdmin(t, NewRegistry(), &Readiness{})
	code, body := get(t, a, "/healthz")
	if code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
}

func TestReadyz(t *testing.T) {
	failing := func(msg string) func() error { return func() error { return errors.New(msg) } }
	passing := func() error { return nil }
	for _, tc := range []struct {
		name   string
		checks map[string]func() error
		code   int
		body   string
	}{
		{"no checks", nil, http.StatusOK, "ready\n"},
		{"all pass", map[string]func() error{"kafka": passing, "registry": passing}, http.StatusOK, "ready\n"},
		{"failures listed sorted", map[string]func() error{
			"zookeeper": failing("gone"),
			"kafka":     failing("no brokers"),
			"registry":  passing,
			"consumer":  failing("not in group"),
		}, http.StatusServiceUnavailable, "consumer: not in group\nkafka: no brokers\nzookeeper: gone\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ready := &Readiness{}
			for n, c := range tc.checks {
				ready.Add(n, c)
			}
			a := startAdmin(t, NewRegistry(), ready)
			code, body := get(t, a, "/readyz")
			if code != tc.code || body != tc.body {
				t.Fatalf("/readyz = %d %q, want %d %q", code, body, tc.code, tc.body)
			}
		})
	}

	t.Run("a check replaced by name", func(t *testing.T) {
		ready := &Readiness{}
		ready.Add("kafka", failing("down"))
		a := startAdmin(t, NewRegistry(), ready)
		if code, _ := get(t, a, "/readyz"); code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz = %d before the fix", code)
		}
		ready.Add("kafka", passing)
		if code, body := get(t, a, "/readyz"); code != http.StatusOK {
			t.Fatalf("/readyz = %d %q after replacing the check", code, body)
		}
	})
}

func TestReadinessCheck(t *testing.T) {
	var r Readiness // the zero value is usable
	if got := r.Check(); len(got) != 0 {
		t.Fatalf("empty Check = %v", got)
	}
	r.Add("a", func() error { return errors.New("x") })
	r.Add("b", func() error { return nil })
	got := r.Check()
	if len(got) != 1 || got["a"] == nil {
		t.Fatalf("Check = %v", got)
	}
}

func TestMetrics(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_test_things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)
	a := startAdmin(t, reg, &Readiness{})
	code, body := get(t, a, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{"sluice_test_things_total 3", "go_goroutines", "process_"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// Only this registry is served, not the global default one.
	if strings.Contains(body, "promhttp_metric_handler_requests_total") {
		t.Error("/metrics serves the default registry's handler metrics")
	}
}

func TestAdminLifecycle(t *testing.T) {
	t.Run("stop without start", func(t *testing.T) {
		a := NewAdmin("127.0.0.1:0", NewRegistry(), &Readiness{}, zaptest.NewLogger(t))
		if err := a.Stop(context.Background()); err != nil {
			t.Fatalf("Stop without Start: %v", err)
		}
	})
	t.Run("port in use", func(t *testing.T) {
		first := startAdmin(t, NewRegistry(), &Readiness{})
		second := NewAdmin(first.Addr, NewRegistry(), &Readiness{}, zaptest.NewLogger(t))
		if err := second.Start(context.Background()); err == nil {
			_ = second.Stop(context.Background())
			t.Fatal("second admin on a used port started")
		}
	})
	t.Run("stopped server refuses", func(t *testing.T) {
		a := NewAdmin("127.0.0.1:0", NewRegistry(), &Readiness{}, zaptest.NewLogger(t))
		if err := a.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := a.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if resp, err := http.Get("http://" + a.Addr + "/healthz"); err == nil {
			resp.Body.Close()
			t.Fatal("stopped admin still answers")
		}
	})
}

// TestProfileFitsWriteTimeout guards `go tool pprof http://admin/debug/pprof/profile`:
// net/http/pprof refuses a profile (default 30 s) that does not end before
// the server's WriteTimeout.
func TestProfileFitsWriteTimeout(t *testing.T) {
	a := NewAdmin("127.0.0.1:0", NewRegistry(), &Readiness{}, zaptest.NewLogger(t))
	const defaultProfile = 30 * time.Second
	if wt := a.srv.WriteTimeout; wt != 0 && wt <= defaultProfile {
		t.Fatalf("WriteTimeout %s does not leave room for a default %s CPU profile", wt, defaultProfile)
	}
}
