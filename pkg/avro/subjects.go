package avro

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/schemas"
)

// ValueSubject is the registry subject of a topic's values (TopicNameStrategy).
func ValueSubject(topic string) string { return topic + "-value" }

// RegisterAll registers the latest schema of every family under its raw
// and enriched topic subjects, and the dead-letter schema under the DLQ
// subject. Registering an unchanged schema is a no-op that returns its id.
func RegisterAll(ctx context.Context, s *Serde) error {
	for _, f := range event.Families {
		text, err := schemas.Latest(string(f))
		if err != nil {
			return err
		}
		for _, topic := range []string{event.RawTopic(f), event.EnrichedTopic(f)} {
			if _, err := s.Register(ctx, ValueSubject(topic), text); err != nil {
				return err
			}
		}
	}
	text, err := schemas.Latest(schemas.DLQ)
	if err != nil {
		return err
	}
	if _, err := s.Register(ctx, ValueSubject(event.DLQTopic), text); err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	return nil
}
