package sinkfile

import (
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/kafka"
)

// Config is the file sink's configuration. Environment names are relative
// to the binary's prefix (SLUICE_ for the sink-file binary).
type Config struct {
	Kafka kafka.Config `yaml:"kafka" envPrefix:"KAFKA_"`
	// Group is the consumer group of every file sink instance.
	Group string `yaml:"group" env:"GROUP"`
	// Dir is the folder that holds <family>/<yyyy-mm-dd>/ folders of files.
	Dir string `yaml:"dir" env:"DIR"`
	// MaxPollRecords bounds the records written, fsynced and committed
	// together.
	MaxPollRecords int `yaml:"max_poll_records" env:"MAX_POLL_RECORDS"`
}

// Defaults returns a configuration for a local broker writing under
// ./data/sink.
func Defaults() Config {
	return Config{
		Kafka:          kafka.Defaults(),
		Group:          "sluice-sink-file",
		Dir:            "data/sink",
		MaxPollRecords: 1000,
	}
}

// Validate reports every problem.
func (c Config) Validate() error {
	var p config.Problems
	p.Add("kafka", c.Kafka.Validate())
	if c.Group == "" {
		p.Addf("group: required")
	}
	if c.Dir == "" {
		p.Addf("dir: required")
	}
	if c.MaxPollRecords < 1 || c.MaxPollRecords > 100_000 {
		p.Addf("max_poll_records: %d is outside 1..100000", c.MaxPollRecords)
	}
	return p.Err()
}
