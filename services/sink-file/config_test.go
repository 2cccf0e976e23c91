package sinkfile

import (
	"strings"
	"testing"
	"time"
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
	cfg.DateBy = "sent"
	cfg.RotateBytes = 10
	cfg.RotateEvents = 0
	cfg.RotateAge = time.Millisecond
	cfg.MaxOpenDates = 0
	cfg.DiskRetry = 0
	err := cfg.Validate()
	if err == nil {
		t.Fatal("bad config validated")
	}
	for _, want := range []string{"group: required", "dir: required", "max_poll_records:", "kafka.brokers:", "kafka.sasl.mechanism:",
		"date_by:", "rotate_bytes:", "rotate_events:", "rotate_age:", "max_open_dates:", "disk_retry:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}
