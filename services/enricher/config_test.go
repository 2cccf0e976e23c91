package enricher

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/avro/avrotest"
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

func TestValidatePrivacyAndState(t *testing.T) {
	cfg := Defaults()
	cfg.Privacy.EdX.IP = "mask"
	cfg.Privacy.Clicks.HMAC = []string{"session"}
	cfg.State.MaxKeys = 0
	cfg.TransactionTimeout = 0
	err := cfg.Validate()
	if err == nil {
		t.Fatal("bad config validated")
	}
	for _, want := range []string{"privacy.edx.ip:", "privacy.hmac_key_id: required", "privacy.hmac_key:", "state.max_keys:", "transaction_timeout:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestNewRejectsBadPrivacyPaths(t *testing.T) {
	_, serde := avrotest.Registry(t)
	cfg := Defaults()
	cfg.Privacy.EdX.Drop = []string{"contxt.user_id"}
	if _, err := New(cfg, Deps{Serde: serde}); err == nil || !strings.Contains(err.Error(), `no field "contxt"`) {
		t.Fatalf("New = %v, want the unknown field named", err)
	}
	cfg = Defaults()
	cfg.GeoIP.City = []string{t.TempDir() + "/missing.mmdb"}
	if _, err := New(cfg, Deps{Serde: serde}); err == nil {
		t.Fatal("New with a missing geo database succeeded")
	}
}
