package adapter

// Small helpers shared by the family adapters for reading decoded JSON
// (map[string]any with json.Number numbers), reporting wrong types with a
// field path, parsing ISO-8601 times leniently, producing JSON text, and
// finding the exact bytes of an object's members in the raw event so that
// JSON-text fields can be sliced instead of re-marshalled.
//
// Conventions: getX(m, key, path) returns ok=false when the key is absent or
// null, and a Rejection (ReasonInvalidField, Field=path) when the value has
// another JSON type. path is the full field path of m[key], e.g.
// "context.user_id"; use fieldPath to build it.
//
// Other adapters may add helpers: append new functions at the end of the file.

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	gojson "github.com/goccy/go-json"

	"github.com/sluicehq/sluice/pkg/event"
)

// fieldPath joins a parent path and a key: fieldPath("context", "user_id")
// is "context.user_id"; fieldPath("", "x") is "x".
func fieldPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// typeName names the JSON type of a decoded value, for error messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case json.Number, float64, int64, int:
		return "number"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	default:
		return "unknown"
	}
}

// wrongType is the rejection for a value of the wrong JSON type at path.
func wrongType(path, want string, v any) *event.Rejection {
	return event.Reject(event.ReasonInvalidField, path, "must be %s, got %s", want, typeName(v))
}

// asObject returns v as a JSON object.
func asObject(v any) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	return m, ok
}

// asArray returns v as a JSON array.
func asArray(v any) ([]any, bool) {
	a, ok := v.([]any)
	return a, ok
}

// asInt64 converts a decoded JSON number to int64. It accepts json.Number
// (including integral values written as 1.0 or 1e3) and float64/int64/int;
// ok is false for non-numbers, fractions and values out of range.
func asInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
			return i, true
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			return 0, false
		}
		return floatToInt64(f)
	case float64:
		return floatToInt64(n)
	case int64:
		return n, true
	case int:
		return int64(n), true
	}
	return 0, false
}

func floatToInt64(f float64) (int64, bool) {
	if f != math.Trunc(f) || f < -9.223372036854775e18 || f > 9.223372036854775e18 {
		return 0, false
	}
	return int64(f), true
}

// asFloat64 converts a decoded JSON number to float64; ok is false for
// non-numbers and for values that do not fit (±Inf).
func asFloat64(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			return 0, false
		}
		return f, true
	case float64:
		return n, true
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	}
	return 0, false
}

// getString returns m[key] as a string; ok is false when absent or null.
func getString(m map[string]any, key, path string) (string, bool, *event.Rejection) {
	v, found := m[key]
	if !found || v == nil {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", false, wrongType(path, "a string", v)
	}
	return s, true, nil
}

// getInt returns m[key] as an integer; ok is false when absent or null.
func getInt(m map[string]any, key, path string) (int64, bool, *event.Rejection) {
	v, found := m[key]
	if !found || v == nil {
		return 0, false, nil
	}
	i, isInt := asInt64(v)
	if !isInt {
		return 0, false, wrongType(path, "an integer", v)
	}
	return i, true, nil
}

// getFloat returns m[key] as a float64; ok is false when absent or null.
func getFloat(m map[string]any, key, path string) (float64, bool, *event.Rejection) {
	v, found := m[key]
	if !found || v == nil {
		return 0, false, nil
	}
	f, isNum := asFloat64(v)
	if !isNum {
		return 0, false, wrongType(path, "a number", v)
	}
	return f, true, nil
}

// getBool returns m[key] as a bool; ok is false when absent or null.
func getBool(m map[string]any, key, path string) (bool, bool, *event.Rejection) {
	v, found := m[key]
	if !found || v == nil {
		return false, false, nil
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, false, wrongType(path, "a boolean", v)
	}
	return b, true, nil
}

// getObject returns m[key] as an object; ok is false when absent or null.
func getObject(m map[string]any, key, path string) (map[string]any, bool, *event.Rejection) {
	v, found := m[key]
	if !found || v == nil {
		return nil, false, nil
	}
	o, isObj := v.(map[string]any)
	if !isObj {
		return nil, false, wrongType(path, "an object", v)
	}
	return o, true, nil
}

// getArray returns m[key] as an array; ok is false when absent or null.
func getArray(m map[string]any, key, path string) ([]any, bool, *event.Rejection) {
	v, found := m[key]
	if !found || v == nil {
		return nil, false, nil
	}
	a, isArr := v.([]any)
	if !isArr {
		return nil, false, wrongType(path, "an array", v)
	}
	return a, true, nil
}

// timeForm describes how a time string parsed by parseTime deviates from
// the canonical RFC 3339 form with a fraction and a ±hh:mm offset. Each
// adapter decides which of these it reports as quirks.
type timeForm uint8

const (
	timeNoFraction     timeForm = 1 << iota // no fractional seconds
	timeNaive                               // no zone; taken as UTC
	timeZ                                   // "Z" zone designator
	timeSpaceSeparator                      // ' ' between date and time
	timeOffsetNoColon                       // "+0100" or "+01"
	timeCommaFraction                       // ',' before the fraction (Python logging)
	timeLowercase                           // 't' or 'z'
)

// parseTime parses an ISO-8601 date-time: YYYY-MM-DD, 'T' or ' ', hh:mm:ss,
// an optional '.' or ',' fraction of 1 to 9 digits, and an optional zone
// (Z, ±hh:mm, ±hhmm, ±hh). A time without a zone is taken as UTC. The
// result is in UTC. It does not allocate.
func parseTime(s string) (time.Time, timeForm, bool) {
	var form timeForm
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, 0, false
	}
	switch s[10] {
	case 'T':
	case 't':
		form |= timeLowercase
	case ' ':
		form |= timeSpaceSeparator
	default:
		return time.Time{}, 0, false
	}
	year, ok1 := atoiFixed(s[0:4])
	month, ok2 := atoiFixed(s[5:7])
	day, ok3 := atoiFixed(s[8:10])
	hour, ok4 := atoiFixed(s[11:13])
	minute, ok5 := atoiFixed(s[14:16])
	sec, ok6 := atoiFixed(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return time.Time{}, 0, false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, 0, false
	}
	i := 19
	nsec := 0
	if i < len(s) && (s[i] == '.' || s[i] == ',') {
		if s[i] == ',' {
			form |= timeCommaFraction
		}
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if i-start < 9 {
				nsec = nsec*10 + int(s[i]-'0')
			}
			i++
		}
		n := i - start
		if n == 0 || n > 9 {
			return time.Time{}, 0, false
		}
		for k := n; k < 9; k++ {
			nsec *= 10
		}
	} else {
		form |= timeNoFraction
	}
	offset := 0
	switch {
	case i == len(s):
		form |= timeNaive
	case s[i] == 'Z' || s[i] == 'z':
		if i+1 != len(s) {
			return time.Time{}, 0, false
		}
		form |= timeZ
		if s[i] == 'z' {
			form |= timeLowercase
		}
	case s[i] == '+' || s[i] == '-':
		z := s[i+1:]
		var oh, om int
		var ok bool
		switch {
		case len(z) == 5 && z[2] == ':':
			oh, ok = atoiFixed(z[0:2])
			var okm bool
			om, okm = atoiFixed(z[3:5])
			ok = ok && okm
		case len(z) == 4:
			oh, ok = atoiFixed(z[0:2])
			var okm bool
			om, okm = atoiFixed(z[2:4])
			ok = ok && okm
			form |= timeOffsetNoColon
		case len(z) == 2:
			oh, ok = atoiFixed(z)
			form |= timeOffsetNoColon
		}
		if !ok || oh > 23 || om > 59 {
			return time.Time{}, 0, false
		}
		offset = oh*3600 + om*60
		if s[i] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, 0, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if offset != 0 {
		t = t.Add(-time.Duration(offset) * time.Second)
	}
	return t, form, true
}

// atoiFixed parses a string of ASCII digits only.
func atoiFixed(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(s) > 0
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// jsonText returns decoded JSON value v as compact JSON text (object keys
// sorted, no HTML escaping, json.Number written as is).
func jsonText(v any) (string, error) {
	b, err := gojson.MarshalWithOption(v, gojson.DisableHTMLEscape())
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// compactJSON returns JSON text raw without insignificant whitespace. raw
// must be a span that already decoded successfully (e.g. a value found by
// rawMembers): when it has no whitespace outside strings (the common case)
// it is returned as is, without re-validation; otherwise it is compacted,
// which validates it. ok is false for invalid UTF-8 or invalid JSON.
func compactJSON(raw []byte) (string, bool) {
	if !utf8.Valid(raw) {
		return "", false
	}
	if !hasInsignificantSpace(raw) {
		return string(raw), true
	}
	var buf bytes.Buffer
	if err := gojson.Compact(&buf, raw); err != nil {
		return "", false
	}
	return buf.String(), true
}

// validJSONText validates untrusted JSON text s and returns it compacted;
// when s is already compact the same string is returned (no copy). Text
// fastValid takes (the common case: no whitespace but spaces) is checked
// and compacted in one pass each; anything else goes through goccy/go-json
// (FuzzValidJSONText checks the two give the same answers).
func validJSONText(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	b := unsafe.Slice(unsafe.StringData(s), len(s)) // read only
	if fastValid(b) {
		return compactText(s), true
	}
	return validJSONTextGoccy(s)
}

// compactText returns JSON text s, which fastValid took (its only
// whitespace outside strings is spaces), without the spaces between
// tokens: s itself (no copy) when it has none. Strings are skipped from
// quote to quote, as the fast scan does.
func compactText(s string) string {
	b := unsafe.Slice(unsafe.StringData(s), len(s)) // read only
	i := 0
	for i < len(b) && b[i] != ' ' {
		if b[i] == '"' {
			end, _, ok := fastScanString(b, i)
			if !ok {
				return s // not what fastValid takes; left to the caller's checks
			}
			i = end
			continue
		}
		i++
	}
	if i == len(b) {
		return s
	}
	out := make([]byte, i, len(b)-1)
	copy(out, b[:i])
	for i < len(b) {
		switch b[i] {
		case ' ':
			i++
		case '"':
			end, _, ok := fastScanString(b, i)
			if !ok {
				end = len(b)
			}
			out = append(out, b[i:end]...)
			i = end
		default:
			j := i + 1
			for j < len(b) && b[j] != ' ' && b[j] != '"' {
				j++
			}
			out = append(out, b[i:j]...)
			i = j
		}
	}
	return unsafe.String(unsafe.SliceData(out), len(out)) // out is not written again
}

// validJSONTextGoccy is validJSONText for any text, with goccy/go-json.
func validJSONTextGoccy(s string) (string, bool) {
	b := []byte(s)
	if !gojson.Valid(b) {
		return "", false
	}
	if !hasInsignificantSpace(b) {
		return s, true
	}
	var buf bytes.Buffer
	if err := gojson.Compact(&buf, b); err != nil {
		return "", false
	}
	return buf.String(), true
}

// hasInsignificantSpace reports whether JSON text raw has whitespace
// outside string literals.
func hasInsignificantSpace(raw []byte) bool {
	inStr := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inStr {
			switch c {
			case '\\':
				i++
			case '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case ' ', '\t', '\n', '\r':
			return true
		}
	}
	return false
}

// rawMember is one member of a JSON object as found in the raw bytes: the
// key's bytes between the quotes (still escaped when Escaped) and the
// value's exact bytes.
type rawMember struct {
	Key     []byte
	Escaped bool
	Value   []byte
}

// rawMembers appends to dst the members of the JSON object in raw (leading
// and trailing whitespace allowed), in order, without decoding values. It
// is a structural scan, not a validator: use it on bytes that already
// decoded successfully, and check a found value's first byte against the
// decoded value's type before trusting it. ok is false when raw is not
// an object.
func rawMembers(raw []byte, dst []rawMember) ([]rawMember, bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return dst, false
	}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return dst, skipSpace(raw, i+1) == len(raw)
	}
	for {
		if i >= len(raw) || raw[i] != '"' {
			return dst, false
		}
		kEnd, esc, ok := scanString(raw, i)
		if !ok {
			return dst, false
		}
		key := raw[i+1 : kEnd-1]
		i = skipSpace(raw, kEnd)
		if i >= len(raw) || raw[i] != ':' {
			return dst, false
		}
		i = skipSpace(raw, i+1)
		vEnd, ok := skipValue(raw, i)
		if !ok {
			return dst, false
		}
		dst = append(dst, rawMember{Key: key, Escaped: esc, Value: raw[i:vEnd]})
		i = skipSpace(raw, vEnd)
		if i >= len(raw) {
			return dst, false
		}
		if raw[i] == '}' {
			return dst, skipSpace(raw, i+1) == len(raw)
		}
		if raw[i] != ',' {
			return dst, false
		}
		i = skipSpace(raw, i+1)
	}
}

// rawLookup returns the raw bytes of the last member named key (the decoder
// keeps the last of duplicate keys), or nil.
func rawLookup(members []rawMember, key string) []byte {
	for i := len(members) - 1; i >= 0; i-- {
		m := &members[i]
		if !m.Escaped {
			if string(m.Key) == key {
				return m.Value
			}
			continue
		}
		var k string
		q := make([]byte, 0, len(m.Key)+2)
		q = append(append(append(q, '"'), m.Key...), '"')
		if json.Unmarshal(q, &k) == nil && k == key {
			return m.Value
		}
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString returns the index just past the string literal starting at
// b[i] == '"', and whether it contains escapes.
func scanString(b []byte, i int) (int, bool, bool) {
	esc := false
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, false, false
		}
		q := j + k
		if !esc && bytes.IndexByte(b[j:q], '\\') >= 0 {
			esc = true
		}
		// The quote is escaped when an odd number of backslashes precede it.
		n := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1, esc, true
		}
		j = q + 1
	}
}

// skipValue returns the index just past the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		end, _, ok := scanString(b, i)
		return end, ok
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _, ok := scanString(b, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	default:
		j := i
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return j, j > i
			}
			j++
		}
		return j, j > i
	}
}

// unionReader reads optional members of decoded JSON objects straight into
// nullable Avro union values (nil, or a one-key map naming the branch). It
// keeps the first wrong-typed member as a Rejection, builds a member's path
// only when reporting it, and turns later reads into no-ops once it has
// failed, so a family adapter reads every member and checks r.rej once.
type unionReader struct {
	rej *event.Rejection
}

func (r *unionReader) fail(parent, key, want string, v any) {
	if r.rej == nil {
		r.rej = wrongType(fieldPath(parent, key), want, v)
	}
}

// String returns m[key] as a ["null","string"] value.
func (r *unionReader) String(m map[string]any, parent, key string) any {
	v, found := m[key]
	if !found || v == nil || r.rej != nil {
		return nil
	}
	s, ok := v.(string)
	if !ok {
		r.fail(parent, key, "a string", v)
		return nil
	}
	return map[string]any{"string": s}
}

// Long returns m[key] as a ["null","long"] value.
func (r *unionReader) Long(m map[string]any, parent, key string) any {
	v, found := m[key]
	if !found || v == nil || r.rej != nil {
		return nil
	}
	i, ok := asInt64(v)
	if !ok {
		r.fail(parent, key, "an integer", v)
		return nil
	}
	return map[string]any{"long": i}
}

// Int returns m[key] as a ["null","int"] value; integers outside the int32
// range are rejected.
func (r *unionReader) Int(m map[string]any, parent, key string) any {
	v, found := m[key]
	if !found || v == nil || r.rej != nil {
		return nil
	}
	i, ok := asInt64(v)
	if !ok || i < math.MinInt32 || i > math.MaxInt32 {
		r.fail(parent, key, "a 32-bit integer", v)
		return nil
	}
	return map[string]any{"int": int32(i)}
}

// Double returns m[key] as a ["null","double"] value.
func (r *unionReader) Double(m map[string]any, parent, key string) any {
	v, found := m[key]
	if !found || v == nil || r.rej != nil {
		return nil
	}
	f, ok := asFloat64(v)
	if !ok {
		r.fail(parent, key, "a number", v)
		return nil
	}
	return map[string]any{"double": f}
}

// Bool returns m[key] as a ["null","boolean"] value.
func (r *unionReader) Bool(m map[string]any, parent, key string) any {
	v, found := m[key]
	if !found || v == nil || r.rej != nil {
		return nil
	}
	b, ok := v.(bool)
	if !ok {
		r.fail(parent, key, "a boolean", v)
		return nil
	}
	return map[string]any{"boolean": b}
}

// Object returns m[key] as an object; nil when absent or null.
func (r *unionReader) Object(m map[string]any, parent, key string) map[string]any {
	v, found := m[key]
	if !found || v == nil || r.rej != nil {
		return nil
	}
	o, ok := v.(map[string]any)
	if !ok {
		r.fail(parent, key, "an object", v)
		return nil
	}
	return o
}

// Array returns m[key] as an array; nil when absent or null.
func (r *unionReader) Array(m map[string]any, parent, key string) []any {
	v, found := m[key]
	if !found || v == nil || r.rej != nil {
		return nil
	}
	a, ok := v.([]any)
	if !ok {
		r.fail(parent, key, "an array", v)
		return nil
	}
	return a
}

// keySet is a set of known member names.
type keySet map[string]struct{}

func newKeySet(keys ...string) keySet {
	s := make(keySet, len(keys))
	for _, k := range keys {
		s[k] = struct{}{}
	}
	return s
}

// unknownMembers returns the members of m whose names are not in known, or
// nil when there are none. It allocates only when there are some.
func unknownMembers(m map[string]any, known keySet) map[string]any {
	var extra map[string]any
	for k, v := range m {
		if _, ok := known[k]; ok {
			continue
		}
		if extra == nil {
			extra = make(map[string]any, 2)
		}
		extra[k] = v
	}
	return extra
}

// unionJSON returns v as a ["null","string"] value holding its JSON text;
// null when v is a nil map.
func unionJSON(v map[string]any) (any, error) {
	if v == nil {
		return nil, nil
	}
	s, err := jsonText(v)
	if err != nil {
		return nil, err
	}
	return map[string]any{"string": s}, nil
}
