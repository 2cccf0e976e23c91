package adapter

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/schemas"
)

// mustEncode builds the full Avro record for out (with a test envelope) and
// encodes it with the family's composed schema, failing the test when the
// adapter's output does not conform. It returns the record decoded again
// and rendered as JSON, for assertions on what consumers will see.
func mustEncode(t *testing.T, fam event.Family, out *Output) string {
	t.Helper()
	text, err := schemas.Latest(string(fam))
	if err != nil {
		t.Fatalf("loading schema %s: %v", fam, err)
	}
	codec, err := avro.NewCodec(text)
	if err != nil {
		t.Fatalf("compiling schema %s: %v", fam, err)
	}
	env := &event.Envelope{
		EventID: "test-id", Family: fam, EventType: out.EventType,
		ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), ClientTime: out.ClientTime,
		SentTime: out.SentTime, Endpoint: "/test", PartitionKey: out.PartitionKey,
		Quirks: out.Quirks, GatewayVersion: "test", BatchIndex: -1,
	}
	rec := make(map[string]any, len(out.Fields)+2)
	for k, v := range out.Fields {
		rec[k] = v
	}
	rec["envelope"] = avro.EnvelopeNative(env)
	rec["enrichment"] = nil
	wire, err := codec.Encode(nil, rec)
	if err != nil {
		t.Fatalf("encoding %s record: %v", fam, err)
	}
	_, body, err := avro.SplitWire(wire)
	if err != nil {
		t.Fatal(err)
	}
	native, err := codec.DecodeBody(body)
	if err != nil {
		t.Fatalf("decoding %s record: %v", fam, err)
	}
	js, err := codec.AppendJSON(nil, native)
	if err != nil {
		t.Fatalf("rendering %s record: %v", fam, err)
	}
	return string(js)
}
