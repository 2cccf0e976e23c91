package enricher

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/pkg/avro/avrotest"
)

func TestStopWithoutStart(t *testing.T) {
	_, serde := avrotest.Registry(t)
	svc, err := New(Defaults(), Deps{Serde: serde})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Stop(context.Background()); err != nil {
		t.Fatalf("stop without start: %v", err)
	}
	if err := svc.Stop(context.Background()); err != nil {
		t.Fatalf("second stop: %v", err)
	}
}

func TestNewNeedsSerde(t *testing.T) {
	if _, err := New(Defaults(), Deps{}); err == nil {
		t.Fatal("New without a Serde succeeded")
	}
}
