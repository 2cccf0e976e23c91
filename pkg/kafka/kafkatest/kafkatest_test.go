package kafkatest

import (
	"regexp"
	"strings"
	"testing"
)

// legalTopic is what Apache Kafka accepts as a topic (and group) name.
var legalTopic = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func TestUniqueName(t *testing.T) {
	for _, name := range []string{
		"plain",
		"with spaces and/slashes",
		"odd: chars=(1,2) #01 'q' é",
		strings.Repeat("long", 100),
	} {
		t.Run(name, func(t *testing.T) {
			a, b := UniqueName(t, "sluice.test"), UniqueName(t, "sluice.test")
			for _, n := range []string{a, b} {
				if !legalTopic.MatchString(n) {
					t.Errorf("%q is not a legal Kafka topic name", n)
				}
				if !strings.HasPrefix(n, "sluice.test.") {
					t.Errorf("%q lost its prefix", n)
				}
			}
			if a == b {
				t.Errorf("two calls gave the same name %q", a)
			}
		})
	}
}

func TestCluster(t *testing.T) {
	if Real() {
		t.Skip("KAFKA_BROKERS is set")
	}
	cfg := Cluster(t)
	if len(cfg.Brokers) != 1 || cfg.Brokers[0] == "127.0.0.1:9092" {
		t.Fatalf("brokers %v do not name the fake", cfg.Brokers)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Cluster's config is invalid: %v", err)
	}
}
