// Package avro turns Sluice events into Confluent-framed Avro and back. It
// holds goavro codecs (built once per schema id), registers and resolves
// schemas through a Confluent-compatible registry (franz-go pkg/sr), and
// renders decoded records as plain JSON for sinks.
//
// Native values follow goavro's conventions: records are map[string]any,
// a union value is nil or a one-key map naming its branch ({"string": "x"}),
// timestamp-micros is time.Time. The helpers below build union values.
package avro

import "time"

// Null is the null branch of a union.
var Null any

// String is the "string" branch of a nullable union.
func String(s string) any { return map[string]any{"string": s} }

// Long is the "long" branch of a nullable union.
func Long(v int64) any { return map[string]any{"long": v} }

// Int is the "int" branch of a nullable union.
func Int(v int32) any { return map[string]any{"int": v} }

// Double is the "double" branch of a nullable union.
func Double(v float64) any { return map[string]any{"double": v} }

// Boolean is the "boolean" branch of a nullable union.
func Boolean(v bool) any { return map[string]any{"boolean": v} }

// Bytes is the "bytes" branch of a nullable union.
func Bytes(b []byte) any { return map[string]any{"bytes": b} }

// Record is a named-record branch of a nullable union.
func Record(fullName string, fields map[string]any) any { return map[string]any{fullName: fields} }

// Array is the "array" branch of a nullable union.
func Array(items []any) any { return map[string]any{"array": items} }

// Map is the "map" branch of a nullable union.
func Map(m map[string]any) any { return map[string]any{"map": m} }

// TimeMicros is the timestamp-micros branch of a nullable union, or null
// for the zero time.
func TimeMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return map[string]any{"long.timestamp-micros": t}
}

// OptString is String(s), or null when s is empty.
func OptString(s string) any {
	if s == "" {
		return nil
	}
	return String(s)
}

// Strings converts a string slice to an Avro array value.
func Strings(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
