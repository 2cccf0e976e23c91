package resolve

import (
	"context"
	"time"

	"github.com/sluicehq/sluice/services/enricher/internal/enrich"
)

// DerivedTime corrects device clock skew where an event has both a
// device-created time (envelope.client_time) and a device-sent time
// (envelope.sent_time): the time between them was measured on the device's
// clock, so it is placed before the gateway's receive time:
//
//	corrected = received - (sent - created)
//
// The skew (sent - received: how far the device clock runs ahead, network
// time included) is implausible beyond MaxSkew either way, or when the
// device says it sent the event before creating it.
type DerivedTime struct {
	MaxSkew time.Duration
}

var _ enrich.Processor = DerivedTime{}

// Process implements enrich.Processor.
func (d DerivedTime) Process(_ context.Context, e *enrich.Event) error {
	env := enrich.Rec(e.Native["envelope"])
	created, sent := enrich.Time(env["client_time"]), enrich.Time(env["sent_time"])
	received := enrich.Time(env["received_at"])
	if created.IsZero() || sent.IsZero() || received.IsZero() {
		return nil
	}
	delay := sent.Sub(created)
	skew := sent.Sub(received)
	implausible := delay < 0 || (d.MaxSkew > 0 && (skew > d.MaxSkew || skew < -d.MaxSkew))
	e.Enr.DerivedTime = &enrich.DerivedTime{
		Created:     created,
		Sent:        sent,
		Received:    received,
		Corrected:   received.Add(-delay),
		SkewMicros:  skew.Microseconds(),
		Implausible: implausible,
	}
	return nil
}
