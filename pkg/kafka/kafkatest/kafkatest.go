// Package kafkatest gives tests a ready Kafka: the broker named by
// KAFKA_BROKERS when set (a real Apache Kafka in CI), else an in-process
// kfake cluster, so the same assertions run against both.
package kafkatest

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluicehq/sluice/pkg/kafka"
)

// Cluster starts (or names) a broker for the test and returns a Config
// pointing at it, with short group timings so rebalances are quick.
func Cluster(t testing.TB, opts ...kfake.Opt) kafka.Config {
	t.Helper()
	cfg := base()
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		cfg.Brokers = strings.Split(b, ",")
		cfg.ReplicationFactor = -1
		return cfg
	}
	c := Fake(t, opts...)
	cfg.Brokers = c.ListenAddrs()
	return cfg
}

// base is the Config every test broker starts from: three partitions per
// topic and short group timings.
func base() kafka.Config {
	cfg := kafka.Defaults()
	cfg.Partitions = 3
	cfg.SessionTimeout = 6 * time.Second
	cfg.HeartbeatInterval = 500 * time.Millisecond
	cfg.RebalanceTimeout = 10 * time.Second
	return cfg
}

// Fake starts an in-process kfake cluster closed at the end of the test.
func Fake(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	base := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.BrokerConfigs(map[string]string{"group.consumer.heartbeat.interval.ms": "500"}),
	}
	c, err := kfake.NewCluster(append(base, opts...)...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Real reports whether tests run against a real broker (KAFKA_BROKERS set).
func Real() bool { return os.Getenv("KAFKA_BROKERS") != "" }

// names numbers UniqueName's results, so two calls in one microsecond differ.
var names atomic.Int64

// UniqueName returns a topic or group name unique to this test, so tests
// can share a real broker. It is a legal Kafka name: at most 249 of
// [a-zA-Z0-9._-], whatever the test is called.
func UniqueName(t testing.TB, prefix string) string {
	name := strings.Map(func(r rune) rune {
		if r < utf8.RuneSelf && (r == '.' || r == '_' || r == '-' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return r
		}
		return '-'
	}, t.Name())
	suffix := fmt.Sprintf(".%s.%d", time.Now().Format("150405.000000"), names.Add(1))
	if room := 249 - len(prefix) - 1 - len(suffix); len(name) > room {
		name = name[:max(room, 0)]
	}
	return prefix + "." + name + suffix
}
