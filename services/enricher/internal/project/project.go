// Package project decodes the parts of an Avro record that the enricher
// reads, and skips the rest: a projection. Decoding a whole record into
// goavro native values allocates a map for every record and every union
// value; the enricher reads a few fields of each event, and on its fast
// path copies the raw bytes to the enriched topic unchanged, so decoding
// the rest is wasted.
//
// The values it does decode have goavro's native shapes (records as maps,
// unions as one-key maps naming the branch, timestamps as time.Time), so
// the enricher's readers work on either. A Program is compiled once per
// writer schema and wanted-field set.
package project

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Wanted names the fields to decode: each key is a field name, its value
// the fields wanted inside it (nil: the whole value). Union branches and
// array items are transparent: the same Wanted applies to each branch
// record and each item record.
type Wanted map[string]Wanted

// Program decodes one schema's records.
type Program struct {
	root *node
}

type kind uint8

const (
	kNull kind = iota
	kBoolean
	kInt
	kLong
	kFloat
	kDouble
	kBytes
	kString
	kRecord
	kEnum
	kArray
	kMap
	kUnion
	kFixed
)

type node struct {
	kind    kind
	logical string // timestamp-micros, timestamp-millis
	name    string // union branch name, goavro style
	fields  []field
	items   *node   // array
	values  *node   // map
	union   []*node // branches
	symbols []string
	size    int
}

type field struct {
	name string
	node *node
	want Wanted
	keep bool
}

// ErrShort is returned for a body that ends early.
var ErrShort = errors.New("project: short buffer")

// Compile builds a program for a record schema text.
func Compile(schema string) (*Program, error) {
	var v any
	if err := json.Unmarshal([]byte(schema), &v); err != nil {
		return nil, fmt.Errorf("project: %w", err)
	}
	c := &compiler{named: map[string]*node{}}
	root, err := c.node(v, "")
	if err != nil {
		return nil, err
	}
	if root.kind != kRecord {
		return nil, errors.New("project: the schema is not a record")
	}
	return &Program{root: root}, nil
}

type compiler struct {
	named map[string]*node
}

func fullName(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	return ns + "." + name
}

func (c *compiler) node(v any, ns string) (*node, error) {
	switch t := v.(type) {
	case string:
		switch t {
		case "null":
			return &node{kind: kNull, name: "null"}, nil
		case "boolean":
			return &node{kind: kBoolean, name: t}, nil
		case "int":
			return &node{kind: kInt, name: t}, nil
		case "long":
			return &node{kind: kLong, name: t}, nil
		case "float":
			return &node{kind: kFloat, name: t}, nil
		case "double":
			return &node{kind: kDouble, name: t}, nil
		case "bytes":
			return &node{kind: kBytes, name: t}, nil
		case "string":
			return &node{kind: kString, name: t}, nil
		}
		if n, ok := c.named[fullName(t, ns)]; ok {
			return n, nil
		}
		if n, ok := c.named[t]; ok {
			return n, nil
		}
		return nil, fmt.Errorf("project: unknown type %q", t)
	case []any:
		u := &node{kind: kUnion}
		for _, b := range t {
			bn, err := c.node(b, ns)
			if err != nil {
				return nil, err
			}
			u.union = append(u.union, bn)
		}
		return u, nil
	case map[string]any:
		typ, _ := t["type"].(string)
		logical, _ := t["logicalType"].(string)
		switch typ {
		case "record", "error":
			name, _ := t["name"].(string)
			if n, ok := t["namespace"].(string); ok && !strings.Contains(name, ".") {
				ns = n
			}
			full := fullName(name, ns)
			if i := strings.LastIndex(full, "."); i >= 0 {
				ns = full[:i]
			}
			n := &node{kind: kRecord, name: full}
			c.named[full] = n
			fs, _ := t["fields"].([]any)
			for _, f := range fs {
				fm, _ := f.(map[string]any)
				fname, _ := fm["name"].(string)
				fn, err := c.node(fm["type"], ns)
				if err != nil {
					return nil, fmt.Errorf("field %s: %w", fname, err)
				}
				n.fields = append(n.fields, field{name: fname, node: fn})
			}
			return n, nil
		case "enum":
			name, _ := t["name"].(string)
			if n, ok := t["namespace"].(string); ok && !strings.Contains(name, ".") {
				ns = n
			}
			n := &node{kind: kEnum, name: fullName(name, ns)}
			for _, s := range t["symbols"].([]any) {
				n.symbols = append(n.symbols, s.(string))
			}
			c.named[n.name] = n
			return n, nil
		case "fixed":
			name, _ := t["name"].(string)
			if n, ok := t["namespace"].(string); ok && !strings.Contains(name, ".") {
				ns = n
			}
			size, _ := t["size"].(float64)
			n := &node{kind: kFixed, name: fullName(name, ns), size: int(size)}
			c.named[n.name] = n
			return n, nil
		case "array":
			items, err := c.node(t["items"], ns)
			if err != nil {
				return nil, err
			}
			return &node{kind: kArray, name: "array", items: items}, nil
		case "map":
			values, err := c.node(t["values"], ns)
			if err != nil {
				return nil, err
			}
			return &node{kind: kMap, name: "map", values: values}, nil
		}
		n, err := c.node(t["type"], ns)
		if err != nil {
			return nil, err
		}
		if logical == "timestamp-micros" || logical == "timestamp-millis" {
			cp := *n
			cp.logical = logical
			cp.name = n.name + "." + logical
			return &cp, nil
		}
		return n, nil
	}
	return nil, fmt.Errorf("project: bad schema element %T", v)
}

// Decode decodes the wanted fields of one record body (Avro binary, no
// wire-format header) into a map with only those fields, in goavro's
// shapes.
func (p *Program) Decode(body []byte, want Wanted) (map[string]any, error) {
	return p.decode(body, want, false)
}

// DecodeLoose is Decode, except that a union holding anything but a record
// is its value itself rather than a one-key map naming the branch: one
// allocation less per value, for readers (like the enricher's) that accept
// both. Record branches keep their name.
func (p *Program) DecodeLoose(body []byte, want Wanted) (map[string]any, error) {
	return p.decode(body, want, true)
}

func (p *Program) decode(body []byte, want Wanted, loose bool) (map[string]any, error) {
	d := decoder{buf: body, loose: loose}
	v, err := d.record(p.root, want, true)
	if err != nil {
		return nil, err
	}
	if len(d.buf) != 0 {
		return nil, fmt.Errorf("project: %d trailing bytes after record", len(d.buf))
	}
	return v.(map[string]any), nil
}

type decoder struct {
	buf   []byte
	loose bool
}

func (d *decoder) long() (int64, error) {
	u, n := binary.Uvarint(d.buf)
	if n <= 0 {
		return 0, ErrShort
	}
	d.buf = d.buf[n:]
	return int64(u>>1) ^ -int64(u&1), nil
}

func (d *decoder) take(n int64) ([]byte, error) {
	if n < 0 || n > int64(len(d.buf)) {
		return nil, ErrShort
	}
	b := d.buf[:n]
	d.buf = d.buf[n:]
	return b, nil
}

// record decodes (keep) or skips a record; with keep and want nil, every
// field is decoded.
func (d *decoder) record(n *node, want Wanted, keep bool) (any, error) {
	var m map[string]any
	if keep {
		size := len(n.fields)
		if want != nil {
			size = len(want)
		}
		m = make(map[string]any, size)
	}
	for i := range n.fields {
		f := &n.fields[i]
		var sub Wanted
		fkeep := false
		if keep {
			if want == nil {
				fkeep = true
			} else if w, ok := want[f.name]; ok {
				fkeep, sub = true, w
			}
		}
		v, err := d.value(f.node, sub, fkeep)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		if fkeep {
			m[f.name] = v
		}
	}
	if !keep {
		return nil, nil
	}
	return m, nil
}

func (d *decoder) value(n *node, want Wanted, keep bool) (any, error) {
	switch n.kind {
	case kNull:
		return nil, nil
	case kBoolean:
		b, err := d.take(1)
		if err != nil {
			return nil, err
		}
		if !keep {
			return nil, nil
		}
		return b[0] != 0, nil
	case kInt, kLong:
		v, err := d.long()
		if err != nil || !keep {
			return nil, err
		}
		switch {
		case n.logical == "timestamp-micros":
			return time.UnixMicro(v).UTC(), nil // as goavro, without overflowing for far dates
		case n.logical == "timestamp-millis":
			return time.UnixMilli(v).UTC(), nil
		case n.kind == kInt:
			return int32(v), nil
		}
		return v, nil
	case kFloat:
		b, err := d.take(4)
		if err != nil || !keep {
			return nil, err
		}
		return math.Float32frombits(binary.LittleEndian.Uint32(b)), nil
	case kDouble:
		b, err := d.take(8)
		if err != nil || !keep {
			return nil, err
		}
		return math.Float64frombits(binary.LittleEndian.Uint64(b)), nil
	case kBytes, kString:
		l, err := d.long()
		if err != nil {
			return nil, err
		}
		b, err := d.take(l)
		if err != nil || !keep {
			return nil, err
		}
		if n.kind == kString {
			return string(b), nil
		}
		return append([]byte(nil), b...), nil
	case kFixed:
		b, err := d.take(int64(n.size))
		if err != nil || !keep {
			return nil, err
		}
		return append([]byte(nil), b...), nil
	case kEnum:
		i, err := d.long()
		if err != nil || !keep {
			return nil, err
		}
		if i < 0 || int(i) >= len(n.symbols) {
			return nil, fmt.Errorf("project: enum index %d out of range", i)
		}
		return n.symbols[i], nil
	case kRecord:
		return d.record(n, want, keep)
	case kUnion:
		i, err := d.long()
		if err != nil {
			return nil, err
		}
		if i < 0 || int(i) >= len(n.union) {
			return nil, fmt.Errorf("project: union index %d out of range", i)
		}
		b := n.union[i]
		v, err := d.value(b, want, keep)
		if err != nil || !keep || b.kind == kNull {
			return nil, err
		}
		if d.loose && b.kind != kRecord {
			return v, nil
		}
		return map[string]any{b.name: v}, nil
	case kArray:
		var out []any
		if keep {
			out = []any{}
		}
		err := d.blocks(n.items.kind == kNull, func() error {
			v, err := d.value(n.items, want, keep)
			if keep {
				out = append(out, v)
			}
			return err
		})
		if err != nil || !keep {
			return nil, err
		}
		return out, nil
	case kMap:
		var out map[string]any
		if keep {
			out = map[string]any{}
		}
		err := d.blocks(false, func() error {
			l, err := d.long()
			if err != nil {
				return err
			}
			k, err := d.take(l)
			if err != nil {
				return err
			}
			v, err := d.value(n.values, want, keep)
			if keep {
				out[string(k)] = v
			}
			return err
		})
		if err != nil || !keep {
			return nil, err
		}
		return out, nil
	}
	return nil, fmt.Errorf("project: kind %d", n.kind)
}

// blocks runs item for every item of an array or map. A negative block
// count carries the block's byte size, which Sluice does not need: items
// are read one by one either way.
func (d *decoder) blocks(empty bool, item func() error) error {
	for {
		c, err := d.long()
		if err != nil {
			return err
		}
		if c == 0 {
			return nil
		}
		if c < 0 {
			c = -c
			if _, err := d.long(); err != nil { // byte size
				return err
			}
		}
		if !empty && c > int64(len(d.buf)) {
			return ErrShort // every item but a null takes a byte at least
		}
		for range c {
			if err := item(); err != nil {
				return err
			}
		}
	}
}
