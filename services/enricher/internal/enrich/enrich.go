// Package enrich is the enricher's transformation seam: a Processor adds
// what Sluice knows about an event to its decoded record, and Stamp records
// where the event came from and who enriched it.
package enrich

import (
	"context"
	"errors"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/pipeline"
)

// Processor enriches one decoded event of family f. native is the record
// as goavro decoded it (a sluice.<family>.Event, see package avro for the
// native conventions), already stamped with its provenance, so a processor
// may add to native["enrichment"]. Process returns the enriched record,
// which may be native itself, changed in place.
//
// Errors: a pipeline.Permanent error means the event can never be enriched
// (it goes to the dead-letter topic with reason enrich_failed, or with the
// code of an *event.Rejection it wraps); any other error is transient and
// the whole batch is retried, so Process must be safe to run again on an
// event it has seen.
type Processor interface {
	Process(ctx context.Context, f event.Family, native map[string]any) (map[string]any, error)
}

// ProcessorFunc adapts a function to Processor.
type ProcessorFunc func(ctx context.Context, f event.Family, native map[string]any) (map[string]any, error)

// Process implements Processor.
func (fn ProcessorFunc) Process(ctx context.Context, f event.Family, native map[string]any) (map[string]any, error) {
	return fn(ctx, f, native)
}

// ErrNoRecord is returned, marked permanent, by Chain when a processor
// returned neither a record nor an error.
var ErrNoRecord = errors.New("processor returned no record")

// Chain runs processors in order, each on the previous one's output, and
// stops at the first error. An empty Chain returns the record unchanged.
type Chain []Processor

// Process implements Processor.
func (c Chain) Process(ctx context.Context, f event.Family, native map[string]any) (map[string]any, error) {
	for _, p := range c {
		out, err := p.Process(ctx, f, native)
		if err != nil {
			return nil, err
		}
		if out == nil {
			return nil, pipeline.Permanent(ErrNoRecord)
		}
		native = out
	}
	return native, nil
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

// Stamp sets native's enrichment to p, replacing whatever the record
// carried (null on raw topics).
func Stamp(native map[string]any, p Provenance) {
	native["enrichment"] = avro.Record(avro.EnrichmentName, map[string]any{
		"enriched_at":       p.EnrichedAt,
		"enricher_version":  p.Version,
		"enricher_instance": p.Instance,
		"raw_topic":         p.Topic,
		"raw_partition":     p.Partition,
		"raw_offset":        p.Offset,
	})
}
