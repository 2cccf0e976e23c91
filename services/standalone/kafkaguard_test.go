package standalone

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// frame is one request frame: the size prefix, the api key and then body
// (the rest of the request header and the request).
func frame(key int16, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(2+len(body)))
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	return append(b, body...)
}

// prefix is a frame's first bytes: a size and an api key, no body.
func prefix(size uint32, key int16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint32(nil, size), uint16(key))
}

// goodStream holds several valid frames of different sizes, the smallest a
// bare version 0 request header.
func goodStream() []byte {
	var s []byte
	s = append(s, frame(18, []byte{0, 3, 0, 0, 0, 1, 0, 4, 'k', 'c', 'a', 't', 0, 0})...) // ApiVersions
	s = append(s, frame(7, []byte{0, 0, 0, 0, 0, 2})...)                                  // minimum size
	s = append(s, frame(3, bytes.Repeat([]byte{0xab}, 300))...)                           // Metadata
	s = append(s, frame(0, bytes.Repeat([]byte{0x47}, 1000))...)                          // Produce; body bytes look like "GGGG"
	return s
}

func TestFrameCheckerAcceptsSplitFrames(t *testing.T) {
	s := goodStream()
	whole := frameChecker{}
	if r := whole.scan(s); r != nil {
		t.Fatalf("all frames in one read: refused: %s", r)
	}
	for i := 0; i <= len(s); i++ {
		var f frameChecker
		if r := f.scan(s[:i]); r != nil {
			t.Fatalf("split at %d: first part refused: %s", i, r)
		}
		if r := f.scan(s[i:]); r != nil {
			t.Fatalf("split at %d: second part refused: %s", i, r)
		}
		if f.got != 0 || f.skip != 0 {
			t.Fatalf("split at %d: stream ends mid-frame (got %d, skip %d)", i, f.got, f.skip)
		}
	}
	var f frameChecker
	for i := range s {
		if r := f.scan(s[i : i+1]); r != nil {
			t.Fatalf("byte by byte: refused at byte %d: %s", i, r)
		}
	}
}

func TestFrameCheckerBound(t *testing.T) {
	// A frame of exactly maxRequestBytes is accepted, and the frame after
	// it is checked again.
	var f frameChecker
	if r := f.scan(prefix(maxRequestBytes, 0)); r != nil {
		t.Fatalf("size at the bound refused: %s", r)
	}
	chunk := make([]byte, 1<<20)
	for left := maxRequestBytes - 2; left > 0; left -= len(chunk) {
		if r := f.scan(chunk[:min(left, len(chunk))]); r != nil {
			t.Fatalf("body of a frame at the bound refused: %s", r)
		}
	}
	if r := f.scan(frame(18, make([]byte, 10))); r != nil {
		t.Fatalf("frame after one at the bound refused: %s", r)
	}
	if r := f.scan(prefix(maxRequestBytes+1, 0)); r == nil || r.size != maxRequestBytes+1 {
		t.Fatalf("size one above the bound: refusal %v", r)
	}
}

func TestFrameCheckerRefuses(t *testing.T) {
	cases := []struct {
		name   string
		bad    []byte
		size   int32
		hasKey bool
	}{
		{"http", []byte("GET / HTTP/1.1\r\n\r\n"), 0x47455420, false},
		{"tls client hello", []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}, 0x16030102, false},
		{"over the bound", prefix(maxRequestBytes+1, 0), maxRequestBytes + 1, false},
		{"negative", prefix(0xffffffff, 0), -1, false},
		{"most negative", prefix(0x80000000, 0), -1 << 31, false},
		{"below a request header", prefix(minRequestBytes-1, 18), minRequestBytes - 1, false},
		{"zero", prefix(0, 18), 0, false},
		{"unknown api key", prefix(10, 0x7fff), 10, true},
		{"negative api key", prefix(10, -1), 10, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			good := goodStream()
			s := append(append([]byte{}, good...), tc.bad...)
			// The byte that decides: the last of the size prefix, or of
			// the api key.
			decisive := len(good) + 3
			if tc.hasKey {
				decisive = len(good) + 5
			}
			for i := 0; i <= len(s); i++ {
				var f frameChecker
				r1 := f.scan(s[:i])
				var r2 *refusal
				if r1 == nil {
					r2 = f.scan(s[i:])
				}
				switch {
				case i > decisive && r1 == nil:
					t.Fatalf("split at %d: first part, which holds the bad frame's header, accepted", i)
				case i <= decisive && r1 != nil:
					t.Fatalf("split at %d: first part, which ends before the decisive byte, refused: %s", i, r1)
				}
				r := r1
				if r == nil {
					r = r2
				}
				if r == nil {
					t.Fatalf("split at %d: accepted", i)
				}
				if r.size != tc.size || r.hasKey != tc.hasKey {
					t.Fatalf("split at %d: refusal %s, want size %d (api key read: %v)", i, r, tc.size, tc.hasKey)
				}
			}
		})
	}
}

// TestEmbeddedKafkaRefusesOtherProtocols starts the embedded broker as Build
// does, sends it an HTTP request and a frame with an unknown api key, and
// checks that each connection is closed at once without a large allocation,
// and that a Kafka client still produces and consumes.
func TestEmbeddedKafkaRefusesOtherProtocols(t *testing.T) {
	cfg := Defaults()
	cfg.DataDir = t.TempDir()
	cfg.KafkaAddr = "127.0.0.1:0"
	core, logs := observer.New(zap.WarnLevel)
	k := &embeddedKafka{opts: kafkaOpts(&cfg, zap.New(core))}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := k.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer k.stop()
	addr := k.c.ListenAddrs()[0]

	send := func(what string, b []byte) {
		t.Helper()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, rerr := conn.Read(make([]byte, 64))
		took := time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		t.Logf("%s: read returned %v after %v; heap grew by %.1f MB", what, rerr, took.Round(time.Millisecond), float64(growth)/1e6)
		var ne net.Error
		if rerr == nil || errors.As(rerr, &ne) && ne.Timeout() {
			t.Errorf("%s: the broker did not close the connection within 3s (read: %v)", what, rerr)
		}
		if growth > 50<<20 {
			t.Errorf("%s: heap grew by %d bytes", what, growth)
		}
	}
	send("HTTP request", []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
	// Without the guard this frame crashes the process.
	send("unknown api key", append(prefix(10, 0x7fff), 0, 0, 0, 0, 0, 1, 0, 0))

	warns := logs.FilterMessage("embedded kafka refused a request and closed the connection").All()
	if len(warns) != 2 {
		t.Fatalf("%d refusals logged, want one per connection (2): %v", len(warns), logs.All())
	}
	if f := warns[0].ContextMap(); f["size"] != int32(0x47455420) || f["remote"] == "" {
		t.Errorf("HTTP refusal logged with %v, want the remote address and size %d", f, 0x47455420)
	}

	// A Kafka client still works, with a record of 600 KB, whose produce
	// request arrives over many reads. Both records have one key, so one
	// partition and their order.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("guard"), kgo.ConsumeTopics("guard"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "guard"); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("GET / "), 100_000)
	for _, v := range [][]byte{[]byte("small"), big} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: v}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	var got [][]byte
	for len(got) < 2 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of 2 records: %v", len(got), err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, r.Value) })
	}
	if string(got[0]) != "small" || !bytes.Equal(got[1], big) {
		t.Fatalf("consumed %q and %d bytes, want \"small\" and %d bytes", got[0], len(got[1]), len(big))
	}
	if n := logs.Len(); n != 2 {
		t.Fatalf("%d warnings, want only the 2 refusals: %v", n, logs.All())
	}
}
