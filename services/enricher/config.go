package enricher

import (
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/kafka"
)

// Config is the enricher's configuration. Environment names are relative to
// the binary's prefix (SLUICE_ for the enricher binary).
type Config struct {
	Kafka kafka.Config `yaml:"kafka" envPrefix:"KAFKA_"`
	// Group is the consumer group of every enricher instance.
	Group string `yaml:"group" env:"GROUP"`
	// Instance names this instance in each event's enrichment; empty means
	// <hostname>-<pid>.
	Instance string `yaml:"instance" env:"INSTANCE"`
	// MaxPollRecords bounds the records enriched, produced and committed
	// together.
	MaxPollRecords int `yaml:"max_poll_records" env:"MAX_POLL_RECORDS"`
}

// Defaults returns a configuration for a local broker.
func Defaults() Config {
	return Config{
		Kafka:          kafka.Defaults(),
		Group:          "sluice-enricher",
		MaxPollRecords: 500,
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
	return p.Err()
}
