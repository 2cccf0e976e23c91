package avro

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

const pointSchema = `{"type":"record","name":"Point","namespace":"t","fields":[
	{"name":"x","type":"long"},
	{"name":"label","type":["null","string"],"default":null}
]}`

func mustCodec(t testing.TB, schema string) *Codec {
	t.Helper()
	c, err := NewCodec(schema)
	if err != nil {
		t.Fatalf("NewCodec: %v", err)
	}
	return c
}

func TestNewCodecErrors(t *testing.T) {
	for _, tc := range []struct{ name, schema string }{
		{"not json", `{`},
		{"unknown type", `{"type":"record","name":"R","fields":[{"name":"a","type":"nope"}]}`},
		{"empty", ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewCodec(tc.schema); err == nil {
				t.Fatal("NewCodec succeeded")
			}
		})
	}
}

func TestCodecRoundTrip(t *testing.T) {
	c := mustCodec(t, pointSchema)
	c.ID = 0x01020304
	for _, tc := range []struct {
		name   string
		native map[string]any
	}{
		{"null label", map[string]any{"x": int64(-7), "label": nil}},
		{"string label", map[string]any{"x": int64(math.MaxInt64), "label": String("héllo")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("keep")
			wire, err := c.Encode(append([]byte(nil), prefix...), tc.native)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !bytes.HasPrefix(wire, prefix) {
				t.Fatalf("Encode did not append to dst: % x", wire)
			}
			wire = wire[len(prefix):]
			if !bytes.Equal(wire[:5], []byte{0, 1, 2, 3, 4}) {
				t.Fatalf("header = % x, want 00 01 02 03 04", wire[:5])
			}
			id, body, err := SplitWire(wire)
			if err != nil || id != c.ID {
				t.Fatalf("SplitWire = %d, %v", id, err)
			}
			v, err := c.DecodeBody(body)
			if err != nil {
				t.Fatalf("DecodeBody: %v", err)
			}
			got := v.(map[string]any)
			if got["x"] != tc.native["x"] || UnionString(got["label"]) != UnionString(tc.native["label"]) {
				t.Fatalf("decoded %v, want %v", got, tc.native)
			}
			if err := c.Validate(tc.native); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}

	t.Run("trailing bytes", func(t *testing.T) {
		wire, err := c.Encode(nil, map[string]any{"x": int64(1), "label": nil})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.DecodeBody(append(wire[5:], 0)); err == nil || !strings.Contains(err.Error(), "trailing") {
			t.Fatalf("DecodeBody with a trailing byte = %v", err)
		}
	})
	t.Run("short body", func(t *testing.T) {
		if _, err := c.DecodeBody(nil); err == nil {
			t.Fatal("DecodeBody(nil) succeeded")
		}
	})
	t.Run("invalid native", func(t *testing.T) {
		bad := map[string]any{"x": "not a long", "label": nil}
		if err := c.Validate(bad); err == nil {
			t.Fatal("Validate succeeded")
		}
		if out, err := c.Encode([]byte("dst"), bad); err == nil || out != nil {
			t.Fatalf("Encode = %q, %v", out, err)
		}
	})
}

func TestSplitWire(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     []byte
		wantID int
		body   []byte
		err    error
	}{
		{"empty", nil, 0, nil, ErrNotConfluent},
		{"short", []byte{0, 0, 0, 1}, 0, nil, ErrNotConfluent},
		{"wrong magic", []byte{1, 0, 0, 0, 1, 2}, 0, nil, ErrNotConfluent},
		{"json", []byte(`{"a":1}`), 0, nil, ErrNotConfluent},
		{"header only", []byte{0, 0, 0, 0, 9}, 9, []byte{}, nil},
		{"with body", []byte{0, 0, 0, 1, 0, 0xAA, 0xBB}, 256, []byte{0xAA, 0xBB}, nil},
		{"large id", []byte{0, 0x7f, 0xff, 0xff, 0xff}, math.MaxInt32, []byte{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, body, err := SplitWire(tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if id != tc.wantID || !bytes.Equal(body, tc.body) {
				t.Fatalf("SplitWire = %d, % x; want %d, % x", id, body, tc.wantID, tc.body)
			}
		})
	}
}

// allKinds has a field of every Avro type and of the logical types Sluice
// uses, plain and inside unions.
const allKinds = `{"type":"record","name":"All","namespace":"t","fields":[
	{"name":"n","type":"null"},
	{"name":"b","type":"boolean"},
	{"name":"i","type":"int"},
	{"name":"l","type":"long"},
	{"name":"f","type":"float"},
	{"name":"d","type":"double"},
	{"name":"s","type":"string"},
	{"name":"text","type":"bytes"},
	{"name":"binary","type":"bytes"},
	{"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]}},
	{"name":"fx","type":{"type":"fixed","name":"Two","size":2}},
	{"name":"micros","type":{"type":"long","logicalType":"timestamp-micros"}},
	{"name":"millis","type":{"type":"long","logicalType":"timestamp-millis"}},
	{"name":"arr","type":{"type":"array","items":"long"}},
	{"name":"m","type":{"type":"map","values":"string"}},
	{"name":"nested","type":{"type":"record","name":"Inner","fields":[
		{"name":"x","type":["null","string"]},
		{"name":"deeper","type":["null",{"type":"record","name":"other.Deep","fields":[{"name":"y","type":"int"}]}]}
	]}},
	{"name":"u_null","type":["null","string"]},
	{"name":"u_str","type":["null","string"]},
	{"name":"u_long","type":["null","long","string"]},
	{"name":"u_rec","type":["null","Inner"]},
	{"name":"u_ts","type":["null",{"type":"long","logicalType":"timestamp-micros"}]},
	{"name":"u_tsms","type":["null",{"type":"long","logicalType":"timestamp-millis"}]},
	{"name":"u_arr","type":["null",{"type":"array","items":"Inner"}]},
	{"name":"u_map","type":["null",{"type":"map","values":["null","double"]}]},
	{"name":"u_enum","type":["null","Color"]},
	{"name":"u_bytes","type":["null","bytes"]}
]}`

func TestAppendJSONAllKinds(t *testing.T) {
	c := mustCodec(t, allKinds)
	// Not UTC, and with sub-microsecond digits the codec drops.
	cet := time.FixedZone("CET", 3600)
	micros := time.Date(2025, 3, 4, 6, 6, 7, 123456789, cet)
	millis := time.Date(2025, 3, 4, 6, 6, 7, 987654321, cet)
	native := map[string]any{
		"n":       nil,
		"b":       true,
		"i":       int32(-42),
		"l":       int64(1) << 53,
		"f":       float32(0.1),
		"d":       1433188255.5,
		"s":       "a\"b\\c\n",
		"text":    []byte("plain text"),
		"binary":  []byte{0xff, 0x00, 0x80},
		"e":       "GREEN",
		"fx":      []byte("hi"),
		"micros":  micros,
		"millis":  millis,
		"arr":     []any{int64(1), int64(2), int64(3)},
		"m":       map[string]any{"b": "2", "a": "1", "c": "3"},
		"nested":  map[string]any{"x": String("in"), "deeper": Record("other.Deep", map[string]any{"y": int32(5)})},
		"u_null":  nil,
		"u_str":   String("s"),
		"u_long":  Long(9),
		"u_rec":   Record("t.Inner", map[string]any{"x": nil, "deeper": nil}),
		"u_ts":    TimeMicros(micros),
		"u_tsms":  map[string]any{"long.timestamp-millis": millis},
		"u_arr":   Array([]any{map[string]any{"x": String("a0"), "deeper": nil}}),
		"u_map":   Map(map[string]any{"z": Double(1e9), "y": nil, "x": Double(math.NaN())}),
		"u_enum":  Record("t.Color", nil), // replaced below
		"u_bytes": Bytes([]byte("\xe2\x80\xa8")),
	}
	native["u_enum"] = map[string]any{"t.Color": "RED"}

	wire, err := c.Encode(nil, native)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	decoded, err := c.DecodeBody(wire[5:])
	if err != nil {
		t.Fatalf("DecodeBody: %v", err)
	}
	prefix := []byte(`[`)
	out, err := c.AppendJSON(append([]byte(nil), prefix...), decoded)
	if err != nil {
		t.Fatalf("AppendJSON: %v", err)
	}
	if !bytes.HasPrefix(out, prefix) {
		t.Fatalf("AppendJSON did not append to dst: %s", out)
	}
	got := string(out[len(prefix):])
	want := `{"n":null,"b":true,"i":-42,"l":9007199254740992,"f":0.1,"d":1433188255.5,` +
		`"s":"a\"b\\c\n","text":"plain text","binary":{"base64":"/wCA"},"e":"GREEN","fx":"hi",` +
		`"micros":"2025-03-04T05:06:07.123456Z","millis":"2025-03-04T05:06:07.987Z",` +
		`"arr":[1,2,3],"m":{"a":"1","b":"2","c":"3"},` +
		`"nested":{"x":"in","deeper":{"y":5}},` +
		`"u_null":null,"u_str":"s","u_long":9,"u_rec":{"x":null,"deeper":null},` +
		`"u_ts":"2025-03-04T05:06:07.123456Z","u_tsms":"2025-03-04T05:06:07.987Z",` +
		`"u_arr":[{"x":"a0","deeper":null}],"u_map":{"x":null,"y":null,"z":1000000000},` +
		`"u_enum":"RED","u_bytes":"\u2028"}`
	if got != want {
		t.Fatalf("AppendJSON\n got: %s\nwant: %s", got, want)
	}
	if !json.Valid([]byte(got)) {
		t.Fatalf("not valid JSON: %s", got)
	}
}

// TestAppendJSONMapOrder checks that a map renders the same bytes every
// time: Go randomises map iteration, and sinks write these lines to files
// that are compared and deduplicated byte for byte.
func TestAppendJSONMapOrder(t *testing.T) {
	c := mustCodec(t, `{"type":"map","values":"long"}`)
	m := map[string]any{}
	for _, k := range strings.Split("q w e r t y u i o p a s d f g h j k l z x c v b n m", " ") {
		m[k] = int64(len(k))
	}
	first, err := c.AppendJSON(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, err := c.AppendJSON(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatalf("map rendered differently:\n%s\n%s", first, again)
		}
	}
	if !strings.HasPrefix(string(first), `{"a":1,"b":1,"c":1`) {
		t.Fatalf("keys not sorted: %s", first)
	}
	empty, err := c.AppendJSON(nil, map[string]any{})
	if err != nil || string(empty) != "{}" {
		t.Fatalf("empty map = %s, %v", empty, err)
	}
}

func TestAppendJSONFloats(t *testing.T) {
	double := mustCodec(t, `"double"`)
	float := mustCodec(t, `"float"`)
	for _, tc := range []struct {
		name string
		in   any
		want string
	}{
		{"epoch seconds", 1433188255.5, "1433188255.5"},
		{"1e9 plain", 1e9, "1000000000"},
		{"1e20 plain", 1e20, "100000000000000000000"},
		{"1e21 exponent", 1e21, "1e+21"},
		{"small plain", 0.000001, "0.000001"},
		{"tiny exponent", 1e-7, "1e-07"},
		{"zero", 0.0, "0"},
		{"negative", -2.25, "-2.25"},
		{"NaN", math.NaN(), "null"},
		{"+Inf", math.Inf(1), "null"},
		{"-Inf", math.Inf(-1), "null"},
		{"float32 0.1", float32(0.1), "0.1"},
		{"float32 1e9", float32(1e9), "1000000000"},
		{"float32 16777217", float32(16777216), "16777216"},
		{"float32 NaN", float32(math.NaN()), "null"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := double
			if _, ok := tc.in.(float32); ok {
				c = float
			}
			got, err := c.AppendJSON(nil, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("AppendJSON(%v) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestAppendJSONStrings(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		back           string // what a JSON parser reads back; in when ""
	}{
		{"plain", "hello", `"hello"`, ""},
		{"empty", "", `""`, ""},
		{"quote and backslash", `say "hi" \o/`, `"say \"hi\" \\o/"`, ""},
		{"newline tab cr", "a\nb\tc\rd", `"a\nb\tc\rd"`, ""},
		{"control chars", "\x00\x01\x08\x0c\x1f", `"\u0000\u0001\u0008\u000c\u001f"`, ""},
		{"del kept", "\x7f", "\"\x7f\"", ""},
		{"html kept", "<a href='x'>&</a>", `"<a href='x'>&</a>"`, ""},
		{"line separators", "a\u2028b\u2029c", `"a\u2028b\u2029c"`, ""},
		{"multibyte", "héllo 世界 🎉", `"héllo 世界 🎉"`, ""},
		{"invalid utf-8", "a\xffb", `"a\ufffdb"`, "a\ufffdb"},
		{"truncated rune", "x\xe4\xb8", `"x\ufffd\ufffd"`, "x\ufffd\ufffd"},
		{"surrogate half", "\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`, "\ufffd\ufffd\ufffd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := appendString([]byte("x"), tc.in)
			if string(got[1:]) != tc.want {
				t.Fatalf("appendString(%q) = %s, want %s", tc.in, got[1:], tc.want)
			}
			var back string
			if err := json.Unmarshal(got[1:], &back); err != nil {
				t.Fatalf("not valid JSON: %v", err)
			}
			want := tc.back
			if want == "" {
				want = tc.in
			}
			if back != want {
				t.Fatalf("read back %q, want %q", back, want)
			}
		})
	}
}

func TestAppendJSONBytes(t *testing.T) {
	c := mustCodec(t, `"bytes"`)
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"utf-8 text", []byte(`{"k":"v"}`), `"{\"k\":\"v\"}"`},
		{"empty", []byte{}, `""`},
		{"invalid utf-8", []byte{0xc3, 0x28}, `{"base64":"wyg="}`},
		{"latin-1", []byte("caf\xe9"), `{"base64":"Y2Fm6Q=="}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.AppendJSON(nil, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("AppendJSON = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestAppendJSONErrors(t *testing.T) {
	c := mustCodec(t, pointSchema)
	for _, tc := range []struct {
		name   string
		native any
	}{
		{"record is not a map", "nope"},
		{"union value not a map", map[string]any{"x": int64(1), "label": "bare"}},
		{"union map with two keys", map[string]any{"x": int64(1), "label": map[string]any{"string": "a", "null": nil}}},
		{"unknown union branch", map[string]any{"x": int64(1), "label": map[string]any{"long": int64(1)}}},
		{"unsupported scalar", map[string]any{"x": struct{}{}, "label": nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if out, err := c.AppendJSON(nil, tc.native); err == nil {
				t.Fatalf("AppendJSON succeeded: %s", out)
			}
		})
	}
}

func TestParseShapeNames(t *testing.T) {
	// Named types resolve by full name, by short name within their
	// namespace, and recursively.
	c := mustCodec(t, `{"type":"record","name":"Node","namespace":"a.b","fields":[
		{"name":"v","type":"int"},
		{"name":"next","type":["null","Node"],"default":null},
		{"name":"same","type":["null","a.b.Node"],"default":null}
	]}`)
	native := map[string]any{"v": int32(1), "next": Record("a.b.Node", map[string]any{"v": int32(2), "next": nil, "same": nil}), "same": nil}
	wire, err := c.Encode(nil, native)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.DecodeBody(wire[5:])
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.AppendJSON(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v":1,"next":{"v":2,"next":null,"same":null},"same":null}`; string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
