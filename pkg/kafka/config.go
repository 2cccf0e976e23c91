// Package kafka builds franz-go clients the way every Sluice service needs
// them: an idempotent acks=all producer with an explicit linger and a bounded
// buffer, group consumers that commit only what was handled, topic creation,
// SASL and TLS.
package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluicehq/sluice/pkg/config"
)

// Config is the Kafka connection and client tuning shared by all services.
type Config struct {
	Brokers  []string `yaml:"brokers" env:"BROKERS" envSeparator:","`
	ClientID string   `yaml:"client_id" env:"CLIENT_ID"`

	// Linger is how long the producer waits to fill a batch. The gateway
	// replies only after the broker's ack, so linger adds directly to reply
	// latency: keep it small.
	Linger time.Duration `yaml:"linger" env:"LINGER"`
	// Compression is the codec producers compress record batches with:
	// none, snappy, lz4, zstd or gzip ("": snappy). Consumers read every
	// codec whatever this says.
	Compression string `yaml:"compression" env:"COMPRESSION"`
	// MaxBufferedBytes bounds the producer's memory; past it, produce waits.
	MaxBufferedBytes int `yaml:"max_buffered_bytes" env:"MAX_BUFFERED_BYTES"`
	// MaxBufferedRecords bounds the number of records awaiting an ack.
	MaxBufferedRecords int `yaml:"max_buffered_records" env:"MAX_BUFFERED_RECORDS"`
	// DeliveryTimeout bounds how long a record may wait for its ack before
	// it fails (the producer retries within this time).
	DeliveryTimeout time.Duration `yaml:"delivery_timeout" env:"DELIVERY_TIMEOUT"`
	// MaxMessageBytes is the largest record batch the producer sends.
	MaxMessageBytes int32 `yaml:"max_message_bytes" env:"MAX_MESSAGE_BYTES"`

	// Topic creation at start.
	CreateTopics      bool  `yaml:"create_topics" env:"CREATE_TOPICS"`
	Partitions        int32 `yaml:"partitions" env:"PARTITIONS"`
	ReplicationFactor int16 `yaml:"replication_factor" env:"REPLICATION_FACTOR"` // -1: broker default

	// Consumer group tuning.
	SessionTimeout    time.Duration `yaml:"session_timeout" env:"SESSION_TIMEOUT"`
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval" env:"HEARTBEAT_INTERVAL"`
	RebalanceTimeout  time.Duration `yaml:"rebalance_timeout" env:"REBALANCE_TIMEOUT"`

	SASL SASLConfig `yaml:"sasl" envPrefix:"SASL_"`
	TLS  TLSConfig  `yaml:"tls" envPrefix:"TLS_"`
}

// SASLConfig selects SASL authentication; Mechanism "" disables it.
type SASLConfig struct {
	Mechanism string        `yaml:"mechanism" env:"MECHANISM"` // PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	Username  string        `yaml:"username" env:"USERNAME"`
	Password  config.Secret `yaml:"password" env:"PASSWORD"`
}

// TLSConfig enables TLS to the brokers.
type TLSConfig struct {
	Enabled            bool   `yaml:"enabled" env:"ENABLED"`
	CAFile             string `yaml:"ca_file" env:"CA_FILE"`
	CertFile           string `yaml:"cert_file" env:"CERT_FILE"`
	KeyFile            string `yaml:"key_file" env:"KEY_FILE"`
	ServerName         string `yaml:"server_name" env:"SERVER_NAME"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify" env:"INSECURE_SKIP_VERIFY"`
}

// Defaults returns settings for a single local broker.
func Defaults() Config {
	return Config{
		Brokers:            []string{"127.0.0.1:9092"},
		ClientID:           "sluice",
		Linger:             time.Millisecond,
		Compression:        "snappy",
		MaxBufferedBytes:   64 << 20,
		MaxBufferedRecords: 100_000,
		DeliveryTimeout:    10 * time.Second,
		MaxMessageBytes:    1 << 20,
		CreateTopics:       true,
		Partitions:         6,
		ReplicationFactor:  -1,
		SessionTimeout:     10 * time.Second,
		HeartbeatInterval:  time.Second,
		RebalanceTimeout:   30 * time.Second,
	}
}

// Validate reports every problem.
func (c Config) Validate() error {
	var p config.Problems
	if len(c.Brokers) == 0 {
		p.Addf("brokers: at least one broker is required")
	}
	if len(c.ClientID) > 256 {
		p.Addf("client_id: %d bytes is above 256", len(c.ClientID))
	}
	if c.Linger < 0 || c.Linger > time.Second {
		p.Addf("linger: %s is outside 0..1s", c.Linger)
	}
	if _, ok := compressionCodecs[c.Compression]; !ok && c.Compression != "" {
		p.Addf("compression: %q is not none, snappy, lz4, zstd or gzip", c.Compression)
	}
	if c.MaxBufferedBytes <= 0 {
		p.Addf("max_buffered_bytes: must be positive")
	}
	if c.MaxBufferedRecords <= 0 {
		p.Addf("max_buffered_records: must be positive")
	}
	if c.DeliveryTimeout < time.Second {
		p.Addf("delivery_timeout: %s is below 1s", c.DeliveryTimeout)
	}
	// franz-go refuses a batch larger than what it writes to a broker at
	// once (BrokerMaxWriteBytes, 100 MiB by default).
	if c.MaxMessageBytes < 1024 || c.MaxMessageBytes > 100<<20 {
		p.Addf("max_message_bytes: %d is outside 1024..%d", c.MaxMessageBytes, 100<<20)
	}
	if c.Partitions < 1 {
		p.Addf("partitions: must be at least 1")
	}
	if c.ReplicationFactor == 0 || c.ReplicationFactor < -1 {
		p.Addf("replication_factor: must be -1 (broker default) or at least 1")
	}
	if c.SessionTimeout < 100*time.Millisecond {
		p.Addf("session_timeout: %s is below 100ms", c.SessionTimeout)
	}
	if c.HeartbeatInterval <= 0 || c.SessionTimeout <= c.HeartbeatInterval {
		p.Addf("heartbeat_interval: must be positive and below session_timeout")
	}
	if c.RebalanceTimeout < 100*time.Millisecond {
		p.Addf("rebalance_timeout: %s is below 100ms", c.RebalanceTimeout)
	}
	switch c.SASL.Mechanism {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		p.Addf("sasl.mechanism: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASL.Mechanism)
	}
	if c.SASL.Mechanism != "" && (c.SASL.Username == "" || c.SASL.Password == "") {
		p.Addf("sasl: username and password are required with mechanism %s", c.SASL.Mechanism)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		p.Addf("tls: cert_file and key_file go together")
	}
	return p.Err()
}

// compressionCodecs are the codecs Compression names.
var compressionCodecs = map[string]kgo.CompressionCodec{
	"none":   kgo.NoCompression(),
	"snappy": kgo.SnappyCompression(),
	"lz4":    kgo.Lz4Compression(),
	"zstd":   kgo.ZstdCompression(),
	"gzip":   kgo.GzipCompression(),
}

// producerCompression is the producer option for Compression: the codec,
// then, as franz-go's default does, snappy and none for a broker too old
// for it (zstd needs Kafka 2.1).
func (c Config) producerCompression() kgo.Opt {
	switch c.Compression {
	case "none":
		return kgo.ProducerBatchCompression(kgo.NoCompression())
	case "", "snappy":
		return kgo.ProducerBatchCompression(kgo.SnappyCompression(), kgo.NoCompression())
	}
	return kgo.ProducerBatchCompression(compressionCodecs[c.Compression], kgo.SnappyCompression(), kgo.NoCompression())
}

// clientOpts returns the connection options common to every client.
func (c Config) clientOpts() ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
	}
	if c.SASL.Mechanism != "" {
		var m sasl.Mechanism
		switch c.SASL.Mechanism {
		case "PLAIN":
			m = plain.Auth{User: c.SASL.Username, Pass: c.SASL.Password.Value()}.AsMechanism()
		case "SCRAM-SHA-256":
			m = scram.Auth{User: c.SASL.Username, Pass: c.SASL.Password.Value()}.AsSha256Mechanism()
		case "SCRAM-SHA-512":
			m = scram.Auth{User: c.SASL.Username, Pass: c.SASL.Password.Value()}.AsSha512Mechanism()
		}
		opts = append(opts, kgo.SASL(m))
	}
	if c.TLS.Enabled {
		tc, err := c.TLS.build()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	return opts, nil
}

func (t TLSConfig) build() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in for tests
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("tls ca_file holds no PEM certificate")
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
