package avro

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/linkedin/goavro/v2"
)

// encoder writes native values of one schema as Avro binary: the bytes
// goavro's BinaryFromNative writes, from the same Go values, refusing the
// same values with the same record error messages (callers read the field
// path out of them). It is compiled once per schema and is safe for
// concurrent use.
//
// Why not goavro: goavro walks a tree of closures that look every union
// branch and type name up in maps, and its native form makes callers
// allocate a map per record and a one-key map per union value. Here each
// record's fields, names and defaults are laid out at compile time, a
// union picks its branch with a type switch, and a value that is present
// costs one map lookup and no allocation. Besides goavro's form, unions
// take bare values (see the package doc in native.go).
//
// What it mirrors from goavro v2.15.0, so that the two never disagree:
//   - Schema reading (newEncoder follows goavro's buildCodec): names,
//     namespaces and the order names are resolved in; which logical types
//     exist (timestamp-micros, timestamp-millis, time-micros, time-millis,
//     date; others fall back to their underlying type, as in goavro); how
//     field defaults are converted (record.go).
//   - Accepted Go types and conversions, per type: integer.go,
//     floatingPoint.go, boolean.go, bytes.go, enum.go, fixed.go, array.go,
//     map.go, union.go, logical_type.go. Conversions that lose precision
//     are refused with the same expressions goavro uses.
//   - Arrays and maps of other element types (via reflection), in blocks
//     of at most goavro.MaxBlockCount items.
//
// Schemas with decimal or validated-string logical types are left to
// goavro (newEncoder returns errEncoderUnsupported).
type encoder struct {
	root *enode
}

// errEncoderUnsupported is returned by newEncoder for schemas whose
// encoding stays with goavro.
var errEncoderUnsupported = errors.New("avro: schema uses a logical type left to goavro")

// maxRecordDepth bounds how many records deep a value may nest. Only a
// recursive schema nests without bound, and only a cyclic value (a map
// holding itself) nests that deep; goavro would recurse until the stack
// overflows, which kills the process.
const maxRecordDepth = 1000

// ekind is what an enode encodes.
type ekind uint8

const (
	eNull ekind = iota
	eBoolean
	eInt
	eLong
	eFloat
	eDouble
	eString
	eBytes
	eTimestampMicros // long.timestamp-micros
	eTimestampMillis // long.timestamp-millis
	eTimeMicros      // long.time-micros
	eTimeMillis      // int.time-millis
	eDate            // int.date
	eEnum
	eFixed
	eArray
	eMap
	eRecord
	eUnion
)

// enode is a schema node compiled for encoding.
type enode struct {
	kind ekind
	// name is goavro's type name, which is how a union names the branch:
	// "string", "long.timestamp-micros", "array", a full name...
	name string
	// quoted is %q of name, for error messages of named types.
	quoted string

	fields   []efield // record
	branches []*enode // union
	pick     unionPick
	allowed  string           // union: %v of the branch names, for errors
	items    *enode           // array items, map values
	symbols  []string         // enum
	symbolAt map[string]int64 // enum with many symbols
	size     uint             // fixed
}

// efield is a record field with everything its encoding needs worked out.
type efield struct {
	name       string
	node       *enode
	hasDefault bool
	defBytes   []byte // the default's encoding, written when the field is absent
	// frame prefixes the errors of the field's value; missing is the error
	// for an absent field without default. Both are goavro's texts.
	frame   string
	missing string
}

// unionPick gives the branch a bare (not one-key-map) value goes to, by
// the class of its Go type; -1 where the union has no such branch.
type unionPick struct {
	null, str, bytes, boolean, integer, float, time, array, mapv, record int

	// records is how many record branches there are.
	records int
	// plainString is set when strings go to a "string" branch (not an
	// enum), which the encoder then writes without a call.
	plainString bool
}

// Nodes of the types goavro keeps in its initial symbol table. They hold
// nothing schema-specific, so every encoder shares them.
var builtinNodes = func() map[string]*enode {
	m := map[string]*enode{}
	for name, k := range map[string]ekind{
		"null": eNull, "boolean": eBoolean, "int": eInt, "long": eLong, "float": eFloat, "double": eDouble,
		"string": eString, "bytes": eBytes,
		"long.timestamp-micros": eTimestampMicros, "long.timestamp-millis": eTimestampMillis,
		"long.time-micros": eTimeMicros, "int.time-millis": eTimeMillis, "int.date": eDate,
	} {
		m[name] = &enode{kind: k, name: name}
	}
	return m
}()

// pendingDefault is a field default, converted once every named type is
// complete (a default may hold records of a type still being compiled).
type pendingDefault struct {
	rec      *enode
	index    int
	value    any
	fieldMap map[string]any
}

// ecompiler holds the state of one newEncoder call.
type ecompiler struct {
	st       map[string]*enode // goavro's symbol table: builtins and named types by full name
	defaults []pendingDefault
}

// newEncoder compiles schema, which goavro must already have accepted:
// newEncoder does not check what goavro checks, it only reads the schema
// the way goavro does.
func newEncoder(schema string) (*encoder, error) {
	var s any
	if err := json.Unmarshal([]byte(schema), &s); err != nil {
		return nil, err
	}
	c := &ecompiler{st: make(map[string]*enode, len(builtinNodes)+8)}
	for k, n := range builtinNodes {
		c.st[k] = n
	}
	root, err := c.build("", s)
	if err != nil {
		return nil, err
	}
	for _, d := range c.defaults {
		if err := d.rec.setDefault(d.index, d.value, d.fieldMap); err != nil {
			return nil, err
		}
	}
	return &encoder{root: root}, nil
}

// encode appends the Avro binary of v to buf.
func (e *encoder) encode(buf []byte, v any) ([]byte, error) {
	out, err := encodeValue(buf, e.root, v, 0)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// build is goavro's buildCodec.
func (c *ecompiler) build(ns string, schema any) (*enode, error) {
	switch s := schema.(type) {
	case map[string]any:
		return c.buildMap(ns, s)
	case string:
		return c.buildString(ns, s, nil)
	case []any:
		return c.buildUnion(ns, s)
	}
	return nil, fmt.Errorf("unknown schema type: %T", schema)
}

// buildMap is goavro's buildCodecForTypeDescribedByMap.
func (c *ecompiler) buildMap(ns string, m map[string]any) (*enode, error) {
	switch t := m["type"].(type) {
	case string:
		return c.buildString(ns, t, m)
	case map[string]any:
		return c.buildMap(ns, t)
	case []any:
		return c.buildUnion(ns, t)
	}
	return nil, fmt.Errorf("type ought to be a string, object or array: %v", m)
}

// buildString is goavro's buildCodecForTypeDescribedByString: a type
// named by a string, with m the schema object it appears in (nil for a
// bare string). Note goavro's order: a name as written wins over the name
// in the enclosing namespace.
func (c *ecompiler) buildString(ns, typeName string, m map[string]any) (*enode, error) {
	isLogical := false
	searchType := typeName
	if lt := m["logicalType"]; lt != nil {
		isLogical = true
		searchType = fmt.Sprintf("%s.%s", typeName, lt)
	}
	if n, ok := c.st[searchType]; ok {
		if searchType == "bytes.decimal" {
			return nil, errEncoderUnsupported
		}
		return n, nil
	}
	if ns != "" {
		if n, ok := c.st[ns+"."+typeName]; ok {
			return n, nil
		}
	}
	switch searchType {
	case "array", "map":
		key, kind := "items", eArray
		if searchType == "map" {
			key, kind = "values", eMap
		}
		items, ok := m[key]
		if !ok {
			return nil, fmt.Errorf("%s ought to have %s key", searchType, key)
		}
		in, err := c.build(ns, items)
		if err != nil {
			return nil, err
		}
		return &enode{kind: kind, name: searchType, items: in}, nil
	case "enum":
		return c.buildEnum(ns, m)
	case "fixed":
		return c.buildFixed(ns, m)
	case "record":
		return c.buildRecord(ns, m)
	case "bytes.decimal", "fixed.decimal", "string.validated-string":
		return nil, errEncoderUnsupported
	}
	if isLogical {
		// goavro reads an unknown logical type as its underlying type.
		delete(m, "logicalType")
		return c.buildString(ns, typeName, m)
	}
	return nil, fmt.Errorf("unknown type name: %q", searchType)
}

// typeName is goavro's newNameFromSchemaMap: the full name of a named
// type and its namespace, which encloses the names inside it.
func typeName(ns string, m map[string]any) (full, namespace string, err error) {
	name, _ := m["name"].(string)
	if name == "" {
		return "", "", fmt.Errorf("schema ought to have a name: %v", m)
	}
	own, _ := m["namespace"].(string)
	switch i := strings.LastIndexByte(name, '.'); {
	case i >= 0:
		return name, name[:i], nil
	case own != "":
		return own + "." + name, own, nil
	case ns != "":
		return ns + "." + name, ns, nil
	}
	return name, "", nil
}

// register adds a named node to the symbol table, replacing any earlier
// type of the same name as goavro does.
func (c *ecompiler) register(kind ekind, ns string, m map[string]any) (*enode, string, error) {
	full, namespace, err := typeName(ns, m)
	if err != nil {
		return nil, "", err
	}
	n := &enode{kind: kind, name: full, quoted: fmt.Sprintf("%q", full)}
	c.st[full] = n
	return n, namespace, nil
}

func (c *ecompiler) buildEnum(ns string, m map[string]any) (*enode, error) {
	n, _, err := c.register(eEnum, ns, m)
	if err != nil {
		return nil, err
	}
	syms, _ := m["symbols"].([]any)
	for _, s := range syms {
		sym, ok := s.(string)
		if !ok {
			return nil, fmt.Errorf("enum %s symbol is %T", n.name, s)
		}
		n.symbols = append(n.symbols, sym)
	}
	if len(n.symbols) > 8 {
		n.symbolAt = make(map[string]int64, len(n.symbols))
		for i := len(n.symbols) - 1; i >= 0; i-- { // the first of equal symbols wins, as in goavro's scan
			n.symbolAt[n.symbols[i]] = int64(i)
		}
	}
	return n, nil
}

func (c *ecompiler) buildFixed(ns string, m map[string]any) (*enode, error) {
	n, _, err := c.register(eFixed, ns, m)
	if err != nil {
		return nil, err
	}
	// goavro's sizeFromSchemaMap.
	switch s := m["size"].(type) {
	case float64:
		if s <= 0 {
			return nil, fmt.Errorf("fixed %s size %v", n.name, s)
		}
		n.size = uint(s)
	case string:
		size, err := strconv.ParseUint(s, 10, 0)
		if err != nil {
			return nil, fmt.Errorf("fixed %s size %q", n.name, s)
		}
		n.size = uint(size)
	default:
		return nil, fmt.Errorf("fixed %s size %v", n.name, s)
	}
	return n, nil
}

func (c *ecompiler) buildRecord(ns string, m map[string]any) (*enode, error) {
	// Registered before its fields are built, so that they may refer to it.
	n, namespace, err := c.register(eRecord, ns, m)
	if err != nil {
		return nil, err
	}
	fs, _ := m["fields"].([]any)
	n.fields = make([]efield, len(fs))
	for i, f := range fs {
		fm, ok := f.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("record %s field %d is %T", n.name, i+1, f)
		}
		// The field object is itself the schema of the field's type when
		// its "type" is a string (goavro passes it down whole).
		fn, err := c.build(namespace, fm)
		if err != nil {
			return nil, err
		}
		name, _ := fm["name"].(string)
		if i := strings.LastIndexByte(name, '.'); i >= 0 {
			name = name[i+1:] // goavro uses the short name
		}
		prefix := fmt.Sprintf("cannot encode binary record %s field %q: ", n.quoted, name)
		n.fields[i] = efield{
			name:    name,
			node:    fn,
			frame:   prefix + "value does not match its schema: ",
			missing: prefix + "schema does not specify default value and no value provided",
		}
		if def, ok := fm["default"]; ok {
			c.defaults = append(c.defaults, pendingDefault{rec: n, index: i, value: def, fieldMap: fm})
		}
	}
	return n, nil
}

// buildUnion is goavro's buildCodecForTypeDescribedBySlice, plus the
// branch picks for bare values.
func (c *ecompiler) buildUnion(ns string, schemas []any) (*enode, error) {
	if len(schemas) == 0 {
		return nil, errors.New("union ought to have one or more members")
	}
	n := &enode{kind: eUnion, name: "union"}
	names := make([]string, len(schemas))
	for i, s := range schemas {
		b, err := c.build(ns, s)
		if err != nil {
			return nil, err
		}
		n.branches = append(n.branches, b)
		names[i] = b.name
	}
	n.allowed = fmt.Sprint(names)
	n.pick = pickBranches(n.branches)
	return n, nil
}

// pickBranches works out where each class of bare value goes; see the
// package doc in native.go for the rule.
func pickBranches(bs []*enode) unionPick {
	first := func(kinds ...ekind) int {
		for _, k := range kinds {
			for i, b := range bs {
				if b.kind == k {
					return i
				}
			}
		}
		return -1
	}
	only := func(k ekind) int {
		at := -1
		for i, b := range bs {
			if b.kind == k {
				if at >= 0 {
					return -1
				}
				at = i
			}
		}
		return at
	}
	p := unionPick{
		null:    first(eNull),
		str:     first(eString),
		bytes:   first(eBytes),
		boolean: first(eBoolean),
		integer: first(eLong, eInt),
		float:   first(eDouble, eFloat),
		time:    -1,
		array:   first(eArray),
		mapv:    first(eMap),
		record:  only(eRecord),
	}
	for _, b := range bs {
		if b.kind == eRecord {
			p.records++
		}
	}
	p.plainString = p.str >= 0
	if p.str < 0 {
		p.str = only(eEnum)
	}
	if p.bytes < 0 {
		p.bytes = only(eFixed)
	}
	for i, b := range bs {
		if b.kind == eTimestampMicros || b.kind == eTimestampMillis {
			p.time = i
			break
		}
	}
	if p.time < 0 {
		p.time = first(eDate)
	}
	return p
}

// setDefault converts a field's default as goavro's makeRecordCodec does
// (by the short name of the field's type) and encodes it once.
func (n *enode) setDefault(i int, def any, fieldMap map[string]any) error {
	f := &n.fields[i]
	short := f.node.name
	if j := strings.LastIndexByte(short, '.'); j >= 0 {
		short = short[j+1:]
	}
	bad := func() error {
		return fmt.Errorf("record %s field %q: default value %v does not suit type %s", n.name, f.name, def, f.node.name)
	}
	switch short {
	case "boolean":
		if _, ok := def.(bool); !ok {
			return bad()
		}
	case "double":
		if _, ok := def.(float64); !ok {
			return bad()
		}
	case "string":
		if _, ok := def.(string); !ok {
			return bad()
		}
	case "bytes":
		s, ok := def.(string)
		if !ok {
			return bad()
		}
		def = []byte(s)
	case "float", "int", "long":
		v, ok := def.(float64)
		if !ok {
			return bad()
		}
		switch short {
		case "float":
			def = float32(v)
		case "int":
			def = int32(v)
		default:
			def = int64(v)
		}
	case "union":
		if def == "null" { // goavro's EnableStringNull, on by default
			def = nil
		}
		def = goavro.Union(f.node.branches[0].name, def)
	case "decimal":
		return errEncoderUnsupported
	default:
		if fieldMap["logicalType"] == "decimal" {
			return errEncoderUnsupported
		}
	}
	b, err := encodeValue(nil, f.node, def, 0)
	if err != nil {
		return fmt.Errorf("record %s field %q: default value: %w", n.name, f.name, err)
	}
	f.hasDefault, f.defBytes = true, b
	return nil
}

// encodeError is an error met while encoding: the innermost problem and
// the places it was met in. The message is only put together when asked
// for, so an error deep in a value costs one append per level, not a copy
// of the message so far.
type encodeError struct {
	leaf   string
	frames []string // prefixes, innermost first
}

func (e *encodeError) Error() string {
	size := len(e.leaf)
	for _, f := range e.frames {
		size += len(f)
	}
	var b strings.Builder
	b.Grow(size)
	for i := len(e.frames) - 1; i >= 0; i-- {
		b.WriteString(e.frames[i])
	}
	b.WriteString(e.leaf)
	return b.String()
}

func (e *encodeError) in(frame string) *encodeError {
	e.frames = append(e.frames, frame)
	return e
}

func errorf(format string, args ...any) *encodeError {
	return &encodeError{leaf: fmt.Sprintf(format, args...)}
}

// encodeValue appends the encoding of v as n to buf. depth counts the
// records v is inside.
func encodeValue(buf []byte, n *enode, v any, depth int) ([]byte, *encodeError) {
	switch n.kind {
	case eRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, errorf("cannot encode binary record %s: expected map[string]interface{}; received: %T", n.quoted, v)
		}
		if depth >= maxRecordDepth {
			return nil, errorf("cannot encode binary record %s: value nested more than %d records deep", n.quoted, maxRecordDepth)
		}
		for i := range n.fields {
			f := &n.fields[i]
			fv, ok := m[f.name]
			if !ok {
				if !f.hasDefault {
					return nil, &encodeError{leaf: f.missing}
				}
				buf = append(buf, f.defBytes...)
				continue
			}
			var err *encodeError
			if buf, err = encodeValue(buf, f.node, fv, depth+1); err != nil {
				return nil, err.in(f.frame)
			}
		}
		return buf, nil
	case eUnion:
		// Fast paths for the values most union fields hold: null and a
		// string for a "string" branch.
		switch x := v.(type) {
		case nil:
			if n.pick.null >= 0 {
				return appendLong(buf, int64(n.pick.null)), nil
			}
		case string:
			if n.pick.plainString {
				return appendAvroString(appendLong(buf, int64(n.pick.str)), x), nil
			}
		}
		i, bv := n.branchFor(v)
		if i < 0 {
			return nil, n.unionError(v)
		}
		buf = appendLong(buf, int64(i))
		// As in goavro, errors of the branch's value are not wrapped.
		return encodeValue(buf, n.branches[i], bv, depth)
	case eNull:
		if v != nil {
			return nil, errorf("cannot encode binary null: expected: Go nil; received: %T", v)
		}
		return buf, nil
	case eBoolean:
		b, ok := v.(bool)
		if !ok {
			return nil, errorf("cannot encode binary boolean: expected: Go bool; received: %T", v)
		}
		if b {
			return append(buf, 1), nil
		}
		return append(buf, 0), nil
	case eString:
		switch s := v.(type) {
		case string:
			return appendAvroString(buf, s), nil
		case []byte:
			return append(appendLong(buf, int64(len(s))), s...), nil
		}
		return nil, errorf("cannot encode binary bytes: expected: string; received: %T", v)
	case eBytes:
		switch s := v.(type) {
		case []byte:
			return append(appendLong(buf, int64(len(s))), s...), nil
		case string:
			return appendAvroString(buf, s), nil
		}
		return nil, errorf("cannot encode binary bytes: expected: []byte or string; received: %T", v)
	case eLong:
		return encodeLong(buf, v)
	case eInt:
		return encodeInt(buf, v)
	case eDouble:
		return encodeDouble(buf, v)
	case eFloat:
		return encodeFloat(buf, v)
	case eTimestampMicros, eTimestampMillis, eTimeMicros, eTimeMillis, eDate:
		return encodeLogical(buf, n.kind, v)
	case eEnum:
		s, ok := v.(string)
		if !ok {
			return nil, errorf("cannot encode binary enum %s: expected string; received: %T", n.quoted, v)
		}
		if n.symbolAt != nil {
			if i, ok := n.symbolAt[s]; ok {
				return appendLong(buf, i), nil
			}
		} else {
			for i, sym := range n.symbols {
				if sym == s {
					return appendLong(buf, int64(i)), nil
				}
			}
		}
		return nil, errorf("cannot encode binary enum %s: value ought to be member of symbols: %v; %q", n.quoted, n.symbols, s)
	case eFixed:
		var size uint
		switch s := v.(type) {
		case []byte:
			if size = uint(len(s)); size == n.size {
				return append(buf, s...), nil
			}
		case string:
			if size = uint(len(s)); size == n.size {
				return append(buf, s...), nil
			}
		default:
			return nil, errorf("cannot encode binary fixed %s: expected []byte or string; received: %T", n.quoted, v)
		}
		return nil, errorf("cannot encode binary fixed %s: datum size ought to equal schema size: %d != %d", n.quoted, size, n.size)
	case eArray:
		return encodeArray(buf, n, v, depth)
	case eMap:
		return encodeMap(buf, n, v, depth)
	}
	return nil, errorf("avro: cannot encode schema kind %d", n.kind)
}

// branchFor returns the branch index for a union value and the value to
// encode with that branch; -1 when no branch takes it. Bare values are
// told apart by a type switch, without map lookups.
func (n *enode) branchFor(v any) (int, any) {
	p := &n.pick
	switch x := v.(type) {
	case nil:
		return p.null, nil
	case string:
		return p.str, v
	case map[string]any:
		// goavro's form when the only key names a branch; else a bare
		// record or map. Looking the few branch names up in a one-entry
		// map is quicker than starting an iteration over it.
		if len(x) == 1 {
			for i, b := range n.branches {
				if inner, ok := x[b.name]; ok {
					return i, inner
				}
			}
		}
		if p.record >= 0 {
			return p.record, v
		}
		return p.mapv, v
	case int64, int, int32, int16, int8, uint, uint64, uint32, uint16, uint8, uintptr:
		return p.integer, v
	case float64, float32:
		return p.float, v
	case bool:
		return p.boolean, v
	case time.Time:
		return p.time, v
	case []byte:
		return p.bytes, v
	case []any, []string:
		return p.array, v
	}
	switch reflect.TypeOf(v).Kind() {
	case reflect.Slice:
		return p.array, v
	case reflect.Map:
		return p.mapv, v
	}
	return -1, v
}

// unionError is the error for a union value no branch takes, in goavro's
// words where goavro refuses the same value.
func (n *enode) unionError(v any) *encodeError {
	m, ok := v.(map[string]any)
	if ok && n.pick.records > 1 && n.pick.mapv < 0 {
		// goavro refuses it too, but with advice for its own form only.
		return errorf("cannot encode binary union: a bare record does not say which of the union's records it is, "+
			"give it as {full name: record}; allowed types: %s; received: %T", n.allowed, v)
	}
	if ok && len(m) != 1 {
		return errorf("cannot encode binary union: non-nil Union values ought to be specified with Go map[string]interface{}, with single key equal to type name, and value equal to datum value: %s; received: %T", n.allowed, v)
	}
	return errorf("cannot encode binary union: no member schema types support datum: allowed types: %s; received: %T", n.allowed, v)
}

// appendLong appends v zig-zag encoded as a varint, as goavro's
// integerBinaryEncoder does.
func appendLong(buf []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		buf = append(buf, byte(u)|0x80)
		u >>= 7
	}
	return append(buf, byte(u))
}

// appendAvroString appends s with its length, as a string or bytes value.
func appendAvroString(buf []byte, s string) []byte {
	return append(appendLong(buf, int64(len(s))), s...)
}

// The numeric conversions below are goavro's, expression for expression:
// the result of converting an out-of-range float to an integer is up to
// the platform, and writing the same expressions keeps the two encoders
// in step wherever they run.

func encodeLong(buf []byte, v any) ([]byte, *encodeError) {
	var value int64
	switch x := v.(type) {
	case int64:
		value = x
	case int:
		value = int64(x)
	case int32:
		value = int64(x)
	case float64:
		if value = int64(x); float64(value) != x {
			return nil, errorf("cannot encode binary long: provided Go float64 would lose precision: %f", x)
		}
	case float32:
		if value = int64(x); float32(value) != x {
			return nil, errorf("cannot encode binary long: provided Go float32 would lose precision: %f", x)
		}
	default:
		return nil, errorf("long: expected: Go numeric; received: %T", v)
	}
	return appendLong(buf, value), nil
}

func encodeInt(buf []byte, v any) ([]byte, *encodeError) {
	var value int32
	switch x := v.(type) {
	case int32:
		value = x
	case int:
		if value = int32(x); int(value) != x {
			return nil, errorf("cannot encode binary int: provided Go int would lose precision: %d", x)
		}
	case int64:
		if value = int32(x); int64(value) != x {
			return nil, errorf("cannot encode binary int: provided Go int64 would lose precision: %d", x)
		}
	case float64:
		if value = int32(x); float64(value) != x {
			return nil, errorf("cannot encode binary int: provided Go float64 would lose precision: %f", x)
		}
	case float32:
		if value = int32(x); float32(value) != x {
			return nil, errorf("cannot encode binary int: provided Go float32 would lose precision: %f", x)
		}
	default:
		return nil, errorf("cannot encode binary int: expected: Go numeric; received: %T", v)
	}
	return appendLong(buf, int64(value)), nil
}

func encodeDouble(buf []byte, v any) ([]byte, *encodeError) {
	var value float64
	switch x := v.(type) {
	case float64:
		value = x
	case float32:
		value = float64(x)
	case int:
		if value = float64(x); int(value) != x {
			return nil, errorf("cannot encode binary double: provided Go int would lose precision: %d", x)
		}
	case int64:
		if value = float64(x); int64(value) != x {
			return nil, errorf("cannot encode binary double: provided Go int64 would lose precision: %d", x)
		}
	case int32:
		if value = float64(x); int32(value) != x {
			return nil, errorf("cannot encode binary double: provided Go int32 would lose precision: %d", x)
		}
	default:
		return nil, errorf("cannot encode binary double: expected: Go numeric; received: %T", v)
	}
	u := math.Float64bits(value)
	return append(buf, byte(u), byte(u>>8), byte(u>>16), byte(u>>24), byte(u>>32), byte(u>>40), byte(u>>48), byte(u>>56)), nil
}

func encodeFloat(buf []byte, v any) ([]byte, *encodeError) {
	var value float32
	switch x := v.(type) {
	case float32:
		value = x
	case float64:
		value = float32(x) // goavro accepts the loss of precision
	case int:
		if value = float32(x); int(value) != x {
			return nil, errorf("cannot encode binary float: provided Go int would lose precision: %d", x)
		}
	case int64:
		if value = float32(x); int64(value) != x {
			return nil, errorf("cannot encode binary float: provided Go int64 would lose precision: %d", x)
		}
	case int32:
		if value = float32(x); int32(value) != x {
			return nil, errorf("cannot encode binary float: provided Go int32 would lose precision: %d", x)
		}
	default:
		return nil, errorf("cannot encode binary float: expected: Go numeric; received: %T", v)
	}
	u := math.Float32bits(value)
	return append(buf, byte(u), byte(u>>8), byte(u>>16), byte(u>>24)), nil
}

// encodeLogical encodes the logical types of goavro's logical_type.go:
// a Go number as the underlying int or long, or the time type each takes.
func encodeLogical(buf []byte, k ekind, v any) ([]byte, *encodeError) {
	isInt := k == eTimeMillis || k == eDate
	switch x := v.(type) {
	case int, int32, int64, float32, float64:
		if isInt {
			return encodeInt(buf, v)
		}
		return encodeLong(buf, v)
	case time.Time:
		switch k {
		case eTimestampMicros:
			return appendTimeMicros(buf, x), nil
		case eTimestampMillis:
			return appendLong(buf, x.Unix()*1e3+int64(x.Nanosecond()/1e6)), nil
		case eDate:
			days := x.Unix() / 86400
			if int64(int32(days)) != days {
				return nil, errorf("cannot encode binary int: provided Go int64 would lose precision: %d", days)
			}
			return appendLong(buf, days), nil
		}
	case time.Duration:
		switch k {
		case eTimeMicros:
			return appendLong(buf, x.Nanoseconds()/int64(time.Microsecond)), nil
		case eTimeMillis:
			return appendLong(buf, int64(int32(x.Nanoseconds()/int64(time.Millisecond)))), nil
		}
	}
	switch k {
	case eTimestampMicros:
		return nil, errorf("cannot transform to binary timestamp-micros, expected time.Time or Go numeric, received %T", v)
	case eTimestampMillis:
		return nil, errorf("cannot transform to binary timestamp-millis, expected time.Time or Go numeric, received %T", v)
	case eTimeMicros:
		return nil, errorf("cannot transform to binary time-micros, expected time.Duration or Go numeric, received %T", v)
	case eTimeMillis:
		return nil, errorf("cannot transform to binary time-millis, expected time.Duration or Go numeric, received %T", v)
	}
	return nil, errorf("cannot transform to binary date, expected time.Time or Go numeric, received %T", v)
}

// blockCount is the count of the next block of an array or map with
// remaining items left, as goavro splits them.
func blockCount(remaining int64) int64 {
	if remaining > goavro.MaxBlockCount {
		return goavro.MaxBlockCount
	}
	return remaining
}

func encodeArray(buf []byte, n *enode, v any, depth int) ([]byte, *encodeError) {
	var items []any
	switch x := v.(type) {
	case []any:
		items = x
	case []string:
		if n.items.kind == eString || n.items.kind == eBytes {
			return encodeStrings(buf, x), nil
		}
		items = make([]any, len(x))
		for i, s := range x {
			items[i] = s
		}
	default:
		// goavro's convertArray: any slice, item by item.
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Slice {
			return nil, errorf("cannot encode binary array: cannot create []interface{}: expected slice; received: %T", v)
		}
		items = make([]any, rv.Len())
		for i := range items {
			items[i] = rv.Index(i).Interface()
		}
	}
	length := int64(len(items))
	var done, left int64
	for i, it := range items {
		if left == 0 {
			left = blockCount(length - done)
			buf = appendLong(buf, left)
		}
		var err *encodeError
		if buf, err = encodeValue(buf, n.items, it, depth); err != nil {
			// goavro also prints the item (%v); a value may hold itself,
			// which fmt would print until the stack overflows.
			return nil, err.in(fmt.Sprintf("cannot encode binary array item %d: ", i+1))
		}
		left--
		done++
	}
	return append(buf, 0), nil
}

// encodeStrings encodes a []string as an array of strings or bytes.
func encodeStrings(buf []byte, ss []string) []byte {
	length := int64(len(ss))
	var done, left int64
	for _, s := range ss {
		if left == 0 {
			left = blockCount(length - done)
			buf = appendLong(buf, left)
		}
		buf = appendAvroString(buf, s)
		left--
		done++
	}
	return append(buf, 0)
}

func encodeMap(buf []byte, n *enode, v any, depth int) ([]byte, *encodeError) {
	var m map[string]any
	switch x := v.(type) {
	case map[string]any:
		m = x
	case map[string]string:
		if n.items.kind == eString || n.items.kind == eBytes {
			return encodeStringMap(buf, x), nil
		}
		m = make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
	default:
		// goavro's convertMap: any map whose keys are all strings.
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Map {
			return nil, errorf("cannot encode binary map: cannot create map[string]interface{}: expected map[string]...; received: %T", v)
		}
		m = make(map[string]any, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			k, ok := it.Key().Interface().(string)
			if !ok {
				return nil, errorf("cannot encode binary map: cannot create map[string]interface{}: expected map[string]...; received: %T", v)
			}
			m[k] = it.Value().Interface()
		}
	}
	if len(m) == 0 {
		return append(buf, 0), nil // without starting an iteration
	}
	length := int64(len(m))
	var done, left int64
	for k, val := range m {
		if left == 0 {
			left = blockCount(length - done)
			buf = appendLong(buf, left)
		}
		buf = appendAvroString(buf, k)
		var err *encodeError
		if buf, err = encodeValue(buf, n.items, val, depth); err != nil {
			// goavro also prints the value (%v); see encodeArray.
			return nil, err.in(fmt.Sprintf("cannot encode binary map value for key %q: ", k))
		}
		left--
		done++
	}
	return append(buf, 0), nil
}

// encodeStringMap encodes a map[string]string as a map of strings or bytes.
func encodeStringMap(buf []byte, m map[string]string) []byte {
	length := int64(len(m))
	var done, left int64
	for k, s := range m {
		if left == 0 {
			left = blockCount(length - done)
			buf = appendLong(buf, left)
		}
		buf = appendAvroString(buf, k)
		buf = appendAvroString(buf, s)
		left--
		done++
	}
	return append(buf, 0)
}
