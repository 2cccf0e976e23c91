package privacy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// schema is a parsed family schema, for checking field paths.
type schema struct {
	root  any
	named map[string]map[string]any // full name → definition
}

func parseSchema(text string) (*schema, error) {
	var root any
	if err := json.Unmarshal([]byte(text), &root); err != nil {
		return nil, fmt.Errorf("parsing schema: %w", err)
	}
	s := &schema{root: root, named: map[string]map[string]any{}}
	s.collect(root, "")
	return s, nil
}

func (s *schema) collect(v any, ns string) {
	switch t := v.(type) {
	case []any:
		for _, b := range t {
			s.collect(b, ns)
		}
	case map[string]any:
		switch typ, _ := t["type"].(string); typ {
		case "record", "enum", "fixed":
			name, _ := t["name"].(string)
			if n, ok := t["namespace"].(string); ok && !strings.Contains(name, ".") {
				ns = n
			}
			full := name
			if !strings.Contains(name, ".") && ns != "" {
				full = ns + "." + name
			}
			if i := strings.LastIndex(full, "."); i >= 0 {
				ns = full[:i]
			}
			t["__full"] = full
			t["__ns"] = ns
			s.named[full] = t
			if fs, ok := t["fields"].([]any); ok {
				for _, f := range fs {
					if fm, ok := f.(map[string]any); ok {
						s.collect(fm["type"], ns)
					}
				}
			}
		case "array":
			s.collect(t["items"], ns)
		case "map":
			s.collect(t["values"], ns)
		default:
			s.collect(t["type"], ns)
		}
	}
}

// deref resolves a type name to its definition (ns is the enclosing
// namespace); other types are returned as they are.
func (s *schema) deref(v any, ns string) any {
	name, ok := v.(string)
	if !ok {
		return v
	}
	if d, ok := s.named[name]; ok {
		return d
	}
	if d, ok := s.named[ns+"."+name]; ok {
		return d
	}
	return v
}

// compile checks a dotted path: every segment but the last must lead
// through records (or unions of records) and the last name a field in at
// least one of them. Hashing needs a string (or a union with a string
// branch); dropping needs a field that can be empty: a union with null,
// string, bytes, array or map.
func (s *schema) compile(text string, hashing bool) (*path, error) {
	segs := strings.Split(text, ".")
	for _, seg := range segs {
		if seg == "" {
			return nil, fmt.Errorf("field path %q has an empty part", text)
		}
	}
	if segs[0] == "enrichment" && len(segs) == 1 {
		return nil, fmt.Errorf("field path %q: the enrichment record itself cannot be changed", text)
	}
	nodes := []any{s.root}
	for i, seg := range segs {
		var next []any
		for _, n := range nodes {
			for _, rec := range s.records(n, "") {
				for _, f := range rec["fields"].([]any) {
					fm := f.(map[string]any)
					if fm["name"] == seg {
						ns, _ := rec["__ns"].(string)
						next = append(next, s.scoped(fm["type"], ns))
					}
				}
			}
		}
		if len(next) == 0 {
			return nil, fmt.Errorf("field path %q: no field %q at %s", text, seg, strings.Join(segs[:i], ".")+"(root)")
		}
		nodes = next
	}
	pt := &path{text: text, segs: segs}
	kinds := map[leafKind]bool{}
	for _, n := range nodes {
		kind, hasString, hasOther, err := s.leaf(n)
		if err != nil {
			return nil, fmt.Errorf("field path %q: %w", text, err)
		}
		if hashing && !hasString {
			return nil, fmt.Errorf("field path %q: only string fields can be hashed", text)
		}
		if hashing && hasOther {
			pt.toStr = true
		}
		if !hashing && kind < 0 {
			return nil, fmt.Errorf("field path %q: a required non-string field cannot be dropped", text)
		}
		if kind >= 0 {
			kinds[leafKind(kind)] = true
		}
	}
	if !hashing && len(kinds) != 1 {
		return nil, fmt.Errorf("field path %q: the field has different types in different records", text)
	}
	for k := range kinds {
		pt.leaf = k
	}
	return pt, nil
}

// scoped pairs a type with the namespace its names resolve in.
type scopedType struct {
	t  any
	ns string
}

func (s *schema) scoped(t any, ns string) any { return scopedType{t, ns} }

// records returns the record definitions n can be (through unions).
func (s *schema) records(n any, ns string) []map[string]any {
	if st, ok := n.(scopedType); ok {
		n, ns = st.t, st.ns
	}
	n = s.deref(n, ns)
	switch t := n.(type) {
	case []any:
		var out []map[string]any
		for _, b := range t {
			out = append(out, s.records(b, ns)...)
		}
		return out
	case map[string]any:
		if t["type"] == "record" {
			return []map[string]any{t}
		}
		if inner, ok := t["type"]; ok {
			if _, isStr := inner.(string); isStr && inner != "record" {
				return s.records(inner, ns)
			}
		}
	}
	return nil
}

// leaf describes a field type: how to clear it (-1: it cannot be), whether
// it is or can be a string, and whether it can be something else.
func (s *schema) leaf(n any) (kind int, hasString, hasOther bool, err error) {
	ns := ""
	if st, ok := n.(scopedType); ok {
		n, ns = st.t, st.ns
	}
	prim := func(v any) string {
		v = s.deref(v, ns)
		switch t := v.(type) {
		case string:
			return t
		case map[string]any:
			typ, _ := t["type"].(string)
			if typ == "record" || typ == "enum" || typ == "fixed" || typ == "array" || typ == "map" {
				return typ
			}
			return typ // a primitive with a logical type
		}
		return "?"
	}
	if u, ok := n.([]any); ok {
		var branches []string
		for _, b := range u {
			branches = append(branches, prim(b))
		}
		hasString = slices.Contains(branches, "string")
		for _, b := range branches {
			if b != "string" && b != "null" {
				hasOther = true
			}
		}
		if slices.Contains(branches, "null") {
			return int(leafNullable), hasString, hasOther, nil
		}
		return -1, hasString, hasOther, nil
	}
	switch p := prim(n); p {
	case "string":
		return int(leafString), true, false, nil
	case "bytes":
		return int(leafBytes), false, true, nil
	case "array":
		return int(leafArray), false, true, nil
	case "map":
		return int(leafMap), false, true, nil
	case "record":
		return -1, false, true, fmt.Errorf("names a record, not a field value")
	default:
		return -1, false, true, nil
	}
}
