package ingest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pkg/event"
)

// The arena's pieces never overlap: every record keeps its own key, value
// and headers after all of a request's records are built, and an append to
// one of them cannot write into another.
func TestRecArenaPiecesAreSeparate(t *testing.T) {
	p := &Pipeline{}
	req := &Request{Family: event.EdX}
	type want struct{ key, id, value string }
	for name, ar := range map[string]*recArena{"room for all": newRecArena(300), "room for 3": newRecArena(3), "nil": nil} {
		var wants []want
		var recs []*kgo.Record
		for i := range 300 {
			size := 10 + (i*37)%(recArenaChunk/3) // some past a chunk's remainder, some over a quarter chunk
			if i%50 == 0 {
				size = recArenaChunk // never from a chunk
			}
			value := append(ar.bytes(size), bytes.Repeat([]byte{byte(i)}, size)...)
			if i%7 == 0 {
				value = append(value, 'x') // past what was asked for: moves out of the arena
			}
			value = ar.used(value)
			env := &event.Envelope{PartitionKey: fmt.Sprintf("key-%d", i), EventID: fmt.Sprintf("id-%d", i)}
			recs = append(recs, p.record(ar, req, env, value))
			wants = append(wants, want{env.PartitionKey, env.EventID, string(value)})
		}
		for _, r := range recs {
			if cap(r.Value) != len(r.Value) || cap(r.Key) != len(r.Key) || cap(r.Headers) != 2 || cap(r.Headers[1].Value) != len(r.Headers[1].Value) {
				t.Fatalf("%s: a piece is not capped at its length", name)
			}
			r.Value = append(r.Value, 0xFF) // must not reach any other record
			r.Key = append(r.Key, 0xFF)
			r.Headers[1].Value = append(r.Headers[1].Value, 0xFF)
		}
		for i, r := range recs {
			got := want{string(r.Key[:len(r.Key)-1]), string(r.Headers[1].Value[:len(r.Headers[1].Value)-1]), string(r.Value[:len(r.Value)-1])}
			if got != wants[i] {
				t.Fatalf("%s: record %d changed after the others were built", name, i)
			}
			if r.Topic != "sluice.raw.edx" || string(r.Headers[0].Value) != "edx" {
				t.Fatalf("%s: record %d: topic %q, family header %q", name, i, r.Topic, r.Headers[0].Value)
			}
		}
	}
}
