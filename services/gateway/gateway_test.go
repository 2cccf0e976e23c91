package gateway

import (
	"strings"
	"testing"
	"time"
)

func TestValidateBackpressureAndRecordSize(t *testing.T) {
	ok := Defaults()
	ok.DevKey = true
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if n := ok.Backpressure.InflightRequests(); n < 4 {
		t.Fatalf("auto in-flight requests %d", n)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"event too large for a record with keep_raw", func(c *Config) { c.Limits.MaxEventBytes = 400 << 10 }, "limits.max_event_bytes: an event of 409600 bytes can make a record of 1245184 bytes"},
		{"fits without keep_raw", func(c *Config) { c.Limits.MaxEventBytes = 400 << 10; c.KeepRaw = false }, ""},
		{"in-flight bytes below one request", func(c *Config) { c.Backpressure.MaxInflightBytes = 1 << 20 }, "backpressure.max_inflight_bytes"},
		{"negative in-flight requests", func(c *Config) { c.Backpressure.MaxInflightRequests = -1 }, "backpressure.max_inflight_requests"},
		{"queue timeout past produce timeout", func(c *Config) { c.Backpressure.QueueTimeout = time.Minute }, "backpressure.queue_timeout"},
		{"negative saturation latency", func(c *Config) { c.Backpressure.SaturationLatency = -time.Millisecond }, "backpressure.saturation_latency"},
		{"saturation latency past a second", func(c *Config) { c.Backpressure.SaturationLatency = 2 * time.Second }, "backpressure.saturation_latency"},
		{"saturation measure off", func(c *Config) { c.Backpressure.SaturationLatency = 0 }, ""},
		{"backpressure retry-after below a second", func(c *Config) { c.Backpressure.RetryAfter = 500 * time.Millisecond }, "backpressure.retry_after: must be at least 1s"},
		{"compression codec unknown", func(c *Config) { c.Kafka.Compression = "brotli" }, `kafka.compression: "brotli" is not none, snappy, lz4, zstd or gzip`},
		{"compression off", func(c *Config) { c.Kafka.Compression = "none" }, ""},
		{"probe interval", func(c *Config) { c.Backpressure.ProbeInterval = time.Millisecond }, "backpressure.probe_interval"},
		{"circuit failures", func(c *Config) { c.Backpressure.CircuitFailures = 0 }, "backpressure.circuit_failures"},
		{"memory limit below the bounds", func(c *Config) { c.Backpressure.MemoryLimit = 1 << 20 }, "backpressure.memory_limit"},
		{"no memory limit", func(c *Config) { c.Backpressure.MemoryLimit = 0 }, ""},
		{"negative rate", func(c *Config) {
			c.Sources = []Source{{ID: "a", Key: "0123456789abcdef01", RateLimit: RateLimit{EventsPerSecond: -1}}}
		}, "sources[0].rate_limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mutate(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
