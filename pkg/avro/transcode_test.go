package avro

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/schemas"
)

// randomNative returns a random native value of n, as goavro takes it.
func randomNative(r *rand.Rand, n *node, depth int) any {
	switch n.kind {
	case "record":
		m := map[string]any{}
		for _, f := range n.fields {
			m[f.name] = randomNative(r, f.node, depth+1)
		}
		return m
	case "union":
		b := n.branches[r.IntN(len(n.branches))]
		if depth > 6 { // keep recursive schemas finite: prefer null
			for _, x := range n.branches {
				if x.kind == "null" {
					b = x
				}
			}
		}
		if b.kind == "null" {
			return nil
		}
		return map[string]any{b.name: randomNative(r, b, depth+1)}
	case "array":
		items := make([]any, r.IntN(4))
		for i := range items {
			items[i] = randomNative(r, n.items, depth+1)
		}
		return items
	case "map":
		m := map[string]any{}
		for i := r.IntN(4); i > 0; i-- {
			m[randomString(r)] = randomNative(r, n.items, depth+1)
		}
		return m
	case "null":
		return nil
	case "boolean":
		return r.IntN(2) == 1
	case "int":
		return int32(r.Int64N(1<<32) - 1<<31)
	case "long":
		v := r.Int64N(1<<62) - 1<<61
		switch n.logical {
		case "timestamp-micros":
			return time.UnixMicro(v % (1 << 50)).UTC()
		case "timestamp-millis":
			return time.UnixMilli(v % (1 << 45)).UTC()
		}
		return v
	case "float":
		return float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(12)-4)))
	case "double":
		switch r.IntN(6) {
		case 0:
			return 1433188255.5
		case 1:
			return 0.0
		}
		return r.NormFloat64() * math.Pow(10, float64(r.IntN(30)-10))
	case "string":
		return randomString(r)
	case "bytes":
		if r.IntN(2) == 0 {
			return []byte(randomString(r))
		}
		b := make([]byte, r.IntN(8))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return b
	}
	panic("unexpected kind " + n.kind)
}

func randomString(r *rand.Rand) string {
	parts := []string{"", "a", "é", "\"", "\\", "\n", "\x01", "\u2028", "日本", "<tag>", " ", "x"}
	var b strings.Builder
	for i := r.IntN(6); i > 0; i-- {
		b.WriteString(parts[r.IntN(len(parts))])
	}
	return b.String()
}

// TestTranscoderMatchesAppendJSON renders random values of every Sluice
// schema both ways and requires the same bytes.
func TestTranscoderMatchesAppendJSON(t *testing.T) {
	names := append(append([]string{}, schemas.Families...), schemas.DLQ)
	r := rand.New(rand.NewPCG(1, 2))
	for _, name := range names {
		text, err := schemas.Latest(name)
		if err != nil {
			t.Fatal(err)
		}
		c := mustCodec(t, text)
		tr, err := c.NewTranscoder("envelope.received_at", "envelope.client_time", "envelope.event_id", "fields", "time", "nope.x")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		vals := make([]any, 6)
		for i := 0; i < 300; i++ {
			native := randomNative(r, c.shape, 0)
			body, err := c.codec.BinaryFromNative(nil, native)
			if err != nil {
				t.Fatalf("%s: encoding a random value: %v", name, err)
			}
			decoded, err := c.DecodeBody(body)
			if err != nil {
				t.Fatal(err)
			}
			want, err := c.AppendJSON(nil, decoded)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tr.AppendJSON([]byte("prefix"), body, vals)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !bytes.Equal(got[6:], want) {
				t.Fatalf("%s: transcoded\n%s\nAppendJSON\n%s", name, got[6:], want)
			}
			if m, ok := decoded.(map[string]any); ok {
				if env, ok := m["envelope"].(map[string]any); ok {
					if vals[0] != env["received_at"] || vals[2] != env["event_id"] {
						t.Fatalf("%s: captured %v %v, want %v %v", name, vals[0], vals[2], env["received_at"], env["event_id"])
					}
					if ct := UnionTime(env["client_time"]); !ct.Equal(timeOr(vals[1])) {
						t.Fatalf("%s: client_time captured %v, want %v", name, vals[1], ct)
					}
				}
				if name == "hec" {
					if f, ok := unionBranch(m["fields"], "map").(map[string]any); ok {
						got, _ := vals[3].(map[string]any)
						if len(got) != len(f) {
							t.Fatalf("hec fields captured %v, want %v", got, f)
						}
					} else if vals[3] != nil {
						t.Fatalf("hec fields captured %v, want nil", vals[3])
					}
				}
			}
			if vals[5] != nil {
				t.Fatal("absent path captured")
			}
		}
	}
}

func timeOr(v any) time.Time {
	t, _ := v.(time.Time)
	return t
}

func TestTranscoderRejects(t *testing.T) {
	if _, err := mustCodec(t, `{"type":"record","name":"E","fields":[{"name":"c","type":{"type":"enum","name":"C","symbols":["A"]}}]}`).NewTranscoder(); err == nil {
		t.Error("enum accepted")
	}
	if _, err := mustCodec(t, `{"type":"record","name":"D","fields":[{"name":"d","type":{"type":"int","logicalType":"date"}}]}`).NewTranscoder(); err == nil {
		t.Error("date accepted")
	}
	c := mustCodec(t, pointSchema)
	tr, err := c.NewTranscoder("label")
	if err != nil {
		t.Fatal(err)
	}
	body, err := c.codec.BinaryFromNative(nil, map[string]any{"x": int64(3), "label": map[string]any{"string": "hi"}})
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]any, 1)
	for _, bad := range [][]byte{body[:len(body)-1], append(append([]byte{}, body...), 0), {0x06, 0x04}, {0x06, 0x09}} {
		out, err := tr.AppendJSON([]byte("keep"), bad, vals)
		if !errors.Is(err, ErrTranscode) || string(out) != "keep" {
			t.Errorf("body %x: %q, %v", bad, out, err)
		}
	}
	out, err := tr.AppendJSON(nil, body, vals)
	if err != nil || string(out) != `{"x":3,"label":"hi"}` || vals[0] != "hi" {
		t.Errorf("%s %v %v", out, vals, err)
	}
}

// BenchmarkDecode compares the two ways to render an event as JSON.
func BenchmarkDecode(b *testing.B) {
	text, err := schemas.Latest("clicks")
	if err != nil {
		b.Fatal(err)
	}
	c := mustCodec(b, text)
	r := rand.New(rand.NewPCG(3, 4))
	body, err := c.codec.BinaryFromNative(nil, randomNative(r, c.shape, 0))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("native+AppendJSON", func(b *testing.B) {
		var dst []byte
		for i := 0; i < b.N; i++ {
			v, err := c.DecodeBody(body)
			if err != nil {
				b.Fatal(err)
			}
			dst, _ = c.AppendJSON(dst[:0], v)
		}
	})
	b.Run("transcoder", func(b *testing.B) {
		tr, err := c.NewTranscoder("envelope.received_at", "envelope.client_time")
		if err != nil {
			b.Fatal(err)
		}
		vals := make([]any, 2)
		var dst []byte
		for i := 0; i < b.N; i++ {
			if dst, err = tr.AppendJSON(dst[:0], body, vals); err != nil {
				b.Fatal(err)
			}
		}
	})
}
