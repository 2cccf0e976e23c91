package ingest

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pkg/event"
)

// Accepted is one event the broker acknowledged, as an OnAccepted observer
// sees it.
type Accepted struct {
	Family     event.Family
	Endpoint   string
	SourceKey  string
	BatchID    string
	EventID    string
	ReceivedAt time.Time
	// Raw is the event as received. It is valid only during the call: copy
	// what you keep.
	Raw []byte
}

// OnAccepted registers fn to see every event the broker acknowledged, from
// every endpoint (the demo page's feed of recent events uses it). fn runs
// on the request's goroutine before the reply, so it must be quick. Call it
// before Start.
func (s *Server) OnAccepted(fn func(*Accepted)) {
	s.pipe.accepted = append(s.pipe.accepted, fn)
}

// notifyAccepted tells the observers about item i of req, stored as rec.
func (p *Pipeline) notifyAccepted(req *Request, i int, rec *kgo.Record) {
	if len(p.accepted) == 0 {
		return
	}
	a := &Accepted{
		Family: req.Family, Endpoint: req.Endpoint, SourceKey: req.SourceKey, BatchID: req.BatchID,
		ReceivedAt: req.Meta.ReceivedAt, Raw: req.Items[i].Raw,
	}
	for _, h := range rec.Headers {
		if h.Key == event.HeaderEventID {
			a.EventID = string(h.Value)
		}
	}
	for _, fn := range p.accepted {
		fn(a)
	}
}
