// Package kafkatest gives tests a ready Kafka: the broker named by
// KAFKA_BROKERS when set (a real Apache Kafka in CI), else an in-process
// kfake cluster, so the same assertions run against both.
package kafkatest

import (
	"os"
	"strings"
	"testing"
	"time"

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

// UniqueName returns a topic or group name unique to this test, so tests
// can share a real broker.
func UniqueName(t testing.TB, prefix string) string {
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return prefix + "." + name + "." + time.Now().Format("150405.000000")
}
