// Package telemetry holds a service's Prometheus registry and its admin
// listener (/metrics, /healthz, /readyz), kept off the public port.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// NewRegistry returns a registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Readiness is a set of named checks; the service is ready when all pass.
type Readiness struct {
	mu     sync.RWMutex
	checks map[string]func() error
}

// Add registers a readiness check under name, replacing any with that name.
func (r *Readiness) Add(name string, check func() error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checks == nil {
		r.checks = map[string]func() error{}
	}
	r.checks[name] = check
}

// Check runs every check and returns the failures, by name.
func (r *Readiness) Check() map[string]error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := map[string]error{}
	for n, c := range r.checks {
		if err := c(); err != nil {
			out[n] = err
		}
	}
	return out
}

// Admin serves /metrics, /healthz and /readyz.
type Admin struct {
	Addr  string
	log   *zap.Logger
	srv   *http.Server
	ln    net.Listener
	ready *Readiness
}

// NewAdmin builds the admin server; Start listens.
func NewAdmin(addr string, reg *prometheus.Registry, ready *Readiness, log *zap.Logger) *Admin {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	// Profiling stays on the admin listener, never on the public port.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fails := ready.Check()
		if len(fails) == 0 {
			_, _ = w.Write([]byte("ready\n"))
			return
		}
		names := make([]string, 0, len(fails))
		for n := range fails {
			names = append(names, n)
		}
		sort.Strings(names)
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, n := range names {
			fmt.Fprintf(w, "%s: %v\n", n, fails[n])
		}
	})
	return &Admin{
		Addr:  addr,
		log:   log,
		ready: ready,
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      2 * time.Minute, // above pprof's default 30 s profile, which it refuses otherwise
			IdleTimeout:       60 * time.Second,
		},
	}
}

// Name implements app.Component.
func (a *Admin) Name() string { return "admin" }

// Start listens on Addr and serves in the background.
func (a *Admin) Start(context.Context) error {
	ln, err := net.Listen("tcp", a.Addr)
	if err != nil {
		return fmt.Errorf("admin listening on %s: %w", a.Addr, err)
	}
	a.ln = ln
	a.Addr = ln.Addr().String()
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("admin server stopped", zap.Error(err))
		}
	}()
	a.log.Info("admin listening", zap.String("addr", a.Addr))
	return nil
}

// Stop shuts the server down.
func (a *Admin) Stop(ctx context.Context) error {
	if a.ln == nil {
		return nil
	}
	return a.srv.Shutdown(ctx)
}
