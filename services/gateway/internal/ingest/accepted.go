package ingest

import (
	"sync"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pkg/event"
)

// Accepted is one event the broker acknowledged, as an OnAccepted observer
// sees it.
type Accepted struct {
	Family    event.Family
	Endpoint  string
	SourceKey string
	BatchID   string
	// EventID shares the record's bytes, which are reused once the
	// request is answered: it is valid only during the call; copy it
	// (strings.Clone) to keep it.
	EventID    string
	ReceivedAt time.Time
	// Raw is the event as received. It is valid only during the call: copy
	// what you keep.
	Raw []byte
}

// OnAccepted registers fn to see the events the broker acknowledged, one
// call per request with that request's accepted events in order, from
// every endpoint (the demo page's feed of recent events uses it). fn runs
// on the request's goroutine before the reply, so it must be quick; the
// slice and the Raw bytes are valid only during the call. Call it before
// Start.
func (s *Server) OnAccepted(fn func([]Accepted)) {
	s.pipe.accepted = append(s.pipe.accepted, fn)
}

var acceptedBatches = sync.Pool{New: func() any { return new([]Accepted) }}

// notifyAccepted tells the observers about the accepted items of req:
// item idx[j] was stored as recs[j] when ok[j].
func (p *Pipeline) notifyAccepted(req *Request, idx []int, recs []*kgo.Record, ok func(j int) bool) {
	if len(p.accepted) == 0 {
		return
	}
	// The slice is valid only during the calls: it is reused.
	bp := acceptedBatches.Get().(*[]Accepted)
	batch := (*bp)[:0]
	defer func() {
		clear(batch) // drop the references to the request's bytes
		if cap(batch) <= 4096 {
			*bp = batch[:0]
			acceptedBatches.Put(bp)
		}
	}()
	for j, i := range idx {
		if !ok(j) {
			continue
		}
		a := Accepted{
			Family: req.Family, Endpoint: req.Endpoint, SourceKey: req.SourceKey, BatchID: req.BatchID,
			ReceivedAt: req.Meta.ReceivedAt, Raw: req.Items[i].Raw,
		}
		for _, h := range recs[j].Headers {
			if h.Key == event.HeaderEventID {
				// Not written again before the request is answered.
				a.EventID = unsafe.String(unsafe.SliceData(h.Value), len(h.Value))
			}
		}
		batch = append(batch, a)
	}
	if len(batch) == 0 {
		return
	}
	for _, fn := range p.accepted {
		fn(batch)
	}
}
