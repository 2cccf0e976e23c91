package avro

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// node is the part of a schema needed to render native values as JSON.
type node struct {
	kind     string // record, union, array, map, enum, fixed, or a primitive
	logical  string
	name     string // branch name within a union
	fields   []field
	branches []*node
	items    *node
}

type field struct {
	name string
	node *node
}

func parseShape(schema string) (*node, error) {
	var v any
	if err := json.Unmarshal([]byte(schema), &v); err != nil {
		return nil, err
	}
	named := map[string]*node{}
	return shapeOf(v, "", named)
}

func fullName(name, ns string) string {
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			return name
		}
	}
	if ns == "" {
		return name
	}
	return ns + "." + name
}

func shapeOf(v any, ns string, named map[string]*node) (*node, error) {
	switch t := v.(type) {
	case string:
		switch t {
		case "null", "boolean", "int", "long", "float", "double", "bytes", "string":
			return &node{kind: t, name: t}, nil
		}
		if n, ok := named[fullName(t, ns)]; ok {
			return n, nil
		}
		if n, ok := named[t]; ok {
			return n, nil
		}
		return nil, fmt.Errorf("unknown type %q", t)
	case []any:
		u := &node{kind: "union", name: "union"}
		for _, b := range t {
			bn, err := shapeOf(b, ns, named)
			if err != nil {
				return nil, err
			}
			u.branches = append(u.branches, bn)
		}
		return u, nil
	case map[string]any:
		typ, _ := t["type"].(string)
		logical, _ := t["logicalType"].(string)
		switch typ {
		case "record", "error":
			name, _ := t["name"].(string)
			if nsv, ok := t["namespace"].(string); ok && !containsDot(name) {
				ns = nsv
			}
			fn := fullName(name, ns)
			if containsDot(name) {
				ns = name[:lastDot(name)]
			}
			n := &node{kind: "record", name: fn}
			named[fn] = n
			fs, _ := t["fields"].([]any)
			for _, f := range fs {
				fm, _ := f.(map[string]any)
				fname, _ := fm["name"].(string)
				fnode, err := shapeOf(fm["type"], ns, named)
				if err != nil {
					return nil, fmt.Errorf("field %s: %w", fname, err)
				}
				n.fields = append(n.fields, field{name: fname, node: fnode})
			}
			return n, nil
		case "enum", "fixed":
			name, _ := t["name"].(string)
			if nsv, ok := t["namespace"].(string); ok && !containsDot(name) {
				ns = nsv
			}
			n := &node{kind: typ, name: fullName(name, ns)}
			named[n.name] = n
			return n, nil
		case "array":
			items, err := shapeOf(t["items"], ns, named)
			if err != nil {
				return nil, err
			}
			return &node{kind: "array", name: "array", items: items}, nil
		case "map":
			values, err := shapeOf(t["values"], ns, named)
			if err != nil {
				return nil, err
			}
			return &node{kind: "map", name: "map", items: values}, nil
		default:
			n, err := shapeOf(typ, ns, named)
			if err != nil {
				return nil, err
			}
			if logical == "" {
				return n, nil
			}
			return &node{kind: n.kind, logical: logical, name: n.kind + "." + logical}, nil
		}
	}
	return nil, fmt.Errorf("unexpected schema element %T", v)
}

func containsDot(s string) bool { return lastDot(s) >= 0 }

func lastDot(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

// AppendJSON renders a native value decoded with this codec as plain JSON:
// unions unwrapped, timestamps as RFC 3339 UTC strings, bytes as text when
// they are valid UTF-8 and as {"base64": "..."} otherwise.
func (c *Codec) AppendJSON(dst []byte, native any) ([]byte, error) {
	return appendJSON(dst, c.shape, native)
}

func appendJSON(dst []byte, n *node, v any) ([]byte, error) {
	switch n.kind {
	case "union":
		if v == nil {
			return append(dst, "null"...), nil
		}
		m, ok := v.(map[string]any)
		if !ok || len(m) != 1 {
			return nil, fmt.Errorf("union value %T is not a one-key map", v)
		}
		for k, inner := range m {
			for _, b := range n.branches {
				if b.name == k {
					return appendJSON(dst, b, inner)
				}
			}
			return nil, fmt.Errorf("union has no branch %q", k)
		}
	case "record":
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("record %s value is %T", n.name, v)
		}
		dst = append(dst, '{')
		for i, f := range n.fields {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, f.name)
			dst = append(dst, ':')
			var err error
			if dst, err = appendJSON(dst, f.node, m[f.name]); err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
		}
		return append(dst, '}'), nil
	case "array":
		items, _ := v.([]any)
		dst = append(dst, '[')
		for i, it := range items {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendJSON(dst, n.items, it); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case "map":
		m, _ := v.(map[string]any)
		// Sorted keys, so that one record always renders to the same bytes.
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = appendJSON(dst, n.items, m[k]); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	case "null":
		return append(dst, "null"...), nil
	}
	return appendScalar(dst, v)
}

func appendScalar(dst []byte, v any) ([]byte, error) {
	switch t := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return appendString(dst, t), nil
	case bool:
		return strconv.AppendBool(dst, t), nil
	case int32:
		return strconv.AppendInt(dst, int64(t), 10), nil
	case int64:
		return strconv.AppendInt(dst, t, 10), nil
	case int:
		return strconv.AppendInt(dst, int64(t), 10), nil
	case float32:
		return appendFloat(dst, float64(t), 32), nil
	case float64:
		return appendFloat(dst, t, 64), nil
	case time.Time:
		dst = append(dst, '"')
		dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"'), nil
	case []byte:
		if utf8.Valid(t) {
			return appendString(dst, string(t)), nil
		}
		dst = append(dst, `{"base64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, t)
		return append(dst, `"}`...), nil
	}
	return nil, fmt.Errorf("unsupported native value %T", v)
}

// appendFloat appends f in the shortest form that reads back as the same
// float of bitSize bits, so a float32 0.1 is 0.1, not 0.10000000149011612.
func appendFloat(dst []byte, f float64, bitSize int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	// Plain notation where JavaScript's JSON.stringify would use it, so
	// epoch seconds read as 1433188255.5, not 1.4331882555e+09.
	if a := math.Abs(f); a == 0 || (a >= 1e-6 && a < 1e21) {
		return strconv.AppendFloat(dst, f, 'f', -1, bitSize)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, bitSize)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string: invalid UTF-8 becomes
// U+FFFD; quotes, backslashes, control characters and U+2028/U+2029 are
// escaped. Sinks use it to render text the way AppendJSON does.
func AppendJSONString(dst []byte, s string) []byte { return appendString(dst, s) }

// appendString appends s as a JSON string, replacing invalid UTF-8 with
// U+FFFD and escaping control characters.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
