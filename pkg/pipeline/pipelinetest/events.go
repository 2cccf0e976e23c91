package pipelinetest

import (
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
)

// EnrichedClick returns the native value of an enriched sluice.clicks.Event
// with event id id, received at received, client (device) time client, and
// seq as its raw offset.
func EnrichedClick(id string, received, client time.Time, seq int64) map[string]any {
	return map[string]any{
		"envelope": avro.EnvelopeNative(&event.Envelope{
			EventID: id, Family: event.Clicks, EventType: "click", ReceivedAt: received, ClientTime: client,
			Endpoint: "/v1/clicks", PartitionKey: "session-1", BatchIndex: -1, GatewayVersion: "test",
			IP: "203.0.113.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
			Raw: []byte(`{"type":"click","info":{"x":10.5,"y":20,"button":1,"target":{"id":"cell-4","class":"cell"}}}`),
		}),
		"type": "click",
		"info": map[string]any{"x": avro.Double(10.5), "y": avro.Double(20), "button": avro.Long(1),
			"target": avro.Record("sluice.clicks.Target", map[string]any{
				"id": avro.String("cell-4"), "name": nil, "class": avro.String("cell"),
			})},
		"session":     avro.String("session-1"),
		"page":        avro.String("https://example.org/demo/"),
		"client_time": nil,
		"event_id":    avro.String(id),
		"sequence":    avro.Long(seq),
		"extra_json":  nil,
		"enrichment": avro.Record(avro.EnrichmentName, map[string]any{
			"enriched_at":       received.Add(time.Second),
			"enricher_version":  "test",
			"enricher_instance": "test-1",
			"raw_topic":         event.RawTopic(event.Clicks),
			"raw_partition":     int32(0),
			"raw_offset":        seq,
		}),
	}
}
