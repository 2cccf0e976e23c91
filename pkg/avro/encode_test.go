package avro

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/schemas"
)

// The encoder is tested against goavro as the oracle: for every value,
// both must agree on whether it encodes, on the bytes when it does, and on
// the field path of the error when it does not. Values use bare union
// values freely; toGoavro rewrites them to goavro's one-key form for the
// oracle, with its own reading of the bare-value rule (bareBranch).

// extraKinds has what Sluice's schemas lack: enum, fixed, float, the
// other logical types, recursion, unions mixing int and long or holding a
// record and a map, defaults of every kind, a field-level logical type and
// a field-level logical type.
const extraKinds = `{"type":"record","name":"X","namespace":"t.x","fields":[
	{"name":"d","type":{"type":"int","logicalType":"date"}},
	{"name":"tms","type":{"type":"int","logicalType":"time-millis"}},
	{"name":"tus","type":{"type":"long","logicalType":"time-micros"}},
	{"name":"uuid","type":{"type":"string","logicalType":"uuid"}},
	{"name":"lts","type":"long","logicalType":"timestamp-micros"},
	{"name":"il","type":["null","int","long"]},
	{"name":"onlyint","type":["int","null"],"default":7},
	{"name":"onlyfloat","type":["null","float"]},
	{"name":"fd","type":["float","double"]},
	{"name":"ue","type":["null",{"type":"enum","name":"Suit","symbols":["S","H","D","C","A2","A3","A4","A5","A6","A7"]}],"default":null},
	{"name":"uf","type":["null",{"type":"fixed","name":"F4","size":4}]},
	{"name":"ud","type":["null",{"type":"int","logicalType":"date"}]},
	{"name":"ums","type":["null",{"type":"long","logicalType":"timestamp-millis"},{"type":"long","logicalType":"timestamp-micros"}]},
	{"name":"ubool","type":["null","boolean"]},
	{"name":"rec_or_map","type":["null",{"type":"record","name":"One","fields":[{"name":"v","type":"long","default":1}]},{"type":"map","values":"long"}]},
	{"name":"two_recs","type":["null","One",{"type":"record","name":"Two","fields":[{"name":"w","type":"string","default":"w"},{"name":"z","type":"int","default":0}]}]},
	{"name":"arr_u","type":{"type":"array","items":["null","string"]},"default":[]},
	{"name":"arr_arr","type":{"type":"array","items":{"type":"array","items":"long"}}},
	{"name":"map_u","type":{"type":"map","values":["null","long","string"]}},
	{"name":"inner","type":{"type":"record","name":"Inner","namespace":"t.y","fields":[
		{"name":"s","type":["null","t.x.Suit"],"default":null},
		{"name":"one","type":["null","t.x.One"],"default":null},
		{"name":"self","type":["null","Inner"],"default":null}
	]}},
	{"name":"next","type":["null","X"],"default":null},
	{"name":"kids","type":{"type":"array","items":"X"},"default":[]},
	{"name":"def_b","type":"boolean","default":true},
	{"name":"def_by","type":"bytes","default":"\u00ffab"},
	{"name":"def_f","type":"float","default":1.5},
	{"name":"def_d","type":"double","default":-2.25},
	{"name":"def_i","type":"int","default":-3},
	{"name":"def_l","type":"long","default":1e15},
	{"name":"def_s","type":"string","default":"s"},
	{"name":"def_e","type":"Suit","default":"H"},
	{"name":"def_fx","type":"F4","default":"abcd"},
	{"name":"def_ts","type":{"type":"long","logicalType":"timestamp-micros"},"default":1000},
	{"name":"def_rec","type":"One","default":{"v":5}},
	{"name":"def_map","type":{"type":"map","values":"int"},"default":{"a":1}},
	{"name":"def_arr","type":{"type":"array","items":"double"},"default":[1,2.5]},
	{"name":"def_u","type":["string","null"],"default":"x"},
	{"name":"def_unull","type":["null","string"],"default":"null"}
]}`

type namedSchema struct {
	name, text string
}

// encoderSchemas returns every version of every Sluice schema, composed as
// it is registered, then the test schemas.
func encoderSchemas(t testing.TB) []namedSchema {
	t.Helper()
	names, err := schemas.Names()
	if err != nil {
		t.Fatal(err)
	}
	var out []namedSchema
	for _, name := range names {
		vs, err := schemas.Versions(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			text, err := schemas.Compose(v.Text)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, namedSchema{fmt.Sprintf("%s/v%d", name, v.Version), text})
		}
	}
	return append(out,
		namedSchema{"allKinds", allKinds},
		namedSchema{"extraKinds", extraKinds},
		namedSchema{"point", pointSchema},
		namedSchema{"top union", `["null","string",{"type":"map","values":["null","long"]},{"type":"array","items":"bytes"}]`},
		namedSchema{"top array", `{"type":"array","items":{"type":"map","values":"double"}}`},
		namedSchema{"top long", `"long"`},
	)
}

// encoderCodecs compiles encoderSchemas, requiring the encoder (no
// fallback to goavro) for each.
func encoderCodecs(t testing.TB) ([]namedSchema, []*Codec) {
	t.Helper()
	ss := encoderSchemas(t)
	cs := make([]*Codec, len(ss))
	for i, s := range ss {
		cs[i] = mustCodec(t, s.text)
		if _, err := newEncoder(s.text); err != nil || cs[i].enc == nil {
			t.Fatalf("%s: the encoder does not compile the schema: %v", s.name, err)
		}
	}
	return ss, cs
}

// source gives the generator its choices.
type source interface {
	intn(n int) int // in [0, n); 0 when out of input
	u64() uint64
}

type randSource struct{ r *rand.Rand }

func (s randSource) intn(n int) int { return s.r.IntN(n) }
func (s randSource) u64() uint64    { return s.r.Uint64() }

// byteSource reads choices from fuzz input; when it runs out, every choice
// is 0, which always leads to a small value, so generation ends.
type byteSource struct{ b []byte }

func (s *byteSource) intn(n int) int {
	if len(s.b) == 0 || n <= 1 {
		return 0
	}
	v := int(s.b[0])
	s.b = s.b[1:]
	if n > 256 {
		if len(s.b) > 0 {
			v = v<<8 | int(s.b[0])
			s.b = s.b[1:]
		}
	}
	return v % n
}

func (s *byteSource) u64() uint64 {
	var u uint64
	for i := 0; i < 8 && len(s.b) > 0; i++ {
		u = u<<8 | uint64(s.b[0])
		s.b = s.b[1:]
	}
	return u
}

// vgen builds native values of a compiled schema, mixing bare and one-key
// union values, and (when wrong is set) now and then a value the schema
// refuses.
type vgen struct {
	src   source
	wrong bool
}

// bad reports whether to build a refused value here: rarely, and never
// once the input has run out.
func (g *vgen) bad() bool { return g.wrong && g.src.intn(24) == 23 }

func (g *vgen) pick(vs ...any) any { return vs[g.src.intn(len(vs))] }

var edgeLongs = []int64{0, 1, -1, 63, 64, -64, -65, 127, 128, 300, -300, math.MaxInt32, math.MinInt32,
	math.MaxInt32 + 1, math.MinInt32 - 1, 1 << 53, -(1 << 53), math.MaxInt64, math.MinInt64, 1e15}

func (g *vgen) int64v() int64 {
	if g.src.intn(2) == 0 {
		return edgeLongs[g.src.intn(len(edgeLongs))]
	}
	return int64(g.src.u64()) >> g.src.intn(64)
}

func (g *vgen) str() string {
	parts := []string{"", "a", "é", "\\", "\n", "\x00", "\u2028", "日本", "<tag>", " ", "x", "\xff", "null", "string"}
	var b strings.Builder
	for i := g.src.intn(5); i > 0; i-- {
		if g.src.intn(4) == 0 {
			// Arbitrary bytes, but no '"': goavro prints values in its
			// errors, and a quote could fake a `field "x"` in them.
			c := byte(g.src.intn(256))
			if c == '"' {
				c = '\''
			}
			b.WriteByte(c)
			continue
		}
		b.WriteString(parts[g.src.intn(len(parts))])
	}
	return b.String()
}

func (g *vgen) rawBytes() []byte {
	if g.src.intn(4) == 0 {
		return nil
	}
	return []byte(g.str())
}

func (g *vgen) time() time.Time {
	var t time.Time
	switch g.src.intn(6) {
	case 0:
		t = time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC) // sub-microsecond digits
	case 1:
		t = time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC) // before 1970, with nanoseconds
	case 2:
		t = time.Time{}
	case 3:
		t = time.Unix(-int64(g.src.u64()%(1<<40)), int64(g.src.u64()%1e9))
	default:
		t = time.Unix(int64(g.src.u64()%(1<<36))-1<<35, int64(g.src.u64()%1e9))
	}
	if g.src.intn(2) == 0 {
		t = t.In(time.FixedZone("X", 3600*(g.src.intn(27)-13)))
	}
	return t
}

// junk is a value no schema type expects.
func (g *vgen) junk() any {
	return g.pick(int8(1), uint(2), struct{}{}, []int{1}, map[string]int{"a": 1}, "junk", 1.5, true,
		time.Time{}, map[string]any{"nope": 1}, map[string]any{}, nil, &struct{}{}, [2]int{}, time.Duration(3))
}

func (g *vgen) value(n *enode, depth int) any {
	switch n.kind {
	case eNull:
		if g.bad() {
			return g.pick("", 0, map[string]any{})
		}
		return nil
	case eBoolean:
		if g.bad() {
			return g.pick(1, "true", nil)
		}
		return g.src.intn(2) == 1
	case eLong:
		if g.bad() {
			return g.pick(1.5, math.NaN(), math.Inf(1), 1e19, float32(1e19), int8(1), uint64(1), "1", nil, time.Duration(1))
		}
		v := g.int64v()
		switch g.src.intn(6) {
		case 1:
			return int(v)
		case 2:
			return int32(v)
		case 3:
			return float64(v >> 11) // whole and exact
		case 4:
			return float32(v % (1 << 24))
		}
		return v
	case eInt:
		if g.bad() {
			return g.pick(int64(math.MaxInt32+1), int(math.MinInt32-1), 0.5, 3e9, float32(3e9), math.NaN(), uint32(1), "x", nil)
		}
		v := int32(g.int64v())
		switch g.src.intn(5) {
		case 1:
			return int(v)
		case 2:
			return int64(v)
		case 3:
			return float64(v)
		case 4:
			return float32(v >> 8)
		}
		return v
	case eDouble:
		if g.bad() {
			return g.pick(int64(1<<53+1), int(math.MaxInt64), "1.0", true, nil)
		}
		switch g.src.intn(6) {
		case 1:
			return g.pick(0.0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1), math.MaxFloat64, math.SmallestNonzeroFloat64, 1433188255.5)
		case 2:
			return math.Float32frombits(uint32(g.src.u64()))
		case 3:
			return int(g.int64v() >> 11)
		case 4:
			return g.int64v() >> 11
		case 5:
			return int32(g.int64v())
		}
		return math.Float64frombits(g.src.u64())
	case eFloat:
		if g.bad() {
			return g.pick(int32(1<<24+1), int64(math.MaxInt64), "x", nil)
		}
		switch g.src.intn(5) {
		case 1:
			return math.Float64frombits(g.src.u64())
		case 2:
			return int(g.int64v() % (1 << 24))
		case 3:
			return g.int64v() % (1 << 24)
		case 4:
			return int32(g.int64v() % (1 << 24))
		}
		return math.Float32frombits(uint32(g.src.u64()))
	case eString, eBytes:
		if g.bad() {
			return g.pick(1, nil, 'x', []int{1})
		}
		if g.src.intn(3) == 0 {
			return g.rawBytes()
		}
		return g.str()
	case eTimestampMicros, eTimestampMillis, eDate:
		if g.bad() {
			return g.pick("2020-01-01", time.Duration(1), nil, uint(1), &time.Time{})
		}
		switch g.src.intn(5) {
		case 1:
			if n.kind == eDate {
				return int32(g.int64v())
			}
			return g.int64v()
		case 2:
			if n.kind == eDate {
				return float64(int32(g.int64v()))
			}
			return float64(g.int64v() >> 11)
		}
		return g.time()
	case eTimeMicros, eTimeMillis:
		if g.bad() {
			return g.pick(time.Time{}, "1s", nil)
		}
		if g.src.intn(2) == 0 {
			return int32(g.int64v())
		}
		return time.Duration(g.int64v())
	case eEnum:
		if g.bad() {
			return g.pick("NOPE", 1, nil)
		}
		return n.symbols[g.src.intn(len(n.symbols))]
	case eFixed:
		if g.bad() {
			return g.pick(make([]byte, n.size+1), "", 5)
		}
		b := make([]byte, n.size)
		for i := range b {
			b[i] = byte(g.src.intn(256))
		}
		if g.src.intn(2) == 0 {
			return string(b)
		}
		return b
	case eArray:
		if g.bad() {
			return g.pick("x", map[string]any{}, []int{1}, [2]int{}, nil)
		}
		size := g.src.intn(4)
		if depth > 5 {
			size = 0
		}
		switch {
		case g.src.intn(4) == 0 && (n.items.kind == eString || n.items.kind == eBytes):
			ss := make([]string, size)
			for i := range ss {
				ss[i] = g.str()
			}
			return ss
		case g.src.intn(4) == 0 && n.items.kind == eLong:
			ls := make([]int64, size)
			for i := range ls {
				ls[i] = g.int64v()
			}
			return ls
		}
		items := make([]any, size)
		for i := range items {
			items[i] = g.value(n.items, depth+1)
		}
		if size == 0 && g.src.intn(2) == 0 {
			return []any(nil)
		}
		return items
	case eMap:
		if g.bad() {
			return g.pick("x", []any{}, map[int]string{1: "a"}, nil)
		}
		size := g.src.intn(4)
		if depth > 5 {
			size = 0
		}
		if g.src.intn(4) == 0 && (n.items.kind == eString || n.items.kind == eBytes) {
			m := make(map[string]string, size)
			for range size {
				m[g.str()] = g.str()
			}
			return m
		}
		if g.src.intn(4) == 0 && n.items.kind == eInt {
			m := make(map[string]int32, size)
			for range size {
				m[g.str()] = int32(g.int64v())
			}
			return m
		}
		m := make(map[string]any, size)
		for range size {
			m[g.str()] = g.value(n.items, depth+1)
		}
		return m
	case eRecord:
		if g.bad() {
			return g.pick(map[string]string{}, "x", nil, map[string]any{"zz": 1})
		}
		if g.src.intn(16) == 1 && (allDefaults(n) || g.bad()) {
			return map[string]any(nil) // every field absent
		}
		m := make(map[string]any, len(n.fields)+1)
		for _, f := range n.fields {
			if (f.hasDefault || g.bad()) && g.src.intn(3) == 1 {
				continue // absent
			}
			m[f.name] = g.value(f.node, depth+1)
		}
		if g.src.intn(8) == 1 {
			m["zz_not_a_field"] = "ignored"
		}
		return m
	case eUnion:
		if g.bad() {
			return g.junk()
		}
		i := g.src.intn(len(n.branches))
		if depth > 5 { // recursive schemas: end with null, or else anything but a record
			i = -1
			for j, b := range n.branches {
				if b.kind == eNull || i < 0 && b.kind != eRecord {
					i = j
				}
			}
			if i < 0 {
				i = 0
			}
		}
		b := n.branches[i]
		v := g.value(b, depth+1)
		if g.src.intn(3) != 1 { // bare when the rule takes it to b
			if j, _ := bareBranch(n, v); j == i {
				return v
			}
		}
		return map[string]any{b.name: v} // {"null": nil} included
	}
	panic(fmt.Sprintf("kind %d", n.kind))
}

func allDefaults(n *enode) bool {
	for _, f := range n.fields {
		if !f.hasDefault {
			return false
		}
	}
	return true
}

// bareBranch is the test's reading of the bare-value rule in the package
// doc: the branch a union value goes to (-1 for none) and the value for
// that branch.
func bareBranch(u *enode, v any) (int, any) {
	named := func(names ...string) int {
		for _, name := range names {
			for i, b := range u.branches {
				if b.name == name {
					return i
				}
			}
		}
		return -1
	}
	only := func(k ekind) int {
		at := -1
		for i, b := range u.branches {
			if b.kind == k {
				if at >= 0 {
					return -1
				}
				at = i
			}
		}
		return at
	}
	or := func(a, b int) int {
		if a >= 0 {
			return a
		}
		return b
	}
	switch x := v.(type) {
	case nil:
		return named("null"), nil
	case string:
		return or(named("string"), only(eEnum)), v
	case []byte:
		return or(named("bytes"), only(eFixed)), v
	case bool:
		return named("boolean"), v
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr:
		return named("long", "int"), v
	case float32, float64:
		return named("double", "float"), v
	case time.Time:
		for i, b := range u.branches {
			if strings.Contains(b.name, ".timestamp-") {
				return i, v
			}
		}
		return named("int.date"), v
	case map[string]any:
		if len(x) == 1 {
			for k, inner := range x {
				if i := named(k); i >= 0 {
					return i, inner
				}
			}
		}
		return or(only(eRecord), named("map")), v
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Slice:
		return named("array"), v
	case reflect.Map:
		return named("map"), v
	}
	return -1, v
}

// toGoavro returns v in goavro's form (one-key maps for every non-null
// union value), leaving v itself alone; orderFree is set when v holds a
// map of two or more entries, whose order goavro leaves to Go.
func toGoavro(n *enode, v any, orderFree *bool) any {
	switch n.kind {
	case eUnion:
		i, inner := bareBranch(n, v)
		if i < 0 {
			return v // refused by both
		}
		b := n.branches[i]
		if b.kind == eNull && inner == nil {
			if m, ok := v.(map[string]any); ok {
				return m // {"null": nil}, goavro's form already
			}
			return nil
		}
		return map[string]any{b.name: toGoavro(b, inner, orderFree)}
	case eRecord:
		m, ok := v.(map[string]any)
		if !ok || m == nil {
			return v
		}
		out := make(map[string]any, len(m))
		for k, x := range m {
			out[k] = x
			for _, f := range n.fields {
				if f.name == k {
					out[k] = toGoavro(f.node, x, orderFree)
				}
			}
		}
		return out
	case eArray:
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Slice || rv.IsNil() {
			return v
		}
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = toGoavro(n.items, rv.Index(i).Interface(), orderFree)
		}
		return out
	case eMap:
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Map || rv.IsNil() {
			return v
		}
		if rv.Len() >= 2 {
			*orderFree = true
		}
		out := make(map[string]any, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			k, ok := it.Key().Interface().(string)
			if !ok {
				return v // refused by both
			}
			out[k] = toGoavro(n.items, it.Value().Interface(), orderFree)
		}
		return out
	}
	return v
}

var fieldPathRE = regexp.MustCompile(`field "([^"]+)"`)

// fieldPath is the gateway's reading of an encoding error: the field
// names, outermost first.
func fieldPath(err error) string {
	var parts []string
	for _, m := range fieldPathRE.FindAllStringSubmatch(err.Error(), -1) {
		parts = append(parts, m[1])
	}
	return strings.Join(parts, ".")
}

// lastPart is the text the gateway shows: after the last ": ".
func lastPart(err error) string {
	msg := err.Error()
	return msg[strings.LastIndex(msg, ": ")+1:]
}

// compareWithGoavro encodes v with c's encoder and its goavro-form copy
// with goavro, and reports any disagreement.
func compareWithGoavro(c *Codec, v any) error {
	orderFree := false
	oracle := toGoavro(c.enc.root, v, &orderFree)
	want, werr := c.codec.BinaryFromNative(nil, oracle)
	got, gerr := c.enc.encode(nil, v)
	switch {
	case (werr == nil) != (gerr == nil):
		return fmt.Errorf("goavro error: %v\nencoder error: %v\nvalue: %#v\ngoavro's: %#v", werr, gerr, v, oracle)
	case werr != nil:
		if orderFree {
			return nil // each may stop at a different bad entry
		}
		if fieldPath(werr) != fieldPath(gerr) || lastPart(werr) != lastPart(gerr) {
			return fmt.Errorf("errors differ\ngoavro:  %v\nencoder: %v", werr, gerr)
		}
		return nil
	case bytes.Equal(got, want):
		return nil
	case orderFree && len(got) == len(want):
		// Maps: the same entries in another order decode to the same value.
		a, _, err1 := c.codec.NativeFromBinary(got)
		b, _, err2 := c.codec.NativeFromBinary(want)
		if err1 == nil && err2 == nil && sameNative(a, b) {
			return nil
		}
	}
	return fmt.Errorf("bytes differ\n got: % x\nwant: % x\nvalue: %#v", got, want, v)
}

// sameNative compares decoded values, floats by their bits (NaN too).
func sameNative(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameNative(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameNative(x[i], y[i]) {
				return false
			}
		}
		return true
	case float64:
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	case float32:
		y, ok := b.(float32)
		return ok && math.Float32bits(x) == math.Float32bits(y)
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	}
	return reflect.DeepEqual(a, b)
}

// TestEncoderMatchesGoavro encodes random values of every schema, valid
// ones and then ones with mistakes, both ways.
func TestEncoderMatchesGoavro(t *testing.T) {
	ss, cs := encoderCodecs(t)
	r := rand.New(rand.NewPCG(7, 11))
	for i, s := range ss {
		t.Run(s.name, func(t *testing.T) {
			c := cs[i]
			valid := &vgen{src: randSource{r}}
			for range 400 {
				v := valid.value(c.enc.root, 0)
				if _, err := c.enc.encode(nil, v); err != nil {
					t.Fatalf("valid value refused: %v\n%#v", err, v)
				}
				if err := compareWithGoavro(c, v); err != nil {
					t.Fatal(err)
				}
			}
			mixed := &vgen{src: randSource{r}, wrong: true}
			refused := 0
			for range 400 {
				v := mixed.value(c.enc.root, 0)
				if _, err := c.enc.encode(nil, v); err != nil {
					refused++
				}
				if err := compareWithGoavro(c, v); err != nil {
					t.Fatal(err)
				}
			}
			if refused == 0 {
				t.Error("no value with mistakes was refused")
			}
		})
	}
}

// legacy builds union values in goavro's one-key form, as the helpers did
// before the encoder took bare values.
var legacy = struct {
	String     func(string) any
	Long       func(int64) any
	Int        func(int32) any
	Bytes      func([]byte) any
	TimeMicros func(time.Time) any
	Map        func(map[string]any) any
	Record     func(string, map[string]any) any
	OptString  func(string) any
}{
	String:     func(s string) any { return map[string]any{"string": s} },
	Long:       func(v int64) any { return map[string]any{"long": v} },
	Int:        func(v int32) any { return map[string]any{"int": v} },
	Bytes:      func(b []byte) any { return map[string]any{"bytes": b} },
	TimeMicros: func(t time.Time) any { return map[string]any{"long.timestamp-micros": t} },
	Map:        func(m map[string]any) any { return map[string]any{"map": m} },
	Record:     func(name string, m map[string]any) any { return map[string]any{name: m} },
	OptString: func(s string) any {
		if s == "" {
			return nil
		}
		return map[string]any{"string": s}
	},
}

// helpers are the helpers an event is built with: the package's (bare) or
// legacy (goavro's form).
type helpers struct {
	String     func(string) any
	Long       func(int64) any
	Int        func(int32) any
	Bytes      func([]byte) any
	TimeMicros func(time.Time) any
	Map        func(map[string]any) any
	Record     func(string, map[string]any) any
	OptString  func(string) any
	Envelope   func(*event.Envelope) map[string]any
}

var bareHelpers = helpers{String, Long, Int, Bytes, TimeMicros, Map, Record, OptString, EnvelopeNative}

var legacyHelpers = helpers{legacy.String, legacy.Long, legacy.Int, legacy.Bytes, legacy.TimeMicros, legacy.Map,
	legacy.Record, legacy.OptString, legacyEnvelope}

// legacyEnvelope is EnvelopeNative as it was with one-key union values.
func legacyEnvelope(e *event.Envelope) map[string]any {
	var batchIndex any
	if e.BatchID != "" && e.BatchIndex >= 0 {
		batchIndex = legacy.Int(int32(e.BatchIndex))
	}
	var raw any
	if e.Raw != nil {
		raw = legacy.Bytes(e.Raw)
	}
	tm := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return legacy.TimeMicros(t)
	}
	return map[string]any{
		"event_id": e.EventID, "family": string(e.Family), "event_type": legacy.OptString(e.EventType),
		"received_at": e.ReceivedAt, "client_time": tm(e.ClientTime), "sent_time": tm(e.SentTime),
		"ip": legacy.OptString(e.IP), "user_agent": legacy.OptString(e.UserAgent),
		"source_key": legacy.OptString(e.SourceKey), "endpoint": e.Endpoint, "partition_key": e.PartitionKey,
		"batch_id": legacy.OptString(e.BatchID), "batch_index": batchIndex, "quirks": Strings(e.Quirks),
		"gateway_version": e.GatewayVersion, "raw": raw,
	}
}

var edxRaw = []byte(`{"username": "learner42", "event_source": "browser", "name": "play_video", "accept_language": "en-US,en;q=0.9", ` +
	`"time": "2024-05-13T14:40:33.503255+00:00", "agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36", ` +
	`"page": "https://courses.example.org/courses/course-v1:edX+DemoX+Demo_Course/courseware/intro/", "host": "courses.example.org", ` +
	`"session": "8f14e45fceea167a5a36dedd4bea2543", "referer": "https://courses.example.org/dashboard", ` +
	`"context": {"course_id": "course-v1:edX+DemoX+Demo_Course", "org_id": "edX", "user_id": 42, "path": "/event", ` +
	`"course_user_tags": {"xblock.partition_service.partition_50": "1", "cohort": "blue"}}, "ip": "203.0.113.9", ` +
	`"event": "{\"id\": \"i4x-edX-DemoX-video-0b9e39477cf34507a7a48f74be381fdd\", \"currentTime\": 23.4, \"code\": \"html5\"}", "event_type": "play_video"}`)

// edxEvent is a realistic edX record as the gateway's adapter builds it
// (services/gateway/internal/adapter/edx.go), with its envelope.
func edxEvent(h helpers) map[string]any {
	at := time.Date(2024, 5, 13, 14, 40, 33, 503255000, time.UTC)
	env := &event.Envelope{
		EventID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Family: event.EdX, EventType: "play_video",
		ReceivedAt: at.Add(1500 * time.Millisecond), ClientTime: at, IP: "203.0.113.9",
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36", SourceKey: "key-edx-1",
		Endpoint: "/v1/events/edx", PartitionKey: "learner42", BatchIndex: -1,
		Quirks: []string{"event_json_string"}, GatewayVersion: "v1.4.2", Raw: edxRaw,
	}
	tags := map[string]any{"xblock.partition_service.partition_50": "1", "cohort": "blue"}
	ctx := map[string]any{
		"course_id": h.String("course-v1:edX+DemoX+Demo_Course"), "org_id": h.String("edX"),
		"user_id": h.Long(42), "path": h.String("/event"), "course_user_tags": h.Map(tags), "module": nil,
		"asides": nil, "application": nil, "client": nil, "received_at_raw": nil, "received_at": nil,
		"enterprise_uuid": nil, "component": nil, "label": nil, "open_in_browser_url": nil,
		"command": nil, "extra": map[string]any{},
	}
	return map[string]any{
		"envelope":        h.Envelope(env),
		"username":        h.String("learner42"),
		"event_type":      h.String("play_video"),
		"name":            h.String("play_video"),
		"event_source":    h.String("browser"),
		"event_kind":      "json_string",
		"event_raw":       h.String(`{"id": "i4x-edX-DemoX-video-0b9e39477cf34507a7a48f74be381fdd", "currentTime": 23.4, "code": "html5"}`),
		"event_json":      h.String(`{"code":"html5","currentTime":23.4,"id":"i4x-edX-DemoX-video-0b9e39477cf34507a7a48f74be381fdd"}`),
		"time_raw":        "2024-05-13T14:40:33.503255+00:00",
		"time":            h.TimeMicros(at),
		"context":         h.Record("sluice.edx.Context", ctx),
		"ip":              h.String("203.0.113.9"),
		"agent":           h.String("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"),
		"host":            h.String("courses.example.org"),
		"referer":         h.String("https://courses.example.org/dashboard"),
		"accept_language": h.String("en-US,en;q=0.9"),
		"page":            h.String("https://courses.example.org/courses/course-v1:edX+DemoX+Demo_Course/courseware/intro/"),
		"session":         h.String("8f14e45fceea167a5a36dedd4bea2543"),
		"extra":           map[string]any{},
		"enrichment":      nil,
	}
}

func latestCodec(t testing.TB, name string) *Codec {
	t.Helper()
	text, err := schemas.Latest(name)
	if err != nil {
		t.Fatal(err)
	}
	return mustCodec(t, text)
}

// extraKindsValue is a valid value of extraKinds, every union bare.
func extraKindsValue() map[string]any {
	return map[string]any{
		"d": time.Date(1960, 2, 29, 23, 0, 0, 0, time.UTC), "tms": 90 * time.Minute, "tus": time.Duration(-1),
		"uuid": "123e4567-e89b-12d3-a456-426614174000", "lts": time.Unix(1<<33, 5000),
		"il": int32(7), "onlyint": int64(math.MaxInt32), "onlyfloat": 1e39, "fd": float32(2.5),
		"ue": "A7", "uf": []byte("wxyz"), "ud": time.Unix(-86401, 0), "ums": time.Unix(1, 2),
		"ubool": false, "rec_or_map": map[string]any{"a": int64(1), "b": 2}, "two_recs": map[string]any{"t.x.Two": map[string]any{}},
		"arr_u": []string{"a", "b"}, "arr_arr": []any{[]int64{1, 2}, []any{}}, "map_u": map[string]any{"n": nil},
		"inner": map[string]any{"s": "S", "one": map[string]any{"v": 9, "extra": 1}, "self": map[string]any{"self": nil, "s": nil}},
		"next": map[string]any{"d": 3, "tms": 0, "tus": 0, "uuid": "", "lts": 0, "il": nil, "onlyfloat": nil,
			"fd": 1.0, "uf": nil, "ud": nil, "ums": nil, "ubool": nil, "rec_or_map": nil, "two_recs": nil, "arr_arr": []any{},
			"map_u": map[string]string{}, "inner": map[string]any(nil)},
	}
}

// dlqValue is a valid dead letter.
func dlqValue() map[string]any {
	return map[string]any{"id": "e1", "time": time.Unix(-5, 500), "stage": "gateway", "component_version": "v1",
		"reason": "schema_violation", "message": "m", "raw": "text", "family": "edx", "index": int32(-1),
		"partition": 3, "offset": int64(math.MaxInt64)}
}

// TestEncoderHandBuilt checks values written out by hand, one per case the
// brief of the encoder names, against goavro.
func TestEncoderHandBuilt(t *testing.T) {
	edx := latestCodec(t, "edx")
	all := mustCodec(t, allKinds)
	extra := mustCodec(t, extraKinds)
	env := latestCodec(t, "envelope")
	dlq := latestCodec(t, "dlq")
	enrichment := latestCodec(t, "enrichment")

	cet := time.FixedZone("CET", 3600)
	allKindsValue := func(u func(branch string, v any) any) map[string]any {
		inner := map[string]any{"x": u("string", "in"), "deeper": u("other.Deep", map[string]any{"y": int32(5)})}
		return map[string]any{
			"n": nil, "b": true, "i": int32(math.MinInt32), "l": int64(math.MaxInt64), "f": float32(0.1), "d": math.Inf(-1),
			"s": "a\"b\\c\n\x00é", "text": []byte("plain"), "binary": []byte{0xff, 0, 0x80}, "e": "GREEN", "fx": "hi",
			"micros": time.Date(1969, 7, 20, 20, 17, 40, 999999999, cet),
			"millis": time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC),
			"arr":    []any{int64(math.MinInt64), 1, int32(-1), float64(1 << 52)},
			"m":      map[string]any{"only": "one"},
			"nested": inner,
			"u_null": nil, "u_str": u("string", ""), "u_long": u("long", int64(-1)<<40),
			"u_rec": u("t.Inner", map[string]any{"x": nil, "deeper": nil}),
			"u_ts":  u("long.timestamp-micros", time.Unix(-1, 1)), "u_tsms": u("long.timestamp-millis", time.Unix(0, 999999)),
			"u_arr":   u("array", []any{inner, map[string]any{"x": nil, "deeper": nil}}),
			"u_map":   u("map", map[string]any{"z": u("double", math.NaN())}),
			"u_enum":  u("t.Color", "RED"),
			"u_bytes": u("bytes", []byte{}),
		}
	}
	wrap := func(branch string, v any) any { return map[string]any{branch: v} }
	bare := func(_ string, v any) any { return v }

	for _, tc := range []struct {
		name string
		c    *Codec
		v    any
	}{
		{"edx with bare helpers", edx, edxEvent(bareHelpers)},
		{"edx in goavro's form", edx, edxEvent(legacyHelpers)},
		{"edx minimal", edx, map[string]any{"envelope": EnvelopeNative(&event.Envelope{BatchIndex: -1})}},
		{"all kinds, one-key unions", all, allKindsValue(wrap)},
		{"all kinds, bare unions", all, allKindsValue(bare)},
		{"extra kinds", extra, extraKindsValue()},
		{"envelope with batch", env, EnvelopeNative(&event.Envelope{BatchID: "b", BatchIndex: math.MaxInt32, Raw: []byte{}, ClientTime: time.Unix(0, 1)})},
		{"dlq", dlq, dlqValue()},
		{"enrichment", enrichment, map[string]any{"enriched_at": time.Unix(1, 0), "enricher_version": "v", "enricher_instance": "i",
			"raw_topic": "t", "raw_partition": int32(0), "raw_offset": int64(-1),
			"geo":     map[string]any{"ip_kind": "public", "latitude": 51.5, "longitude": -0.12, "accuracy_radius": int32(10), "asn": int64(64512)},
			"privacy": map[string]any{"ip": "h", "dropped": []string{"ip"}, "hashed": []any{}},
			"derived_time": map[string]any{"created": time.Unix(1, 1), "sent": time.Unix(1, 2), "received": time.Unix(1, 3),
				"corrected": time.Unix(1, 4), "skew_micros": int64(-5), "implausible": true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := compareWithGoavro(tc.c, tc.v); err != nil {
				t.Fatal(err)
			}
			if err := tc.c.Validate(tc.v); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}

	// The helpers' bare edX record and the legacy one-key record encode to
	// the same bytes, through the encoder and through goavro.
	a, err := edx.Encode(nil, edxEvent(bareHelpers))
	if err != nil {
		t.Fatal(err)
	}
	b, err := edx.codec.BinaryFromNative(nil, edxEvent(legacyHelpers))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a[5:], b) { // course_user_tags has two entries, in either order
		x, err1 := edx.DecodeBody(a[5:])
		y, err2 := edx.DecodeBody(b)
		if err1 != nil || err2 != nil || len(a[5:]) != len(b) || !sameNative(x, y) {
			t.Fatalf("bare edX record: % x\nwant % x", a[5:], b)
		}
	}
}

// TestEncoderRejectsLikeGoavro checks refused values: both encoders refuse,
// with the same field path for the gateway and the same closing text.
func TestEncoderRejectsLikeGoavro(t *testing.T) {
	edx := latestCodec(t, "edx")
	dlq := latestCodec(t, "dlq")
	clicks := latestCodec(t, "clicks")
	crowdframe := latestCodec(t, "crowdframe")
	extra := mustCodec(t, extraKinds)
	with := func(m map[string]any, kv ...any) map[string]any {
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	ev := edxEvent(bareHelpers)
	ctx := ev["context"].(map[string]any)
	envl := ev["envelope"].(map[string]any)
	xv := extraKindsValue()
	without := func(m map[string]any, k string) map[string]any {
		out := with(m)
		delete(out, k)
		return out
	}
	for _, tc := range []struct {
		name string
		c    *Codec
		v    any
		path string
	}{
		{"user_id a float", edx, with(ev, "context", with(ctx, "user_id", 1.5)), "context.user_id"},
		{"user_id one-key float", edx, with(ev, "context", with(ctx, "user_id", map[string]any{"long": 1.5})), "context.user_id"},
		{"user_id unknown branch", edx, with(ev, "context", with(ctx, "user_id", map[string]any{"double": 1.0})), "context.user_id"},
		{"context a string", edx, with(ev, "context", "x"), "context"},
		{"context two-key map with no record", edx, with(ev, "username", map[string]any{"a": 1, "b": 2}), "username"},
		{"module extra value", edx, with(ev, "context", with(ctx, "module", map[string]any{"extra": map[string]any{"k": 1}})), "context.module.extra"},
		{"course_user_tags value", edx, with(ev, "context", with(ctx, "course_user_tags", map[string]any{"map": map[string]any{"k": nil}})), "context.course_user_tags"},
		{"extra not a map", edx, with(ev, "extra", []any{}), "extra"},
		{"envelope missing event_id", edx, with(ev, "envelope", without(envl, "event_id")), "envelope.event_id"},
		{"envelope received_at a string", edx, with(ev, "envelope", with(envl, "received_at", "2024-01-01")), "envelope.received_at"},
		{"quirk not a string", edx, with(ev, "envelope", with(envl, "quirks", []any{"a", 1})), "envelope.quirks"},
		{"batch_index out of int range", edx, with(ev, "envelope", with(envl, "batch_index", int64(1)<<40)), "envelope.batch_index"},
		{"time a string", edx, with(ev, "time", "2024"), "time"},
		{"event_kind nil", edx, with(ev, "event_kind", nil), "event_kind"},
		{"record nil", edx, nil, ""},
		{"record of the wrong map type", edx, map[string]string{}, ""},
		{"enrichment empty record", edx, with(ev, "enrichment", map[string]any{}), "enrichment.enriched_at"},
		{"dlq offset NaN", dlq, with(dlqValue(), "offset", math.NaN()), "offset"},
		{"dlq raw missing", dlq, without(dlqValue(), "raw"), "raw"},
		{"clicks target one-key record wrong", clicks, map[string]any{"envelope": envl, "type": "click", "info": map[string]any{
			"target": map[string]any{"sluice.clicks.Target": map[string]any{"id": 5}}}}, "info.target.id"},
		{"bare record among many", crowdframe, map[string]any{"envelope": envl, "type": "context", "worker": "w",
			"details_json": "{}", "details": map[string]any{"ua": nil, "ip": nil}}, "details"},
		{"enum not a symbol", extra, with(xv, "ue", "Z"), "ue"},
		{"fixed too long", extra, with(xv, "uf", []byte("12345")), "uf"},
		{"int from a big long", extra, with(xv, "onlyint", int64(1)<<31), "onlyint"},
		{"int from uint", extra, with(xv, "il", uint(1)), "il"},
		{"nested three deep", extra, with(xv, "inner", map[string]any{"self": map[string]any{"self": map[string]any{"s": 1}}}), "inner.self.self.s"},
		{"array of records", extra, with(xv, "kids", []any{with(xv, "d", "x")}), "kids.d"},
		{"map of unions", extra, with(xv, "map_u", map[string]any{"k": 1.5}), "map_u"},
		{"date out of int range", extra, with(xv, "d", time.Unix(1<<50, 0)), "d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orderFree := false
			_, werr := tc.c.codec.BinaryFromNative(nil, toGoavro(tc.c.enc.root, tc.v, &orderFree))
			_, gerr := tc.c.Encode(nil, tc.v)
			if werr == nil || gerr == nil {
				t.Fatalf("goavro: %v\nencoder: %v", werr, gerr)
			}
			if verr := tc.c.Validate(tc.v); verr == nil || verr.Error() != gerr.Error() {
				t.Fatalf("Validate = %v, want %v", verr, gerr)
			}
			if got, want := fieldPath(gerr), fieldPath(werr); got != want || got != tc.path {
				t.Fatalf("path %q, goavro's %q, want %q\nencoder: %v\ngoavro:  %v", got, want, tc.path, gerr, werr)
			}
			if lastPart(gerr) != lastPart(werr) {
				t.Fatalf("message\nencoder: %v\ngoavro:  %v", gerr, werr)
			}
		})
	}

	// The full text, for the gateway's two readings of it.
	_, err := edx.Encode(nil, with(ev, "context", with(ctx, "user_id", map[string]any{"long": "7"})))
	want := `cannot encode binary record "sluice.edx.Event" field "context": value does not match its schema: ` +
		`cannot encode binary record "sluice.edx.Context" field "user_id": value does not match its schema: ` +
		`long: expected: Go numeric; received: string`
	if err == nil || err.Error() != want {
		t.Fatalf("error\n got: %v\nwant: %s", err, want)
	}
	_, err = edx.Encode(nil, with(ev, "context", with(ctx, "user_id", true)))
	want = `cannot encode binary record "sluice.edx.Event" field "context": value does not match its schema: ` +
		`cannot encode binary record "sluice.edx.Context" field "user_id": value does not match its schema: ` +
		`cannot encode binary union: no member schema types support datum: allowed types: [null long string]; received: bool`
	if err == nil || err.Error() != want {
		t.Fatalf("error\n got: %v\nwant: %s", err, want)
	}
}

// TestEncoderNeverPanics feeds values no caller should send.
func TestEncoderNeverPanics(t *testing.T) {
	c := mustCodec(t, extraKinds)
	base := extraKindsValue()
	with := func(kv ...any) map[string]any {
		out := extraKindsValue()
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	cyclic := with()
	cyclic["next"] = cyclic
	arr := []any{nil}
	arr[0] = with("kids", arr)
	inner := map[string]any{"self": nil}
	for range 5000 {
		inner = map[string]any{"self": inner}
	}
	for i, v := range []any{
		nil, cyclic, arr[0], with("inner", inner), with("next", map[string]any{"X": nil}), with("next", map[string]any{"t.x.X": nil}),
		with("map_u", map[string]any{"a": map[string]any{"b": map[string]any{}}}),
		with("arr_arr", []any{[]any{math.NaN(), math.Inf(1), float32(math.NaN())}}),
		with("il", uint64(math.MaxUint64)), with("onlyint", math.MaxFloat64), with("fd", int64(math.MinInt64)), with("fd", uint8(1)),
		with("rec_or_map", map[any]any{1: 2}), with("two_recs", map[string]any{"a": 1, "b": 2}),
		with("map_u", map[float64]any{math.NaN(): 1}),
		with("uf", (*[]byte)(nil)), with("d", (*time.Time)(nil)), with("tus", []any(nil)), with("ud", math.NaN()),
		with("ue", []string{"S"}), with("arr_u", [2]string{}), with("inner", map[string]any{"self": map[string]any{"s": 1}}),
	} {
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("value %d: panic: %v", i, p)
				}
			}()
			_, err := c.Encode(nil, v)
			_ = c.Validate(v)
			if err == nil {
				t.Fatalf("value %d accepted", i)
			}
		}()
	}
	for _, v := range []any{cyclic, arr[0], with("inner", inner)} {
		_, err := c.Encode(nil, v)
		if err == nil || !strings.Contains(err.Error(), "records deep") {
			t.Fatalf("cyclic or deep value: %v", err)
		}
	}
	if _, err := c.Encode(nil, base); err != nil {
		t.Fatal(err)
	}
}

// TestEncoderFallback: schemas with a logical type the encoder leaves to
// goavro still encode, through goavro; schemas goavro refuses still fail.
func TestEncoderFallback(t *testing.T) {
	for _, schema := range []string{
		`{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}`,
		`{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"fixed","name":"F","size":4,"logicalType":"decimal","precision":4}}]}`,
	} {
		if _, err := newEncoder(schema); !errors.Is(err, errEncoderUnsupported) {
			t.Errorf("%s: newEncoder = %v", schema, err)
		}
		if c := mustCodec(t, schema); c.enc != nil {
			t.Errorf("%s: encoder used", schema)
		}
	}
	c := mustCodec(t, `{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}`)
	if _, err := c.Encode(nil, "not a rat"); err == nil {
		t.Error("goavro fallback accepted a string for a decimal")
	}
	for _, bad := range []string{
		`{"type":"record","name":"R","fields":[{"name":"a","type":"long","default":"x"}]}`,
		`{"type":"enum","name":"E","symbols":[]}`,
		`["null","null"]`,
	} {
		if _, err := NewCodec(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestEncoderNoAllocs: a prebuilt edX record encodes into a big enough
// buffer without allocating; Validate neither.
func TestEncoderNoAllocs(t *testing.T) {
	c := latestCodec(t, "edx")
	v := edxEvent(bareHelpers)
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := c.Encode(buf, v); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Encode: %v allocations", n)
	}
	if raceEnabled {
		return // Validate's buffer pool drops buffers under the race detector
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := c.Validate(v); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Validate: %v allocations", n)
	}
}

// TestHelpersBare: the helpers return bare values, and values built with
// them encode like goavro's form.
func TestHelpersBare(t *testing.T) {
	now := time.Now()
	fields := map[string]any{"a": 1, "b": 2}
	m := map[string]any{"k": "v", "l": "w"}
	for _, tc := range []struct {
		got, want any
	}{
		{String("s"), "s"}, {Long(1), int64(1)}, {Int(1), int32(1)}, {Double(1), 1.0}, {Boolean(true), true},
		{Bytes([]byte("b")), []byte("b")}, {TimeMicros(now), now}, {TimeMicros(time.Time{}), nil},
		{OptString("x"), "x"}, {OptString(""), nil}, {Array([]any{1}), []any{1}},
		{Record("n.R", fields), fields}, {Map(m), m},
		// One-key maps keep goavro's form: their key could name a branch.
		{Record("n.R", map[string]any{"null": 1}), map[string]any{"n.R": map[string]any{"null": 1}}},
		{Map(map[string]any{"null": "x"}), map[string]any{"map": map[string]any{"null": "x"}}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("got %#v, want %#v", tc.got, tc.want)
		}
	}
	// A one-key map whose key names a branch encodes as the map it is.
	c := latestCodec(t, "edx")
	ev := edxEvent(bareHelpers)
	ctx := ev["context"].(map[string]any)
	ctx["course_user_tags"] = Map(map[string]any{"null": "x"})
	wire, err := c.Encode(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.DecodeBody(wire[5:])
	if err != nil {
		t.Fatal(err)
	}
	tags := v.(map[string]any)["context"].(map[string]any)["sluice.edx.Context"].(map[string]any)["course_user_tags"]
	if !reflect.DeepEqual(tags, map[string]any{"map": map[string]any{"null": "x"}}) {
		t.Fatalf("course_user_tags decoded as %#v", tags)
	}
	// The readers take decoded and bare values alike.
	if UnionString(map[string]any{"string": "d"}) != "d" || UnionString("b") != "b" ||
		!UnionTime(map[string]any{"long.timestamp-micros": now}).Equal(now) || !UnionTime(now).Equal(now) ||
		unionBranch(map[string]any{"int": int32(3)}, "int") != int32(3) || unionBranch(int32(3), "int") != int32(3) {
		t.Error("union readers")
	}
}

// encoderFuzzCodecs are compiled once for all fuzz inputs.
var encoderFuzzCodecs []*Codec

// FuzzEncodeMatchesGoavro builds a value of one of the test schemas from
// the input (its first byte picks the schema, the rest every choice on the
// way) and requires the encoder to agree with goavro.
func FuzzEncodeMatchesGoavro(f *testing.F) {
	_, cs := encoderCodecs(f)
	encoderFuzzCodecs = cs
	r := rand.New(rand.NewPCG(1, 1))
	for i := range cs {
		f.Add([]byte{byte(i)})
		seed := make([]byte, 64)
		for j := range seed {
			seed[j] = byte(r.IntN(256))
		}
		seed[0] = byte(i)
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		c := encoderFuzzCodecs[int(data[0])%len(encoderFuzzCodecs)]
		g := &vgen{src: &byteSource{b: data[1:]}, wrong: true}
		v := g.value(c.enc.root, 0)
		if err := compareWithGoavro(c, v); err != nil {
			t.Fatal(err)
		}
	})
}

// BenchmarkEncodeEdX encodes a realistic edX record (as the gateway builds
// it) with the encoder and with goavro, alone and with building the
// native value: bare helpers for the encoder, one-key maps for goavro.
func BenchmarkEncodeEdX(b *testing.B) {
	c := latestCodec(b, "edx")
	bare := edxEvent(bareHelpers)
	oneKey := edxEvent(legacyHelpers)
	buf := make([]byte, 0, 4096)
	b.Run("encoder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Encode(buf[:0], bare); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("goavro", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.codec.BinaryFromNative(buf[:0], oneKey); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoder/one-key-form", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Encode(buf[:0], oneKey); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("build+encoder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Encode(buf[:0], edxEvent(bareHelpers)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("build+goavro", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.codec.BinaryFromNative(buf[:0], edxEvent(legacyHelpers)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
