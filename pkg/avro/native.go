// Package avro turns Sluice events into Confluent-framed Avro and back. It
// holds codecs (built once per schema id), registers and resolves schemas
// through a Confluent-compatible registry (franz-go pkg/sr), and renders
// decoded records as plain JSON for sinks.
//
// # Native values
//
// Values follow goavro's conventions: a record is a map[string]any (a
// missing field takes the schema's default), a union value is nil or a
// one-key map naming its branch ({"string": "x"}), timestamp-micros and
// timestamp-millis are time.Time, and each primitive takes the Go types
// goavro takes (a long takes int, int32, int64 and whole float32/float64
// values, ...). Decoding (DecodeBody) returns values in this form.
//
// Encoding (Codec.Encode, Codec.Validate; encode.go) takes that form, and
// writes the bytes goavro writes for it, but it also takes a union value
// bare, so that callers need not allocate a one-key map per value. A bare
// value goes to a branch by its Go type:
//
//	nil                    the null branch
//	string                 "string", or else the union's only enum
//	[]byte                 "bytes", or else the union's only fixed
//	bool                   "boolean"
//	any Go integer type    "long", or else "int"
//	float32, float64       "double", or else "float"
//	time.Time              the first timestamp-micros or timestamp-millis
//	                       branch, or else a date branch
//	[]any, []string and    the array branch
//	other slices
//	map[string]any         goavro's one-key form when it has exactly one key
//	                       and that key names a branch of the union; else
//	                       the union's only record branch, or else its map
//	                       branch (a record in a union of several records
//	                       must name its branch)
//	other maps             the map branch
//
// A bare value no branch takes is an error, and so is one its branch
// refuses (an int64 out of range for a union whose only integer branch is
// "int"). The branch chosen only decides the encoding: the value must
// still be one the branch's type takes.
//
// The one ambiguity is a map[string]any with a single key that names a
// branch, e.g. {"null": "x"} given for ["null", {"type": "map", ...}]: it
// is read as goavro's form. Map and Record below therefore wrap one-key
// maps, whose keys they cannot vouch for.
//
// The helpers String, Long, Int, Double, Boolean, Bytes, Record, Array,
// Map, TimeMicros and OptString build union values. They return bare
// values, except for Map and Record with a one-key map. To read a decoded
// union use UnionString and UnionTime, which take both forms.
package avro

import "time"

// Null is the null branch of a union.
var Null any

// String is the "string" branch of a nullable union: s itself.
func String(s string) any { return s }

// Long is the "long" branch of a nullable union: v itself.
func Long(v int64) any { return v }

// Int is the "int" branch of a nullable union: v itself. (An int32 goes to
// a "long" branch when the union has one; unions mixing int and long need
// the one-key form for "int".)
func Int(v int32) any { return v }

// Double is the "double" branch of a nullable union: v itself.
func Double(v float64) any { return v }

// Boolean is the "boolean" branch of a nullable union: v itself.
func Boolean(v bool) any { return v }

// Bytes is the "bytes" branch of a nullable union: b itself.
func Bytes(b []byte) any { return b }

// Record is a named-record branch of a nullable union: the fields map
// itself, or the one-key form {fullName: fields} when fields has exactly
// one key (which could otherwise name another branch of the union). A bare
// record goes to the union's only record branch: for a union of several
// records, give the one-key form yourself.
func Record(fullName string, fields map[string]any) any {
	if len(fields) == 1 {
		return map[string]any{fullName: fields}
	}
	return fields
}

// Array is the "array" branch of a nullable union: items itself.
func Array(items []any) any { return items }

// Map is the "map" branch of a nullable union: m itself, or the one-key
// form {"map": m} when m has exactly one key. Map keys are data: a bare
// {"null": ...} would read as the null branch.
func Map(m map[string]any) any {
	if len(m) == 1 {
		return map[string]any{"map": m}
	}
	return m
}

// TimeMicros is the timestamp-micros branch of a nullable union: t
// itself, or null for the zero time.
func TimeMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// OptString is String(s), or null when s is empty.
func OptString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Strings converts a string slice to an Avro array value. (Encoding also
// takes a []string as it is.)
func Strings(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
