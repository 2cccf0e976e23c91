package enricher

import (
	"strings"
	"testing"
)

func TestDefaultsValidate(t *testing.T) {
	if err := Defaults().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	cfg := Defaults()
	cfg.Group = ""
	cfg.MaxPollRecords = 0
	cfg.Kafka.Brokers = nil
	cfg.Kafka.Partitions = 0
	err := cfg.Validate()
	if err == nil {
		t.Fatal("bad config validated")
	}
	for _, want := range []string{"group: required", "max_poll_records:", "kafka.brokers:", "kafka.partitions:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}
