package sinkhec

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/app"
	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/services/sink-hec/hectest"
)

// Crash points of the HEC sink.
const (
	pointAfterSend    = "after-send"    // a batch has its ackId, unacknowledged, uncommitted
	pointAfterDeliver = "after-deliver" // a batch is acknowledged, its offsets not yet committed
)

// buildChild builds the HEC sink of a conformance-suite process.
func buildChild(ctx context.Context, c pipelinetest.ChildConfig, log *zap.Logger) (app.Component, error) {
	serde, err := avro.Connect(ctx, avro.RegistryConfig{URLs: []string{c.Registry}, AutoRegister: true})
	if err != nil {
		return nil, err
	}
	cfg := Defaults()
	cfg.Kafka = c.Kafka
	cfg.Group = c.Group
	cfg.URLs = []string{c.Getenv("SINKTEST_HEC_URL")}
	cfg.Token = config.Secret(hectest.DefaultToken)
	if c.Getenv("SINKTEST_BENCH") == "1" {
		// Production settings; acks are polled often, as the test server
		// acknowledges at once.
		cfg.Ack = c.Getenv("SINKTEST_ACK") == "1"
		cfg.AckPollInterval = 200 * time.Millisecond
		if v, err := strconv.Atoi(c.Getenv("SINKTEST_CHANNELS")); err == nil {
			cfg.ChannelsPerURL = v
		}
		return New(cfg, Deps{Log: log, Serde: serde})
	}
	cfg.Ack = true
	cfg.BatchEvents = 100
	cfg.BatchTimeout = 20 * time.Millisecond
	cfg.MaxPollRecords = 250
	cfg.AckPollInterval = 50 * time.Millisecond
	cfg.AckTimeout = time.Second
	cfg.RetryInitial = 5 * time.Millisecond
	cfg.RetryMax = 50 * time.Millisecond
	cfg.CommitInterval = 50 * time.Millisecond
	hk := hooks{
		afterSend:    func() { c.Point(pointAfterSend) },
		afterDeliver: func() { c.Point(pointAfterDeliver) },
	}
	return newService(cfg, Deps{Log: log, Serde: serde}, hk)
}

// TestConformance runs the sink conformance suite against a HEC that
// answers 503 to half the requests, loses 10% of the acknowledgements and
// acknowledges out of order: every event must arrive, committed offsets
// must never pass an unacknowledged event, and duplicates must come only
// from resends and crashes before the commit.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sink processes")
	}
	pipelinetest.RunSinkSuite(t, pipelinetest.Harness{
		Guarantee: pipelinetest.AtLeastOnce,
		NewDestination: func(t *testing.T, scenario string) pipelinetest.Destination {
			srv := hectest.New(hectest.Config{Ack: true, BusyRate: 0.5, LostAckRate: 0.1, AckJitter: 100 * time.Millisecond,
				Seed: uint64(time.Now().UnixNano())})
			t.Cleanup(srv.Close)
			t.Cleanup(func() { t.Logf("HEC server: %+v", srv.Stats()) })
			return pipelinetest.Destination{
				Env: []string{"SINKTEST_HEC_URL=" + srv.URL},
				Copies: func() ([]pipelinetest.Copy, error) {
					evs := srv.Events()
					out := make([]pipelinetest.Copy, len(evs))
					for i, ev := range evs {
						out[i] = pipelinetest.Copy{ID: idOf(ev.Event), Confirmed: ev.Confirmed}
					}
					return out, nil
				},
			}
		},
		CrashPoints: []pipelinetest.CrashPoint{
			{Scenario: "before-commit", Point: pointAfterSend, At: 5},
			{Scenario: "after-write-before-commit", Point: pointAfterDeliver, At: 3},
		},
	})
}

// idOf finds the envelope's event_id in an event without decoding it all.
func idOf(raw []byte) string {
	key := []byte(`"event_id":"`)
	i := bytes.Index(raw, key)
	if i < 0 {
		return ""
	}
	rest := raw[i+len(key):]
	if j := bytes.IndexByte(rest, '"'); j >= 0 {
		return string(rest[:j])
	}
	return ""
}
