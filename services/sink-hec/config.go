package sinkhec

import (
	"net/url"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
)

// Config is the HEC sink's configuration. Environment names are relative
// to the binary's prefix (SLUICE_ for the sink-hec binary, SLUICE_HEC_ in
// the standalone binary's sink_hec section).
type Config struct {
	Kafka kafka.Config `yaml:"kafka" envPrefix:"KAFKA_"`
	// Group is the consumer group of every HEC sink instance.
	Group string `yaml:"group" env:"GROUP"`
	// MaxPollRecords bounds the records handled together.
	MaxPollRecords int `yaml:"max_poll_records" env:"MAX_POLL_RECORDS"`

	// URLs are the HEC base URLs (scheme, host, port), e.g.
	// https://idx1.example.com:8088; batches are balanced over them.
	URLs []string `yaml:"urls" env:"URL" envSeparator:","`
	// Token is the HEC token, sent as "Authorization: Splunk <token>".
	Token config.Secret `yaml:"token" env:"TOKEN"`
	// Ack turns on indexer acknowledgement (the token must have it):
	// offsets are committed only once the indexers acknowledge.
	Ack bool `yaml:"ack" env:"ACK"`
	// Gzip compresses request bodies.
	Gzip bool `yaml:"gzip" env:"GZIP"`
	// ChannelsPerURL is how many channels (each a GUID with its own
	// connection and at most one request in flight) each URL gets.
	ChannelsPerURL int `yaml:"channels_per_url" env:"CHANNELS_PER_URL"`
	// A batch is sent once it holds BatchEvents events or would pass
	// BatchBytes (uncompressed), or BatchTimeout after its first event.
	BatchEvents  int           `yaml:"batch_events" env:"BATCH_EVENTS"`
	BatchBytes   int           `yaml:"batch_bytes" env:"BATCH_BYTES"`
	BatchTimeout time.Duration `yaml:"batch_timeout" env:"BATCH_TIMEOUT"`
	// MaxEventBytes is the largest rendered event sent; a larger one goes to
	// the dead-letter topic with reason event_too_large.
	MaxEventBytes int `yaml:"max_event_bytes" env:"MAX_EVENT_BYTES"`
	// MaxPendingEvents and MaxPendingBytes bound what is consumed but not
	// yet delivered (acknowledged); past either, fetching pauses.
	MaxPendingEvents int `yaml:"max_pending_events" env:"MAX_PENDING_EVENTS"`
	MaxPendingBytes  int `yaml:"max_pending_bytes" env:"MAX_PENDING_BYTES"`
	// RequestTimeout bounds one HEC request.
	RequestTimeout time.Duration `yaml:"request_timeout" env:"REQUEST_TIMEOUT"`
	// AckPollInterval is how often each channel asks for its pending
	// ackIds; a batch whose ackId is not true after AckTimeout is sent
	// again.
	AckPollInterval time.Duration `yaml:"ack_poll_interval" env:"ACK_POLL_INTERVAL"`
	AckTimeout      time.Duration `yaml:"ack_timeout" env:"ACK_TIMEOUT"`
	// RetryInitial and RetryMax bound the per-URL exponential backoff (with
	// jitter) after 429, 5xx and network errors; a longer Retry-After wins.
	RetryInitial time.Duration `yaml:"retry_initial" env:"RETRY_INITIAL"`
	RetryMax     time.Duration `yaml:"retry_max" env:"RETRY_MAX"`
	// HaltRetry is how often a sink halted by a configuration error (bad
	// token, index not allowed) tries its batch again.
	HaltRetry time.Duration `yaml:"halt_retry" env:"HALT_RETRY"`
	// DrainTimeout bounds how long a revoked partition waits for its
	// events' acknowledgements before it is handed over.
	DrainTimeout time.Duration `yaml:"drain_timeout" env:"DRAIN_TIMEOUT"`
	// CommitInterval is how often acknowledged offsets are committed.
	CommitInterval time.Duration `yaml:"commit_interval" env:"COMMIT_INTERVAL"`
	// TLSCAFile adds a CA to verify the HEC URLs with;
	// TLSInsecureSkipVerify turns verification off (test setups only).
	TLSCAFile             string `yaml:"tls_ca_file" env:"TLS_CA_FILE"`
	TLSInsecureSkipVerify bool   `yaml:"tls_insecure_skip_verify" env:"TLS_INSECURE_SKIP_VERIFY"`
	// Index is the index of families whose mapping names none; "" leaves
	// the token's default index.
	Index string `yaml:"index" env:"INDEX"`
	// Families maps events of a family to HEC metadata (YAML only).
	Families []Mapping `yaml:"families"`
}

// Mapping sets the HEC metadata of one family's events. An empty Index
// takes Config.Index, an empty Source the topic, an empty Sourcetype
// sluice:<family>, an empty Host the token's default. Events of the hec
// family (received by the gateway's HEC endpoint) keep their own event,
// time, metadata and indexed fields where the mapping sets none.
type Mapping struct {
	Family     string `yaml:"family"`
	Index      string `yaml:"index"`
	Source     string `yaml:"source"`
	Sourcetype string `yaml:"sourcetype"`
	// Host is a constant host; HostField, a dotted path into the enriched
	// event (e.g. envelope.ip or host), wins when the event has it.
	Host      string `yaml:"host"`
	HostField string `yaml:"host_field"`
	// Fields are dotted paths copied into indexed fields under their path,
	// e.g. envelope.event_type. kafka.topic, kafka.partition and
	// kafka.offset are always added, so duplicates can be removed at search
	// time.
	Fields []string `yaml:"fields"`
}

// Defaults returns a configuration with no HEC URL or token: those are
// required.
func Defaults() Config {
	return Config{
		Kafka:            kafka.Defaults(),
		Group:            "sluice-sink-hec",
		MaxPollRecords:   1000,
		Gzip:             true,
		ChannelsPerURL:   2,
		BatchEvents:      1000,
		BatchBytes:       1_000_000,
		BatchTimeout:     500 * time.Millisecond,
		MaxEventBytes:    1_000_000,
		MaxPendingEvents: 100_000,
		MaxPendingBytes:  64 << 20,
		RequestTimeout:   30 * time.Second,
		AckPollInterval:  time.Second,
		AckTimeout:       300 * time.Second,
		RetryInitial:     200 * time.Millisecond,
		RetryMax:         30 * time.Second,
		HaltRetry:        30 * time.Second,
		DrainTimeout:     10 * time.Second,
		CommitInterval:   time.Second,
	}
}

// Validate reports every problem.
func (c Config) Validate() error {
	var p config.Problems
	p.Add("kafka", c.Kafka.Validate())
	if c.Group == "" {
		p.Addf("group: required")
	}
	if c.MaxPollRecords < 1 || c.MaxPollRecords > 100_000 {
		p.Addf("max_poll_records: %d is outside 1..100000", c.MaxPollRecords)
	}
	if len(c.URLs) == 0 {
		p.Addf("urls: at least one HEC URL is required")
	}
	for _, u := range c.URLs {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			p.Addf("urls: %q is not an http(s) URL with a host", u)
			continue
		}
		if pu.Path != "" && pu.Path != "/" {
			p.Addf("urls: %q has a path; give the base URL (the sink adds /services/collector/event)", u)
		}
	}
	if c.Token == "" {
		p.Addf("token: required")
	} else if strings.ContainsAny(c.Token.Value(), " \t\r\n") {
		p.Addf("token: contains white space (give the token alone, without \"Splunk \")")
	}
	if c.ChannelsPerURL < 1 || c.ChannelsPerURL > 64 {
		p.Addf("channels_per_url: %d is outside 1..64", c.ChannelsPerURL)
	}
	if c.BatchEvents < 1 || c.BatchEvents > 100_000 {
		p.Addf("batch_events: %d is outside 1..100000", c.BatchEvents)
	}
	if c.BatchBytes < 1024 || c.BatchBytes > 800<<20 {
		p.Addf("batch_bytes: %d is outside 1024..%d", c.BatchBytes, 800<<20)
	}
	if c.BatchTimeout < time.Millisecond || c.BatchTimeout > time.Minute {
		p.Addf("batch_timeout: %s is outside 1ms..1m", c.BatchTimeout)
	}
	if c.MaxEventBytes < 256 || c.MaxEventBytes > 800<<20 {
		p.Addf("max_event_bytes: %d is outside 256..%d", c.MaxEventBytes, 800<<20)
	}
	if c.MaxPendingEvents < c.BatchEvents {
		p.Addf("max_pending_events: %d is below batch_events (%d)", c.MaxPendingEvents, c.BatchEvents)
	}
	if c.MaxPendingBytes < c.BatchBytes {
		p.Addf("max_pending_bytes: %d is below batch_bytes (%d)", c.MaxPendingBytes, c.BatchBytes)
	}
	positive := map[string]time.Duration{
		"request_timeout": c.RequestTimeout, "ack_poll_interval": c.AckPollInterval, "ack_timeout": c.AckTimeout,
		"retry_initial": c.RetryInitial, "retry_max": c.RetryMax, "halt_retry": c.HaltRetry,
		"drain_timeout": c.DrainTimeout, "commit_interval": c.CommitInterval,
	}
	for _, k := range []string{"request_timeout", "ack_poll_interval", "ack_timeout", "retry_initial", "retry_max", "halt_retry", "drain_timeout", "commit_interval"} {
		if positive[k] < time.Millisecond {
			p.Addf("%s: %s is below 1ms", k, positive[k])
		}
	}
	if c.RetryMax < c.RetryInitial {
		p.Addf("retry_max: %s is below retry_initial (%s)", c.RetryMax, c.RetryInitial)
	}
	if c.Ack && c.AckTimeout <= c.AckPollInterval {
		p.Addf("ack_timeout: %s must be longer than ack_poll_interval (%s)", c.AckTimeout, c.AckPollInterval)
	}
	seen := map[string]bool{}
	for i, m := range c.Families {
		if _, ok := event.ParseFamily(m.Family); !ok {
			p.Addf("families[%d].family: %q is not a family", i, m.Family)
		} else if seen[m.Family] {
			p.Addf("families[%d].family: %q is mapped twice", i, m.Family)
		}
		seen[m.Family] = true
		for _, f := range append([]string{m.HostField}, m.Fields...) {
			if strings.HasPrefix(f, ".") || strings.HasSuffix(f, ".") || strings.Contains(f, "..") {
				p.Addf("families[%d]: %q is not a dotted path", i, f)
			}
		}
	}
	return p.Err()
}
