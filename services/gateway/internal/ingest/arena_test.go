package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/gateway/internal/adapter"
)

// newRecArena is an arena of the test's own, outside the pool, with room
// for events records.
func newRecArena(events int) *recArena {
	return &recArena{recs: make([]kgo.Record, 0, events), hdrs: make([]kgo.RecordHeader, 0, 2*events)}
}

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

// arenaPiece is a piece of memory an arena handed out: [start, end).
type arenaPiece struct{ start, end uintptr }

// fillArena builds n records from ar whose keys, ids and values are made
// of tag, of sizes (varied by seed) that cross chunk boundaries.
func fillArena(p *Pipeline, ar *recArena, tag, seed, n int) []*kgo.Record {
	req := &Request{Family: event.EdX}
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		size := 10 + (i*37+seed*11)%(recArenaChunk/3)
		value := ar.used(append(ar.bytes(size), bytes.Repeat([]byte{byte(tag)}, size)...))
		env := &event.Envelope{PartitionKey: fmt.Sprintf("key-%d-%d", tag, i), EventID: fmt.Sprintf("id-%d-%d", tag, i)}
		recs = append(recs, p.record(ar, req, env, value))
	}
	return recs
}

// checkArena reports the first record of fillArena(tag) that changed.
func checkArena(recs []*kgo.Record, tag int) error {
	for i, r := range recs {
		if string(r.Key) != fmt.Sprintf("key-%d-%d", tag, i) || string(r.Headers[1].Value) != fmt.Sprintf("id-%d-%d", tag, i) ||
			len(r.Value) == 0 || len(bytes.Trim(r.Value, string([]byte{byte(tag)}))) != 0 {
			return fmt.Errorf("record %d of arena %d changed: key %q, id %q", i, tag, r.Key, r.Headers[1].Value)
		}
	}
	return nil
}

// arenaPieces lists the memory of recs: the records, their headers, keys,
// event ids and values (not the family header, shared by all).
func arenaPieces(recs []*kgo.Record) []arenaPiece {
	var ps []arenaPiece
	add := func(p unsafe.Pointer, n uintptr) {
		if n > 0 {
			ps = append(ps, arenaPiece{uintptr(p), uintptr(p) + n})
		}
	}
	for _, r := range recs {
		add(unsafe.Pointer(r), unsafe.Sizeof(*r))
		add(unsafe.Pointer(unsafe.SliceData(r.Headers)), uintptr(len(r.Headers))*unsafe.Sizeof(r.Headers[0]))
		add(unsafe.Pointer(unsafe.SliceData(r.Key)), uintptr(len(r.Key)))
		add(unsafe.Pointer(unsafe.SliceData(r.Headers[1].Value)), uintptr(len(r.Headers[1].Value)))
		add(unsafe.Pointer(unsafe.SliceData(r.Value)), uintptr(len(r.Value)))
	}
	return ps
}

// overlap reports two pieces of ps that share memory.
func overlap(ps []arenaPiece) error {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b arenaPiece) int { return int(a.start) - int(b.start) })
	for i := 1; i < len(ps); i++ {
		if ps[i].start < ps[i-1].end {
			return fmt.Errorf("pieces %#x..%#x and %#x..%#x overlap", ps[i-1].start, ps[i-1].end, ps[i].start, ps[i].end)
		}
	}
	return nil
}

// An arena goes back to the pool only when both its references are
// released: while the producer may still read an arena's records, arenas
// recycled by other requests never hand out its memory. A recycled arena
// reuses its records, headers and chunks, each once per request.
func TestRecycledArenaPiecesAreSeparate(t *testing.T) {
	p := &Pipeline{}
	const n = 200
	held := getRecArena(n)
	heldRecs := fillArena(p, held, 1, 1, n)
	heldPieces := arenaPieces(heldRecs)
	held.release() // the Ingest call is done; franz-go still holds the records
	for round := range 20 {
		tag := 2 + round
		ar := getRecArena(n)
		if ar == held {
			t.Fatalf("round %d: an arena still referenced came out of the pool", round)
		}
		recs := fillArena(p, ar, tag, tag, n)
		if err := overlap(append(arenaPieces(recs), heldPieces...)); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := errors.Join(checkArena(heldRecs, 1), checkArena(recs, tag)); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		ar.release()
		ar.release()
	}
	held.release()

	// Reset keeps the memory and hands each piece out once.
	ar := newRecArena(n)
	first := arenaPieces(fillArena(p, ar, 1, 1, n))
	chunks := len(ar.chunks)
	if !ar.reset() {
		t.Fatal("a small arena is not pooled")
	}
	recs := fillArena(p, ar, 2, 1, n)
	again := arenaPieces(recs)
	if err := overlap(again); err != nil {
		t.Fatalf("after a reset: %v", err)
	}
	if err := checkArena(recs, 2); err != nil {
		t.Fatal(err)
	}
	if len(ar.chunks) != chunks || !slices.Equal(again, first) {
		t.Fatalf("after a reset the arena took new memory: %d chunks, then %d", chunks, len(ar.chunks))
	}

	// Large arenas are left to the garbage collector.
	big := newRecArena(recArenaMaxRecords + 1)
	if big.reset() {
		t.Fatal("an arena of more than recArenaMaxRecords records is pooled")
	}
	big = newRecArena(10)
	for range recArenaMaxBytes/recArenaChunk + 1 {
		big.used(append(big.bytes(recArenaChunk/4), make([]byte, recArenaChunk/4)...))
		big.buf = big.buf[:cap(big.buf)] // the chunk is full
	}
	if big.reset() {
		t.Fatalf("an arena of %d chunks is pooled", len(big.chunks))
	}

	// A release past the two references is a bug that would free memory
	// another request uses: it panics.
	ar = getRecArena(1)
	ar.release()
	ar.release()
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("a third release did not panic")
			}
		}()
		ar.release()
	}()
}

// arenaLine is event i of request r, with a padding of varied length so
// that records cross chunk boundaries differently from one request to the
// next, and some are too large for a chunk.
func arenaLine(r, i int) (id, line string) {
	id = fmt.Sprintf("arena-%d-%d", r, i)
	pad := (r*131 + i*37) % 3000
	if (r+i)%23 == 0 {
		pad = 9000
	}
	return id, fmt.Sprintf(`{"username":"u%d-%d","event_type":"t","time":"2026-01-02T03:04:05Z","event_id":"%s","event":{"n":%d,"pad":"%s"}}`,
		r, i, id, i, strings.Repeat(string(rune('a'+(r+i)%26)), pad))
}

// Through the real pipeline and an in-process Kafka, concurrent requests
// recycle arenas, including arenas of requests answered (produce timeout)
// while franz-go still held their records: every record read back from
// Kafka holds exactly the event it was built from. An arena reused too
// early also crashes franz-go (a record whose context was cleared) or, with
// -race, is seen as franz-go writing to a record (its offset) that a later
// request builds in the same memory.
func TestRecycledArenasThroughKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 events through kfake")
	}
	g := newTestGW(t, func(s *gwSetup) {
		s.opts.ProduceTimeout = 2 * time.Second
		s.opts.ProbeInterval = 0 // no circuit: the held requests only time out
	})
	const (
		workers  = 8
		requests = 200
		events   = 50
	)
	var mu sync.Mutex
	sent := map[string]string{} // event id → line
	send := func(r int) gwResp {
		var body strings.Builder
		for i := range events {
			id, line := arenaLine(r, i)
			body.WriteString(line)
			body.WriteByte('\n')
			mu.Lock()
			sent[id] = line
			mu.Unlock()
		}
		return g.post("/v1/events/edx", strings.NewReader(body.String()), ndjson())
	}
	// retryable is what a client sends again (docs/retries.md): a 503, or
	// a 207 all of whose rejections are retryable.
	retryable := func(r gwResp) bool {
		if r.status == http.StatusServiceUnavailable {
			return true
		}
		codes := r.errorCodes()
		if r.status != http.StatusMultiStatus || len(codes) == 0 {
			return false
		}
		for _, c := range codes {
			if !Retryable(c) {
				return false
			}
		}
		return true
	}
	run := func(from, to int, want func(gwResp) bool) {
		var wg sync.WaitGroup
		errs := make(chan string, to-from)
		for w := range workers {
			wg.Go(func() {
				for r := from + w; r < to; r += workers {
					resp := send(r)
					for try := 0; try < 5 && retryable(resp) && !want(resp); try++ {
						resp = send(r)
					}
					if !want(resp) {
						errs <- fmt.Sprintf("request %d: %d %.300s", r, resp.status, resp.raw)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
	}
	// Held: the requests are answered when their produce timeout ends,
	// franz-go still holding the records it sent; those that follow take
	// arenas meanwhile.
	release := g.holdProduce()
	run(requests, requests+2*workers, func(r gwResp) bool { return r.status == http.StatusServiceUnavailable || r.status == http.StatusOK })
	release()
	// A record that joins a batch begun by a held request fails with that
	// request's context: those few requests are answered 503, or 207 when
	// only some of their records joined such batches, and sent again, as a
	// client would.
	run(0, requests, func(r gwResp) bool { return r.status == http.StatusOK })
	if t.Failed() {
		t.FailNow()
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(g.kcfg.Brokers...), kgo.ConsumeTopics(event.RawTopic(event.EdX)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	codec := g.srv.pipe.codecs[event.EdX]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stored := map[string]bool{}
	for len(stored) < requests*events {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("%d of %d events read back: %v", len(stored), requests*events, err)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			var id string
			for _, h := range rec.Headers {
				if h.Key == event.HeaderEventID {
					id = string(h.Value)
				}
			}
			line, ok := sent[id]
			if !ok {
				t.Fatalf("record at offset %d: event id %q was never sent", rec.Offset, id)
			}
			_, body, err := avro.SplitWire(rec.Value)
			if err != nil {
				t.Fatal(err)
			}
			native, err := codec.DecodeBody(body)
			if err != nil {
				t.Fatalf("event %s: %v", id, err)
			}
			m := native.(map[string]any)
			env := avro.EnvelopeFromNative(m["envelope"].(map[string]any))
			var r, i int
			fmt.Sscanf(id, "arena-%d-%d", &r, &i)
			if env.EventID != id || string(env.Raw) != line || avro.UnionString(m["username"]) != fmt.Sprintf("u%d-%d", r, i) ||
				!strings.Contains(avro.UnionString(m["event_json"]), line[strings.Index(line, `"pad"`):len(line)-2]) ||
				string(rec.Key) != env.PartitionKey {
				t.Fatalf("event %s was stored with another event's bytes: envelope id %s, key %q, raw %.120q", id, env.EventID, rec.Key, env.Raw)
			}
			// The record's time is read once per request, after received_at
			// (Kafka keeps milliseconds).
			if rec.Timestamp.Before(env.ReceivedAt.Truncate(time.Millisecond)) || rec.Timestamp.After(time.Now()) {
				t.Fatalf("event %s: record time %s, received_at %s", id, rec.Timestamp, env.ReceivedAt)
			}
			if r < requests { // the held ones may or may not be stored
				stored[id] = true
			}
		})
	}
}

// A request ingested in parts (a large archive) keeps one received_at; a
// part ingested after the producer's delivery timeout (5 s here) has passed
// since then must still be stored: the records' Kafka time, from which the
// producer counts that timeout, is read per part.
func TestLatePartOfARequestIsStored(t *testing.T) {
	g := newTestGW(t, nil)
	line := []byte(`{"username":"late","event_type":"problem_check","time":"2024-01-02T03:04:05Z","event":{"a":1}}`)
	req := &Request{Family: event.EdX, Endpoint: "/v1/events/edx", SourceKey: "src",
		Meta:  adapter.Meta{ReceivedAt: time.Now().Add(-time.Minute)},
		Items: []Item{{Raw: line}, {Raw: line}}, IndexOffset: 1000}
	res := g.srv.pipe.Ingest(context.Background(), req)
	if res.Accepted != 2 || len(res.Errors) != 0 || res.Unavailable != nil {
		t.Fatalf("a late part: accepted %d, errors %+v, unavailable %v", res.Accepted, res.Errors, res.Unavailable)
	}
}
