package standalone

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice/pkg/app"
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/telemetry"
	"github.com/sluicehq/sluice/services/gateway"
	"github.com/sluicehq/sluice/services/sink-hec/hectest"
)

// TestHECSinkFromEnvironment turns the HEC sink on with SLUICE_HEC_URL,
// SLUICE_HEC_TOKEN and SLUICE_HEC_ACK, as a newcomer would, posts clicks to
// the gateway and waits for them, acknowledged, at a test HEC.
func TestHECSinkFromEnvironment(t *testing.T) {
	srv := hectest.New(hectest.Config{Ack: true})
	defer srv.Close()
	cfg := Defaults()
	if cfg.HECEnabled() {
		t.Fatal("the HEC sink is on without a URL and a token")
	}
	t.Setenv("SLUICE_HEC_URL", srv.URL)
	t.Setenv("SLUICE_HEC_TOKEN", hectest.DefaultToken)
	t.Setenv("SLUICE_HEC_ACK", "true")
	t.Setenv("SLUICE_HEC_ACK_POLL_INTERVAL", "100ms")
	t.Setenv("SLUICE_HEC_BATCH_TIMEOUT", "50ms")
	if err := config.Load("", &cfg); err != nil {
		t.Fatal(err)
	}
	if !cfg.HECEnabled() || !cfg.SinkHEC.Ack {
		t.Fatalf("HEC sink on %v, ack %v", cfg.HECEnabled(), cfg.SinkHEC.Ack)
	}
	cfg.DataDir = t.TempDir()
	cfg.KafkaAddr, cfg.RegistryAddr, cfg.Gateway.Listen, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.RunSinkFile = false
	for _, k := range []*time.Duration{&cfg.Enricher.Kafka.HeartbeatInterval, &cfg.SinkHEC.Kafka.HeartbeatInterval} {
		*k = 300 * time.Millisecond
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
		if g, ok := c.(*gateway.Service); ok {
			gw = g
		}
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx, log, 30*time.Second, comps...) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("pipeline stopped with error: %v", err)
		}
	}()
	waitUntil(ctx, t, "the gateway to listen", func() bool { return gw.Addr() != cfg.Gateway.Listen })

	var body strings.Builder
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&body, `{"type":"click","info":{"x":%d,"y":2,"button":1},"session":"s-1"}`+"\n", i)
	}
	code, r := post(t, "http://"+gw.Addr()+"/v1/events/clicks", []byte(body.String()), map[string]string{"Content-Type": "application/x-ndjson"})
	if code != http.StatusOK || r.Accepted != 20 {
		t.Fatalf("gateway answered %d: %+v", code, r)
	}
	waitUntil(ctx, t, "20 acknowledged clicks at HEC", func() bool {
		n := 0
		for _, e := range srv.Events() {
			if e.Sourcetype == "sluice:clicks" && e.Confirmed {
				n++
			}
		}
		return n >= 20
	})
}

func waitUntil(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tk := time.NewTicker(50 * time.Millisecond)
	defer tk.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tk.C:
		}
	}
}
