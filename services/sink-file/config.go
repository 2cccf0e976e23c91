package sinkfile

import (
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/kafka"
)

// Date folder choices (Config.DateBy).
const (
	DateByEvent    = "event"
	DateByReceived = "received"
)

// Config is the file sink's configuration. Environment names are relative
// to the binary's prefix (SLUICE_ for the sink-file binary).
type Config struct {
	Kafka kafka.Config `yaml:"kafka" envPrefix:"KAFKA_"`
	// Group is the consumer group of every file sink instance.
	Group string `yaml:"group" env:"GROUP"`
	// Dir is the folder that holds <family>/<yyyy-mm-dd>/ folders of files.
	Dir string `yaml:"dir" env:"DIR"`
	// MaxPollRecords bounds the records handled together.
	MaxPollRecords int `yaml:"max_poll_records" env:"MAX_POLL_RECORDS"`
	// Gzip compresses each file as one gzip stream (.jsonl.gz).
	Gzip bool `yaml:"gzip" env:"GZIP"`
	// DateBy picks an event's date folder: "event" (the time the device
	// gave, unless it is more than a day after receipt) or "received" (when
	// the gateway took it).
	DateBy string `yaml:"date_by" env:"DATE_BY"`
	// A partition's files are published (fsynced, renamed, committed) once
	// they hold RotateBytes uncompressed bytes or RotateEvents events, or
	// once the first of them is RotateAge old.
	RotateBytes  int64         `yaml:"rotate_bytes" env:"ROTATE_BYTES"`
	RotateEvents int           `yaml:"rotate_events" env:"ROTATE_EVENTS"`
	RotateAge    time.Duration `yaml:"rotate_age" env:"ROTATE_AGE"`
	// MaxOpenDates bounds the date folders one partition writes to at once;
	// an event for one more publishes the partition's files first.
	MaxOpenDates int `yaml:"max_open_dates" env:"MAX_OPEN_DATES"`
	// DiskRetry is how often a sink paused by a full or unwritable disk
	// checks whether it can write again.
	DiskRetry time.Duration `yaml:"disk_retry" env:"DISK_RETRY"`
}

// Defaults returns a configuration for a local broker writing under
// ./data/sink.
func Defaults() Config {
	return Config{
		Kafka:          kafka.Defaults(),
		Group:          "sluice-sink-file",
		Dir:            "data/sink",
		MaxPollRecords: 5000,
		DateBy:         DateByEvent,
		RotateBytes:    128 << 20,
		RotateEvents:   1_000_000,
		RotateAge:      time.Minute,
		MaxOpenDates:   32,
		DiskRetry:      5 * time.Second,
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
	if c.DateBy != DateByEvent && c.DateBy != DateByReceived {
		p.Addf("date_by: %q is neither %q nor %q", c.DateBy, DateByEvent, DateByReceived)
	}
	if c.RotateBytes < 1<<10 {
		p.Addf("rotate_bytes: %d is below 1024", c.RotateBytes)
	}
	if c.RotateEvents < 1 {
		p.Addf("rotate_events: must be at least 1")
	}
	if c.RotateAge < 100*time.Millisecond || c.RotateAge > 24*time.Hour {
		p.Addf("rotate_age: %s is outside 100ms..24h", c.RotateAge)
	}
	if c.MaxOpenDates < 1 || c.MaxOpenDates > 1000 {
		p.Addf("max_open_dates: %d is outside 1..1000", c.MaxOpenDates)
	}
	if c.DiskRetry < 100*time.Millisecond || c.DiskRetry > 10*time.Minute {
		p.Addf("disk_retry: %s is outside 100ms..10m", c.DiskRetry)
	}
	return p.Err()
}

// tick is how often the consumer calls an idle handler: often enough for
// RotateAge to be kept within a few percent.
func (c Config) tick() time.Duration {
	return min(max(c.RotateAge/10, 20*time.Millisecond), time.Second)
}
