package resolve

import (
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/enricher/internal/project"
)

// envelopeReads are the envelope fields the enrichment stages read.
var envelopeReads = project.Wanted{
	"ip": nil, "user_agent": nil, "quirks": nil, "partition_key": nil,
	"client_time": nil, "sent_time": nil, "received_at": nil,
}

// Reads lists, per family, every field of the raw record that context
// resolution, geo, user agent and derived time read (and the enrichment
// field, to know it is null): the enricher decodes only these on its fast
// path. A field read here but missing from this list reads as absent;
// TestProjectionEnrichesLikeFullDecode guards the list.
var Reads = map[event.Family]project.Wanted{
	event.EdX: {
		"envelope": envelopeReads, "enrichment": nil,
		"ip": nil, "agent": nil, "event_type": nil, "name": nil, "page": nil, "referer": nil, "event_json": nil,
		"context": {"course_id": nil, "org_id": nil},
	},
	event.CrowdFrame: {
		"envelope": envelopeReads, "enrichment": nil,
		"type": nil, "task": nil, "batch": nil, "client_time": nil,
		"details": {"section": nil, "ua": nil, "ip": nil},
	},
	event.Weaklayer: {
		"envelope": envelopeReads, "enrichment": nil,
		"type": nil, "time": nil, "install": nil, "window": nil, "window_location": nil,
		"text_input": {"windowLocationReference": nil},
	},
	event.Workstation: {
		"envelope": envelopeReads, "enrichment": nil,
		"manifest": {"user": nil, "computer": {"name": nil, "domain": nil}, "agent": nil},
		"activity": {"time": nil, "time_ms": nil, "window_activity": {
			"type": nil, "element": {"type": nil}, "location": {"type": nil}, "parameters": {"type": nil}}},
	},
	event.Clicks: {
		"envelope": envelopeReads, "enrichment": nil,
		"session": nil, "page": nil, "info": {"target": nil},
	},
	event.HEC: {"envelope": envelopeReads, "enrichment": nil},
}
