// Package gateway is Sluice's stateless ingest gateway as a library: it
// validates each event against its family's Avro schema and produces it to
// Kafka, replying only after the broker's ack. cmd/sluice-gateway runs it
// alone; the standalone binary runs it beside the other services.
package gateway

import (
	"context"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/telemetry"
	"github.com/sluicehq/sluice/services/gateway/internal/ingest"
	"github.com/sluicehq/sluice/services/gateway/internal/native"
	"github.com/sluicehq/sluice/services/gateway/internal/web"
)

// Version is the gateway version stamped on every event; set at build time
// with -ldflags "-X github.com/sluicehq/sluice/services/gateway.Version=…".
var Version = "dev"

// Source is a configured client and its key.
type Source = ingest.Source

// RateLimit is a source key's rate limit (sources[].rate_limit).
type RateLimit = ingest.RateLimit

// DevKey is the development key the standalone mode enables on loopback.
const DevKey = "dev"

// The native endpoints' configuration sections (see package native).
type (
	EdXConfig           = native.EdXConfig
	CrowdFrameConfig    = native.CrowdFrameConfig
	WeaklayerConfig     = native.WeaklayerConfig
	WeaklayerInstallKey = native.WeaklayerInstallKey
	WorkstationConfig   = native.WorkstationConfig
	ClicksConfig        = native.ClicksConfig
	HECConfig           = native.HECConfig
	HECToken            = native.HECToken
)

// Config is the gateway's configuration.
type Config struct {
	Listen string       `yaml:"listen" env:"LISTEN"`
	Kafka  kafka.Config `yaml:"kafka" envPrefix:"KAFKA_"`
	Limits Limits       `yaml:"limits" envPrefix:"LIMITS_"`
	// Backpressure bounds what the gateway holds at once, and watches Kafka.
	Backpressure Backpressure `yaml:"backpressure" envPrefix:"BACKPRESSURE_"`
	Sources      []Source     `yaml:"sources"`
	// DevKey accepts the key "dev" for every family from loopback clients.
	DevKey bool `yaml:"dev_key" env:"DEV_KEY"`
	// TrustedProxies are the CIDRs whose X-Forwarded-For is believed.
	TrustedProxies []string `yaml:"trusted_proxies" env:"TRUSTED_PROXIES" envSeparator:","`
	// KeepRaw stores each event's original bytes in its envelope.
	KeepRaw bool `yaml:"keep_raw" env:"KEEP_RAW"`
	// FastPath lets adapters that have one (edX) write common events'
	// records straight from their bytes; off, every event is decoded,
	// adapted and encoded the general way. The records are the same.
	FastPath bool `yaml:"fast_path" env:"FAST_PATH"`
	// ProduceTimeout bounds the wait for the broker's ack before a reply.
	ProduceTimeout time.Duration `yaml:"produce_timeout" env:"PRODUCE_TIMEOUT"`
	// RetryAfter is sent with 503 replies, except those of
	// backpressure bounds (Backpressure.RetryAfter).
	RetryAfter time.Duration `yaml:"retry_after" env:"RETRY_AFTER"`
	// BenchPassthrough mounts the benchmark baseline route
	// (POST /bench/passthrough). For `make bench` only.
	BenchPassthrough bool `yaml:"bench_passthrough" env:"BENCH_PASSTHROUGH"`
	// Demo serves the demo page at /demo/ and its feed of recently accepted
	// events at /demo/recent (loopback clients only); /sdk/sluice.js is
	// always served (package web).
	Demo bool `yaml:"demo" env:"DEMO"`

	// Native endpoints, one section per source system (SPEC section 2).
	EdX         EdXConfig         `yaml:"edx" envPrefix:"EDX_"`
	CrowdFrame  CrowdFrameConfig  `yaml:"crowdframe" envPrefix:"CROWDFRAME_"`
	Weaklayer   WeaklayerConfig   `yaml:"weaklayer" envPrefix:"WEAKLAYER_"`
	Workstation WorkstationConfig `yaml:"workstation" envPrefix:"WORKSTATION_"`
	Clicks      ClicksConfig      `yaml:"clicks" envPrefix:"CLICKS_"`
	HEC         HECConfig         `yaml:"hec" envPrefix:"HEC_"`
}

func (c Config) native() native.Config {
	return native.Config{EdX: c.EdX, CrowdFrame: c.CrowdFrame, Weaklayer: c.Weaklayer,
		Workstation: c.Workstation, Clicks: c.Clicks, HEC: c.HEC}
}

// EnableDevWeaklayerKey gives a development gateway a working Weaklayer
// group: the install key at path (the JSON object a sensor sends as "key")
// is read, or generated and written there, and its verifier added to
// c.Weaklayer, with a signing secret derived from it when none is set.
func EnableDevWeaklayerKey(c *Config, path string) error {
	return native.EnableDevInstallKey(&c.Weaklayer, path)
}

// Limits bound what one request may cost.
type Limits struct {
	MaxBodyBytes         int64         `yaml:"max_body_bytes" env:"MAX_BODY_BYTES"`
	MaxDecompressedBytes int64         `yaml:"max_decompressed_bytes" env:"MAX_DECOMPRESSED_BYTES"`
	MaxRatio             int64         `yaml:"max_ratio" env:"MAX_RATIO"`
	MaxEvents            int           `yaml:"max_events" env:"MAX_EVENTS"`
	MaxEventBytes        int           `yaml:"max_event_bytes" env:"MAX_EVENT_BYTES"`
	MaxDepth             int           `yaml:"max_depth" env:"MAX_DEPTH"`
	MaxHeaderBytes       int           `yaml:"max_header_bytes" env:"MAX_HEADER_BYTES"`
	ReadHeaderTimeout    time.Duration `yaml:"read_header_timeout" env:"READ_HEADER_TIMEOUT"`
	ReadTimeout          time.Duration `yaml:"read_timeout" env:"READ_TIMEOUT"`
	WriteTimeout         time.Duration `yaml:"write_timeout" env:"WRITE_TIMEOUT"`
	IdleTimeout          time.Duration `yaml:"idle_timeout" env:"IDLE_TIMEOUT"`
	// MaxConnections bounds the open client connections (0: unbounded);
	// past it, a new connection's request gets 503 overloaded with
	// Retry-After and the connection is closed; past a quarter more (at
	// least 16) such connections, a new one waits for a free place.
	MaxConnections int `yaml:"max_connections" env:"MAX_CONNECTIONS"`
}

// Backpressure bounds what the gateway holds at once and how it reacts to
// Kafka being unreachable: past a bound, or while Kafka is unreachable, a
// request is refused with 503 and Retry-After, before its body is read
// when possible.
type Backpressure struct {
	// MaxInflightRequests bounds the requests being processed (decoded,
	// adapted, validated, encoded) at once; 0 means 4 x GOMAXPROCS
	// (InflightRequests). A request gives its slot back while it waits for
	// the brokers' acks.
	MaxInflightRequests int `yaml:"max_inflight_requests" env:"MAX_INFLIGHT_REQUESTS"`
	// MaxAwaitingAcks bounds the requests whose records are handed to the
	// producer and that wait for the brokers' acks; 0 means
	// 16 x GOMAXPROCS (AwaitingAcks), three quarters of them unused while
	// the overload cut holds (SaturationLatency). A request that finds them all taken
	// waits, holding its processing slot, so that slow acks push back on
	// new requests.
	MaxAwaitingAcks int `yaml:"max_awaiting_acks" env:"MAX_AWAITING_ACKS"`
	// QueueTimeout is how long a request whose body is in may wait for a
	// processing slot (behind a queue whose length SaturationLatency sets)
	// before it is refused; 0: refused at once.
	QueueTimeout time.Duration `yaml:"queue_timeout" env:"QUEUE_TIMEOUT"`
	// SaturationLatency is the 99th percentile of the goroutines'
	// scheduling latency (runtime/metrics /sched/latencies:seconds, over a
	// quarter second) from which the CPU counts as saturated. The queue for
	// processing slots holds three times as many requests as there are
	// slots, and every ack slot serves, except under the overload cut:
	// while the CPU is saturated and the processing bound turned a request
	// away in the last two seconds, a quarter as many, and a quarter of
	// the ack slots. 0: the measure is off, the CPU always counts as
	// keeping up, and the cut never holds.
	SaturationLatency time.Duration `yaml:"saturation_latency" env:"SATURATION_LATENCY"`
	// RetryAfter is the Retry-After sent with a 503 overloaded: a request
	// refused at one of these bounds. It is shorter than the gateway's
	// retry_after (Kafka unreachable, shutting down) because what it waits
	// out is short: a queue that drains in milliseconds, or a saturated CPU
	// that counts as calm again after two seconds. A client told to wait
	// longer leaves capacity idle.
	RetryAfter time.Duration `yaml:"retry_after" env:"RETRY_AFTER"`
	// MaxInflightBytes bounds the request body bytes held, as sent and as
	// inflated.
	MaxInflightBytes int64 `yaml:"max_inflight_bytes" env:"MAX_INFLIGHT_BYTES"`
	// ProbeInterval is how often the brokers are pinged; ProbeTimeout
	// bounds one ping.
	ProbeInterval time.Duration `yaml:"probe_interval" env:"PROBE_INTERVAL"`
	ProbeTimeout  time.Duration `yaml:"probe_timeout" env:"PROBE_TIMEOUT"`
	// CircuitFailures consecutive failures (failed pings, or requests none
	// of whose records Kafka took) mark Kafka unreachable: /readyz turns
	// unready and requests get 503 until a ping or a produce succeeds.
	CircuitFailures int `yaml:"circuit_failures" env:"CIRCUIT_FAILURES"`
	// MemoryLimit is the Go runtime's soft memory limit for the
	// sluice-gateway process (runtime/debug.SetMemoryLimit; GOMEMLIMIT, when
	// set, wins; 0: none). The bounds above keep live memory well under it;
	// it makes the collector reclaim garbage before the process grows past
	// it (app.Main sets GOGC to 300 for throughput).
	MemoryLimit int64 `yaml:"memory_limit" env:"MEMORY_LIMIT"`
}

// ApplyMemoryLimit sets the process's soft memory limit from
// cfg.Backpressure.MemoryLimit unless GOMEMLIMIT is set. sluice-gateway
// calls it; sluice-standalone, one process for every service, does not.
func ApplyMemoryLimit(cfg Config, log *zap.Logger) {
	if cfg.Backpressure.MemoryLimit <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(cfg.Backpressure.MemoryLimit)
	log.Info("soft memory limit set", zap.Int64("bytes", cfg.Backpressure.MemoryLimit))
}

// InflightRequests is the bound on requests being processed that b sets:
// MaxInflightRequests, or 4 per core when it is 0. By Little's law a
// request's latency under overload is about this many requests' CPU time
// divided by the cores, plus the broker's ack latency: a few per core keep
// accepted requests fast while the CPU stays busy. Requests waiting for
// acks hold no slot, so slow acks do not idle the CPU.
func (b Backpressure) InflightRequests() int {
	if b.MaxInflightRequests > 0 {
		return b.MaxInflightRequests
	}
	return 4 * runtime.GOMAXPROCS(0)
}

// AwaitingAcks is the bound on requests waiting for acks that b sets:
// MaxAwaitingAcks, or 16 per core when it is 0. More slots let more
// requests' records wait for acks at once, which raises throughput, but
// under overload each one is a request's worth of latency: three quarters
// of them stand unused while the overload cut holds (SaturationLatency),
// so an overloaded gateway uses 4 per core (docs/benchmarks.md has the
// measurements).
func (b Backpressure) AwaitingAcks() int {
	if b.MaxAwaitingAcks > 0 {
		return b.MaxAwaitingAcks
	}
	return 16 * runtime.GOMAXPROCS(0)
}

// recordOverhead is room for a record's envelope, key and headers next to
// the event's own bytes.
const recordOverhead = 16 << 10

// recordFactor is how many times an event's bytes a raw record holds at
// most: the edX adapter keeps the event's "event" member both as received
// and as JSON text, and keep_raw adds the whole event once more.
func recordFactor(keepRaw bool) int64 {
	if keepRaw {
		return 3
	}
	return 2
}

// Defaults returns the production defaults.
func Defaults() Config {
	k := kafka.Defaults()
	k.ClientID = "sluice-gateway"
	nd := native.Defaults()
	return Config{
		Listen: ":8080",
		Kafka:  k,
		Limits: Limits{
			MaxBodyBytes:         4 << 20,
			MaxDecompressedBytes: 16 << 20,
			MaxRatio:             100,
			MaxEvents:            10_000,
			MaxEventBytes:        256 << 10,
			MaxDepth:             64,
			MaxHeaderBytes:       64 << 10,
			ReadHeaderTimeout:    5 * time.Second,
			ReadTimeout:          30 * time.Second,
			WriteTimeout:         30 * time.Second,
			IdleTimeout:          120 * time.Second,
			MaxConnections:       1024,
		},
		Backpressure: Backpressure{
			MaxInflightRequests: 0,
			QueueTimeout:        20 * time.Millisecond,
			SaturationLatency:   8 * time.Millisecond,
			RetryAfter:          time.Second,
			MaxInflightBytes:    32 << 20,
			ProbeInterval:       time.Second,
			ProbeTimeout:        2 * time.Second,
			CircuitFailures:     2,
			MemoryLimit:         192 << 20,
		},
		KeepRaw:        true,
		FastPath:       true,
		ProduceTimeout: 10 * time.Second,
		RetryAfter:     5 * time.Second,
		EdX:            nd.EdX,
		CrowdFrame:     nd.CrowdFrame,
		Weaklayer:      nd.Weaklayer,
		Workstation:    nd.Workstation,
		Clicks:         nd.Clicks,
		HEC:            nd.HEC,
	}
}

// Validate reports every problem.
func (c Config) Validate() error {
	var p config.Problems
	if c.Listen == "" {
		p.Addf("listen: required")
	}
	p.Add("kafka", c.Kafka.Validate())
	l := c.Limits
	if l.MaxBodyBytes < 1024 {
		p.Addf("limits.max_body_bytes: %d is below 1024", l.MaxBodyBytes)
	}
	if l.MaxDecompressedBytes < l.MaxBodyBytes {
		p.Addf("limits.max_decompressed_bytes: must be at least max_body_bytes")
	}
	if l.MaxRatio < 1 {
		p.Addf("limits.max_ratio: must be at least 1")
	}
	if l.MaxEvents < 1 {
		p.Addf("limits.max_events: must be at least 1")
	}
	if l.MaxEventBytes < 256 || int64(l.MaxEventBytes) > l.MaxDecompressedBytes {
		p.Addf("limits.max_event_bytes: must be between 256 and max_decompressed_bytes")
	}
	if need := int64(l.MaxEventBytes)*recordFactor(c.KeepRaw) + recordOverhead; need > int64(c.Kafka.MaxMessageBytes) {
		p.Addf("limits.max_event_bytes: an event of %d bytes can make a record of %d bytes (%dx%s, plus %d), over kafka.max_message_bytes %d; lower it to %d or raise kafka.max_message_bytes (and the brokers' message.max.bytes)",
			l.MaxEventBytes, need, recordFactor(c.KeepRaw), map[bool]string{true: " with keep_raw", false: ""}[c.KeepRaw], recordOverhead,
			c.Kafka.MaxMessageBytes, (int64(c.Kafka.MaxMessageBytes)-recordOverhead)/recordFactor(c.KeepRaw))
	}
	if l.MaxDepth < 2 {
		p.Addf("limits.max_depth: must be at least 2")
	}
	if l.MaxHeaderBytes < 4096 {
		p.Addf("limits.max_header_bytes: must be at least 4096")
	}
	for name, d := range map[string]time.Duration{"read_header_timeout": l.ReadHeaderTimeout, "read_timeout": l.ReadTimeout, "write_timeout": l.WriteTimeout, "idle_timeout": l.IdleTimeout} {
		if d <= 0 {
			p.Addf("limits.%s: must be positive", name)
		}
	}
	if l.MaxConnections < 0 {
		p.Addf("limits.max_connections: must be 0 (unbounded) or positive")
	}
	b := c.Backpressure
	if b.MaxAwaitingAcks < 0 {
		p.Addf("backpressure.max_awaiting_acks: must be 0 (4 per core) or positive")
	}
	if b.MaxInflightRequests < 0 {
		p.Addf("backpressure.max_inflight_requests: must be 0 (4 per core) or positive")
	}
	if b.MaxInflightBytes < l.MaxBodyBytes+l.MaxDecompressedBytes {
		p.Addf("backpressure.max_inflight_bytes: %d is below limits.max_body_bytes + limits.max_decompressed_bytes (%d), so the largest request allowed could never be taken",
			b.MaxInflightBytes, l.MaxBodyBytes+l.MaxDecompressedBytes)
	}
	if b.QueueTimeout < 0 || b.QueueTimeout >= c.ProduceTimeout {
		p.Addf("backpressure.queue_timeout: must be between 0 and produce_timeout")
	}
	if b.SaturationLatency < 0 || b.SaturationLatency > time.Second {
		p.Addf("backpressure.saturation_latency: %s is outside 0..1s", b.SaturationLatency)
	}
	if b.RetryAfter < time.Second {
		p.Addf("backpressure.retry_after: must be at least 1s")
	}
	if b.ProbeInterval < 100*time.Millisecond {
		p.Addf("backpressure.probe_interval: %s is below 100ms", b.ProbeInterval)
	}
	if b.ProbeTimeout <= 0 {
		p.Addf("backpressure.probe_timeout: must be positive")
	}
	if b.CircuitFailures < 1 {
		p.Addf("backpressure.circuit_failures: must be at least 1")
	}
	if b.MemoryLimit != 0 && b.MemoryLimit < 2*b.MaxInflightBytes {
		p.Addf("backpressure.memory_limit: %d is below twice max_inflight_bytes (%d); set 0 for none", b.MemoryLimit, 2*b.MaxInflightBytes)
	}
	if c.ProduceTimeout <= 0 || (l.WriteTimeout > 0 && c.ProduceTimeout >= l.WriteTimeout) {
		p.Addf("produce_timeout: must be positive and below limits.write_timeout, so every request gets its answer")
	}
	if c.RetryAfter < time.Second {
		p.Addf("retry_after: must be at least 1s")
	}
	for _, cidr := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			p.Addf("trusted_proxies: %q is not a CIDR", cidr)
		}
	}
	ids := map[string]bool{}
	for i, s := range c.Sources {
		if s.ID == "" {
			p.Addf("sources[%d].id: required", i)
		}
		if ids[s.ID] {
			p.Addf("sources[%d].id: %q is used twice", i, s.ID)
		}
		ids[s.ID] = true
		if len(s.Key.Value()) < 16 && !s.LoopbackOnly {
			p.Addf("sources[%d].key: keys must be at least 16 characters", i)
		}
		for _, f := range s.Families {
			if _, ok := event.ParseFamily(f); !ok && f != "*" {
				p.Addf("sources[%d].families: unknown family %q", i, f)
			}
		}
		if s.Browser && s.Trusted {
			p.Addf("sources[%d]: a browser key is public and cannot be trusted", i)
		}
		if len(s.Origins) > 0 && !s.Browser {
			p.Addf("sources[%d].origins: only browser keys have origins (set browser: true)", i)
		}
		for _, o := range s.Origins {
			if !ingest.ValidOrigin(o) {
				p.Addf("sources[%d].origins: %q is not an origin (http(s)://host[:port], or *)", i, o)
			}
		}
		rl := s.RateLimit
		if rl.EventsPerSecond < 0 || rl.BytesPerSecond < 0 || rl.BurstEvents < 0 || rl.BurstBytes < 0 {
			p.Addf("sources[%d].rate_limit: rates and bursts cannot be negative", i)
		}
	}
	p.Add("edx", c.EdX.Validate())
	p.Add("weaklayer", c.Weaklayer.Validate())
	p.Add("workstation", c.Workstation.Validate())
	p.Add("hec", c.HEC.Validate())
	if len(c.Sources) == 0 && !c.DevKey {
		p.Addf("sources: no source keys configured, nothing could send events")
	}
	return p.Err()
}

// Deps are the gateway's collaborators.
type Deps struct {
	Log     *zap.Logger
	Metrics prometheus.Registerer
	Ready   *telemetry.Readiness
	Serde   *avro.Serde
}

// Service is the running gateway: its producer and HTTP server.
type Service struct {
	cfg      Config
	log      *zap.Logger
	producer *kafka.Producer
	server   *ingest.Server
}

// New builds the gateway.
func New(cfg Config, deps Deps) (*Service, error) {
	producer, err := kafka.NewProducer(cfg.Kafka, deps.Log)
	if err != nil {
		return nil, err
	}
	dlq, err := pipeline.NewDLQ(deps.Serde, producer, Version, deps.Metrics)
	if err != nil {
		producer.Client().Close()
		return nil, err
	}
	sources := append([]Source(nil), cfg.Sources...)
	if cfg.DevKey {
		sources = append(sources, Source{ID: "dev", Key: DevKey, LoopbackOnly: true, Trusted: true})
		deps.Log.Warn("development key enabled: key \"dev\" is accepted for every family from loopback clients")
	}
	var proxies []*net.IPNet
	for _, c := range cfg.TrustedProxies {
		_, n, _ := net.ParseCIDR(c)
		proxies = append(proxies, n)
	}
	l := cfg.Limits
	server, err := ingest.NewServer(ingest.Options{
		Listen:  cfg.Listen,
		Version: Version,
		Limits: ingest.Limits{
			MaxBodyBytes: l.MaxBodyBytes, MaxDecompressedBytes: l.MaxDecompressedBytes, MaxRatio: l.MaxRatio,
			MaxEvents: l.MaxEvents, MaxEventBytes: l.MaxEventBytes, MaxDepth: l.MaxDepth,
		},
		Sources: sources, TrustedProxies: proxies, KeepRaw: cfg.KeepRaw, NoFastPath: !cfg.FastPath,
		ProduceTimeout: cfg.ProduceTimeout, RetryAfter: cfg.RetryAfter, OverloadRetryAfter: cfg.Backpressure.RetryAfter,
		ReadHeaderTimeout: l.ReadHeaderTimeout, ReadTimeout: l.ReadTimeout, WriteTimeout: l.WriteTimeout,
		IdleTimeout: l.IdleTimeout, MaxHeaderBytes: l.MaxHeaderBytes, MaxConnections: l.MaxConnections,
		MaxInflightRequests: cfg.Backpressure.InflightRequests(), MaxAwaitingAcks: cfg.Backpressure.AwaitingAcks(), QueueTimeout: cfg.Backpressure.QueueTimeout, SaturationLatency: cfg.Backpressure.SaturationLatency, MaxInflightBytes: cfg.Backpressure.MaxInflightBytes,
		MaxRecordBytes: int(cfg.Kafka.MaxMessageBytes), ProbeInterval: cfg.Backpressure.ProbeInterval,
		ProbeTimeout: cfg.Backpressure.ProbeTimeout, CircuitFailures: cfg.Backpressure.CircuitFailures,
	}, ingest.Deps{Log: deps.Log, Metrics: deps.Metrics, Serde: deps.Serde, Producer: producer, DLQ: dlq})
	if err != nil {
		producer.Client().Close()
		return nil, err
	}
	if _, err := native.Mount(cfg.native(), native.Deps{Log: deps.Log.Named("native"), Server: server, DevKey: cfg.DevKey}); err != nil {
		producer.Client().Close()
		return nil, err
	}
	if _, err := web.Mount(server, web.Options{Demo: cfg.Demo}); err != nil {
		producer.Client().Close()
		return nil, err
	}
	if cfg.DevKey {
		deps.Log.Warn("development key enabled: \"dev\" is also the segment.io webhook secret and a HEC token, from loopback clients only")
	}
	if cfg.BenchPassthrough {
		server.EnablePassthrough()
		deps.Log.Warn("benchmark passthrough route enabled: POST /bench/passthrough produces unvalidated bytes")
	}
	if deps.Ready != nil {
		// Cached state, kept by the prober and by produce outcomes: /readyz
		// pings nothing (ingest/health.go).
		deps.Ready.Add("kafka", server.KafkaReady)
		deps.Ready.Add("gateway", server.Draining)
	}
	return &Service{cfg: cfg, log: deps.Log, producer: producer, server: server}, nil
}

// Addr is the public listener's address once started.
func (s *Service) Addr() string { return s.server.Addr() }

// Name implements app.Component.
func (s *Service) Name() string { return "gateway" }

// Start creates missing topics and starts serving.
func (s *Service) Start(ctx context.Context) error {
	if s.cfg.Kafka.CreateTopics {
		topics := []string{event.DLQTopic}
		for _, f := range event.Families {
			topics = append(topics, event.RawTopic(f))
		}
		if s.cfg.BenchPassthrough {
			topics = append(topics, ingest.PassthroughTopic)
		}
		if err := kafka.EnsureTopics(ctx, s.cfg.Kafka, nil, topics...); err != nil {
			return err
		}
	}
	return s.server.Start(ctx)
}

// Stop drains in-flight requests, then flushes and closes the producer.
func (s *Service) Stop(ctx context.Context) error {
	err := s.server.Stop(ctx)
	if perr := s.producer.Close(ctx); perr != nil && err == nil {
		err = perr
	}
	return err
}
