package sinkfile

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
	cfg.Dir = ""
	cfg.MaxPollRecords = -1
	cfg.Kafka.Brokers = nil
	cfg.Kafka.SASL.Mechanism = "GSSAPI"
	err := cfg.Validate()
	if err == nil {
		t.Fatal("bad config validated")
	}
	for _, want := range []string{"group: required", "dir: required", "max_poll_records:", "kafka.brokers:", "kafka.sasl.mechanism:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}
