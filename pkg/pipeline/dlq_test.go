package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/avro/avrotest"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/kafka/kafkatest"
)

func newDLQ(t *testing.T, producer *kafka.Producer, reg prometheus.Registerer) (*DLQ, *avro.Serde) {
	t.Helper()
	_, serde := avrotest.Registry(t)
	q, err := NewDLQ(serde, producer, "v9.9.9", reg)
	if err != nil {
		t.Fatalf("NewDLQ: %v", err)
	}
	return q, serde
}

func TestDLQRecord(t *testing.T) {
	q, serde := newDLQ(t, nil, prometheus.NewRegistry())
	at := time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)

	for _, tc := range []struct {
		name string
		in   DeadLetter
		want map[string]any // decoded fields, unions unwrapped; "id" is checked apart
	}{
		{
			name: "from a request",
			in: DeadLetter{
				Stage: "gateway", Family: event.EdX, Endpoint: "/v1/events/edx", SourceKey: "k1", IP: "192.0.2.1",
				Index: 4, Reason: event.ReasonInvalidJSON, Field: "event", Message: "bad json",
				Offset: -1, Raw: []byte(`{"x":`), Time: at, Key: []byte("key"),
			},
			want: map[string]any{
				"time": at, "stage": "gateway", "component_version": "v9.9.9", "family": "edx",
				"endpoint": "/v1/events/edx", "source_key": "k1", "ip": "192.0.2.1", "index": int32(4),
				"reason": "invalid_json", "field": "event", "message": "bad json",
				"topic": nil, "partition": nil, "offset": nil, "raw": []byte(`{"x":`),
			},
		},
		{
			name: "from kafka, nil raw, no index",
			in: DeadLetter{
				Stage: "enricher", Family: event.Clicks, Index: -1, Reason: event.ReasonUndecodable, Message: "m",
				Topic: "sluice.raw.clicks", Partition: 2, Offset: 0, Raw: nil, Time: at,
			},
			want: map[string]any{
				"time": at, "stage": "enricher", "component_version": "v9.9.9", "family": "clicks",
				"endpoint": nil, "source_key": nil, "ip": nil, "index": nil,
				"reason": "undecodable", "field": nil, "message": "m",
				"topic": "sluice.raw.clicks", "partition": int32(2), "offset": int64(0), "raw": []byte{},
			},
		},
		{
			name: "no family, index 0",
			in:   DeadLetter{Stage: "gateway", Index: 0, Reason: "r", Offset: -1, Time: at},
			want: map[string]any{
				"time": at, "stage": "gateway", "component_version": "v9.9.9", "family": nil,
				"endpoint": nil, "source_key": nil, "ip": nil, "index": int32(0),
				"reason": "r", "field": nil, "message": "", "topic": nil, "partition": nil, "offset": nil, "raw": []byte{},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := q.Record(&tc.in)
			if err != nil {
				t.Fatalf("Record: %v", err)
			}
			if rec.Topic != event.DLQTopic || string(rec.Key) != string(tc.in.Key) {
				t.Fatalf("record topic %q key %q", rec.Topic, rec.Key)
			}
			headers := map[string]string{}
			for _, h := range rec.Headers {
				headers[h.Key] = string(h.Value)
			}
			if headers[event.HeaderFamily] != string(tc.in.Family) || headers["sluice-reason"] != tc.in.Reason {
				t.Fatalf("headers %v", headers)
			}
			v, codec, err := serde.Decode(context.Background(), rec.Value)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if c, _ := serde.Subject(avro.ValueSubject(event.DLQTopic)); codec.ID != c.ID {
				t.Fatalf("encoded with id %d, want the DLQ subject's %d", codec.ID, c.ID)
			}
			got := v.(map[string]any)
			id, _ := got["id"].(string)
			if u, err := uuid.Parse(id); err != nil || u.Version() != 7 {
				t.Fatalf("id %q is not a UUIDv7", id)
			}
			for k, want := range tc.want {
				g := got[k]
				if m, ok := g.(map[string]any); ok { // unwrap a union
					for _, inner := range m {
						g = inner
					}
				}
				switch w := want.(type) {
				case time.Time:
					if gt, ok := g.(time.Time); !ok || !gt.Equal(w) {
						t.Errorf("%s = %v, want %v", k, g, w)
					}
				case []byte:
					gb, ok := g.([]byte)
					if !ok || string(gb) != string(w) {
						t.Errorf("%s = %#v, want %#v", k, g, w)
					}
				default:
					if g != want {
						t.Errorf("%s = %#v, want %#v", k, g, want)
					}
				}
			}
			if len(got) != len(tc.want)+1 {
				t.Errorf("decoded %d fields, checked %d", len(got), len(tc.want)+1)
			}
		})
	}

	t.Run("zero time is stamped", func(t *testing.T) {
		before := time.Now()
		d := &DeadLetter{Stage: "s", Reason: "r", Index: -1, Offset: -1}
		rec, err := q.Record(d)
		if err != nil {
			t.Fatal(err)
		}
		v, _, err := serde.Decode(context.Background(), rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		ts := v.(map[string]any)["time"].(time.Time)
		if ts.Before(before.Truncate(time.Microsecond)) || ts.After(time.Now()) {
			t.Fatalf("time %v is not now", ts)
		}
	})
}

func TestNewDLQ(t *testing.T) {
	t.Run("needs the DLQ subject", func(t *testing.T) {
		if _, err := NewDLQ(avro.NewSerde(nil), nil, "v", prometheus.NewRegistry()); !errors.Is(err, avro.ErrUnknownSubject) {
			t.Fatalf("NewDLQ without the subject = %v", err)
		}
	})
	t.Run("shares the counter", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		a, _ := newDLQ(t, nil, reg)
		b, _ := newDLQ(t, nil, reg)
		if a.total != b.total {
			t.Fatal("a second DLQ on one registry has its own counter")
		}
	})
}

// TestDLQSend checks that sluice_dlq_records_total counts what the broker
// acknowledged and nothing else.
func TestDLQSend(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster := kafkatest.Fake(t)
	cfg := kafka.Defaults()
	cfg.Brokers = cluster.ListenAddrs()
	cfg.Partitions = 1
	if err := kafka.EnsureTopics(ctx, cfg, nil, event.DLQTopic); err != nil {
		t.Fatal(err)
	}
	producer, err := kafka.NewProducer(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = producer.Close(context.Background()) })
	reg := prometheus.NewRegistry()
	q, _ := newDLQ(t, producer, reg)
	letter := func(reason string) *DeadLetter {
		return &DeadLetter{Stage: "enricher", Family: event.EdX, Index: -1, Reason: reason, Offset: -1, Raw: []byte("x")}
	}
	count := func(reason string) float64 {
		return testutil.ToFloat64(q.total.WithLabelValues("enricher", "edx", reason))
	}

	if err := q.Send(ctx, nil); err != nil {
		t.Fatalf("Send(nil) = %v", err)
	}
	if err := q.Send(ctx, []*DeadLetter{letter("a"), letter("a"), letter("b")}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if count("a") != 2 || count("b") != 1 {
		t.Fatalf("counts a=%v b=%v after an acknowledged send, want 2 and 1", count("a"), count("b"))
	}

	// From now on the broker refuses every produce.
	cluster.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.InvalidRecord.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	err = q.Send(ctx, []*DeadLetter{letter("a"), letter("c")})
	if !errors.Is(err, kerr.InvalidRecord) || !strings.Contains(err.Error(), "2 of 2") {
		t.Fatalf("Send to a refusing broker = %v", err)
	}
	if count("a") != 2 || count("c") != 0 {
		t.Fatalf("counts a=%v c=%v after a refused send, want 2 and 0", count("a"), count("c"))
	}

}
