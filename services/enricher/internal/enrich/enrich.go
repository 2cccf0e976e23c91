// Package enrich is the enricher's transformation seam: an Event is one
// decoded raw record on its way to its enriched topic, a Processor adds
// what Sluice knows about it, and Stamp records where the event came from
// and who enriched it.
package enrich

import (
	"context"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
)

// Event is one raw record being enriched.
type Event struct {
	Family    event.Family
	Key       string // the Kafka record key: the partition key state is kept by
	Partition int32  // raw partition; state lives per partition
	Offset    int64
	Now       time.Time // the batch's clock, for state ages

	// Native is the record as goavro decoded it (a sluice.<family>.Event,
	// see package avro for the native conventions). Processors may change
	// it in place (and then set Modified).
	Native map[string]any
	// Enr is its sluice.Enrichment record; Stamp sets the provenance,
	// processors add the rest.
	Enr *Enrichment

	// Set by context resolution for the stages after it: the client IP and
	// user agent that describe the event's client, and where each came from
	// (sluice.Geo ip_source, sluice.UserAgent source). Empty: none.
	IP, IPSource string
	UA, UASource string

	// Modified must be set by a processor that changes Native: the encoder
	// then re-encodes the whole record instead of appending the enrichment
	// to the raw bytes.
	Modified bool
}

// Processor enriches one event.
//
// Errors: a pipeline.Permanent error means the event can never be enriched
// (it goes to the dead-letter topic with reason enrich_failed, or with the
// code of an *event.Rejection it wraps); any other error is transient and
// the whole batch is retried (its transaction aborted and its state changes
// undone), so Process must be safe to run again on an event it has seen.
type Processor interface {
	Process(ctx context.Context, e *Event) error
}

// ProcessorFunc adapts a function to Processor.
type ProcessorFunc func(ctx context.Context, e *Event) error

// Process implements Processor.
func (fn ProcessorFunc) Process(ctx context.Context, e *Event) error { return fn(ctx, e) }

// Chain runs processors in order and stops at the first error. An empty
// Chain leaves the event unchanged.
type Chain []Processor

// Process implements Processor.
func (c Chain) Process(ctx context.Context, e *Event) error {
	for _, p := range c {
		if err := p.Process(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// Provenance is where an enriched event came from and who enriched it: the
// required fields of the sluice.Enrichment record.
type Provenance struct {
	EnrichedAt time.Time
	Version    string // enricher_version
	Instance   string // enricher_instance
	Topic      string // raw topic
	Partition  int32
	Offset     int64
}

// Stamp gives e a fresh enrichment holding p. The record's own enrichment
// field (null on raw topics) is replaced when the record is encoded.
func Stamp(e *Event, p Provenance) {
	e.Enr = &Enrichment{
		EnrichedAt:   p.EnrichedAt,
		Version:      p.Version,
		Instance:     p.Instance,
		RawTopic:     p.Topic,
		RawPartition: p.Partition,
		RawOffset:    p.Offset,
	}
}

// SetNative points the record's enrichment field at e.Enr as goavro native
// values, for encoding the whole record; it returns the enrichment's fields.
func (e *Event) SetNative() map[string]any {
	m := e.Enr.Native()
	e.Native["enrichment"] = avro.Record(avro.EnrichmentName, m)
	return m
}

// Names of the records inside sluice.Enrichment, as union branches.
const (
	GeoName                = "sluice.Geo"
	UserAgentName          = "sluice.UserAgent"
	EdxContextName         = "sluice.EdxContext"
	CrowdframeContextName  = "sluice.CrowdframeContext"
	WeaklayerContextName   = "sluice.WeaklayerContext"
	WorkstationContextName = "sluice.WorkstationContext"
	ClicksContextName      = "sluice.ClicksContext"
	PrivacyName            = "sluice.Privacy"
	DerivedTimeName        = "sluice.DerivedTime"
)
