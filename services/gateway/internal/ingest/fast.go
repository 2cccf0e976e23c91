package ingest

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/gateway/internal/adapter"
)

// Fast paths. A family adapter that implements adapter.FastAdapter writes
// the Avro body of common events itself, from the raw bytes; the pipeline
// then writes the envelope with avro.AppendEnvelope and skips the generic
// decode and the record maps. An event the fast path does not take goes
// the general way (decode, Adapt, encode), which also gives every
// rejection. Before a fast path is used, checkFast compares the two paths
// on sample events with the family's schema: a schema the fast path does
// not follow turns it off (logged), rather than storing records that
// differ from what the general path would store.

// fastSamples are events each fast path is checked on at start: real edX
// lines (edx-platform and edx-analytics-pipeline test data, as in
// adapter/testdata/edx) covering the shapes it takes.
var fastSamples = map[event.Family][]string{
	event.EdX: {
		`{"username": "u\u00e9", "event_type": "problem_check", "ip": "10.0.2.2", "agent": "Mozilla/5.0", "host": "localhost:8000", "referer": "http://localhost:8000/courses/x", "accept_language": "en-US,en;q=0.8", "event": "input_a=1&input_b=2", "event_source": "browser", "context": {"user_id": 6, "org_id": "edX", "course_id": "course-v1:edX+DemoX+Demo_Course", "path": "/event", "course_user_tags": {"xblock.partition_service.partition_0": "1"}, "module": {"display_name": "Problem", "usage_key": "block-v1:edX+DemoX+Demo_Course+type@problem+block@p"}, "asides": {}, "received_at": "2017-07-28T03:42:23.123456+00:00"}, "time": "2017-07-28T03:42:23.456789+00:00", "page": "http://localhost:8000/courses/x", "event_id": "e-1", "extra_member": [1, {"b": null}]}`,
		`{"username":"","event_type":"/courses/x/","ip":"","agent":"","host":"h","referer":"","accept_language":"","event":"{\"POST\": {}, \"GET\": {\"a\": [\"1\"]}}","event_source":"server","context":{"user_id":"","org_id":"","course_id":"","path":"/x"},"time":"2014-01-01T00:00:00Z","page":null,"session":"s"}`,
		`{"name":"edx.video.played","event_type":"play_video","event":{"id":"v","currentTime":1.5},"context":{"user_id":null,"received_at":"not a time"},"time":"{{ start_date }}T12:00:00"}`,
	},
}

// checkFast reports whether fa's fast path agrees with its general path
// on every sample: the same records and the same outputs.
func checkFast(fa adapter.FastAdapter, codec *avro.Codec, samples []string) error {
	p := &Pipeline{keepRaw: true, version: "check", limits: Limits{MaxEventBytes: 1 << 20, MaxDepth: 64}}
	meta := &adapter.Meta{ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), IP: "192.0.2.1", UserAgent: "ua"}
	req := &Request{Family: fa.Family(), Endpoint: "/check", SourceKey: "check", BatchID: "check"}
	for i, s := range samples {
		fast, took, ign := p.buildFast(nil, fa, codec, req, meta, i, &Item{Raw: []byte(s)})
		if !took || ign != nil {
			return fmt.Errorf("sample %d: the fast path did not build it", i)
		}
		slow, _, rj := p.build(nil, codec, fa.Adapt, req, meta, i, &Item{Raw: []byte(s)})
		if rj != nil {
			return fmt.Errorf("sample %d: the general path rejected it: %s", i, rj.Message)
		}
		if err := sameRecord(codec, fast, slow); err != nil {
			return fmt.Errorf("sample %d: %w", i, err)
		}
	}
	return nil
}

// sameRecord reports whether two records of codec's schema hold the same
// key, headers and decoded value (maps compare by content: their order in
// the bytes is free).
func sameRecord(codec *avro.Codec, a, b *kgo.Record) error {
	if string(a.Key) != string(b.Key) || !reflect.DeepEqual(a.Headers, b.Headers) || a.Topic != b.Topic {
		return fmt.Errorf("key, headers or topic differ: %q %v / %q %v", a.Key, a.Headers, b.Key, b.Headers)
	}
	decode := func(v []byte) (any, error) {
		_, body, err := avro.SplitWire(v)
		if err != nil {
			return nil, err
		}
		return codec.DecodeBody(body)
	}
	na, errA := decode(a.Value)
	nb, errB := decode(b.Value)
	if err := errors.Join(errA, errB); err != nil {
		return err
	}
	if !reflect.DeepEqual(na, nb) {
		return fmt.Errorf("the records differ:\nfast    %v\ngeneral %v", na, nb)
	}
	return nil
}

// fastBufs holds scratch buffers for fast-path bodies.
var fastBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// buildFast builds item i with fa's fast path. took is false when the fast
// path leaves the event to the general path (nothing is then decided).
// A drop rule is applied after the fast path read the event, on the raw
// bytes (adapter.Input.TopString).
func (p *Pipeline) buildFast(ar *recArena, fa adapter.FastAdapter, codec *avro.Codec, req *Request, meta *adapter.Meta,
	i int, it *Item) (rec *kgo.Record, took bool, ign *Ignored) {
	in := ar.input()
	*in = adapter.Input{Raw: it.Raw, Meta: *meta, MaxDepth: p.limits.MaxDepth}
	bp := fastBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 256<<10 {
			fastBufs.Put(bp)
		}
	}()
	fo, ok := fa.AdaptFast(in, (*bp)[:0])
	if !ok {
		return nil, false, nil
	}
	defer fo.Release()
	*bp = fo.Body[:0]
	if req.Drop != nil {
		if rule, msg := req.Drop(in); rule != "" {
			return nil, true, &Ignored{Index: i, Rule: rule, Message: msg}
		}
	}
	if fo.Unknown {
		p.m.unknownInc(req.Family)
	}
	env := p.envelope(req, meta, i, it, &fo.Output, it.Raw)
	value := ar.bytes(5 + len(fo.Body) + len(env.Raw) + len(env.EventID) + len(env.PartitionKey) + 256)
	value = append(value, 0, byte(codec.ID>>24), byte(codec.ID>>16), byte(codec.ID>>8), byte(codec.ID))
	value = avro.AppendEnvelope(value, &env)
	value = append(value, fo.Body...)
	return p.record(ar, req, &env, ar.used(value)), true, nil
}
