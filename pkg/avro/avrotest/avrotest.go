// Package avrotest gives tests a Serde backed by an in-process srfake
// registry with every Sluice schema registered.
package avrotest

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/sluicehq/sluice/pkg/avro"
)

// Registry starts an srfake registry for the test and returns its URL and a
// Serde with every schema registered.
func Registry(t testing.TB) (string, *avro.Serde) {
	t.Helper()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	s := avro.NewSerde(cl)
	if err := avro.RegisterAll(context.Background(), s); err != nil {
		t.Fatalf("registering schemas: %v", err)
	}
	return reg.URL(), s
}
