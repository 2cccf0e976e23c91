package enrich

import "time"

// Readers of goavro native values that accept a field's value whether it is
// plain or a nullable union's one-key map, so callers need not know which.

// Str returns the string value of v, or "".
func Str(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case map[string]any:
		if len(t) == 1 {
			s, _ := t["string"].(string)
			return s
		}
	}
	return ""
}

// Int returns the integer value of v (int, long, or a union of them).
func Int(v any) (int64, bool) {
	switch t := v.(type) {
	case int64:
		return t, true
	case int32:
		return int64(t), true
	case int:
		return int64(t), true
	case map[string]any:
		if len(t) == 1 {
			for _, x := range t {
				return Int(x)
			}
		}
	}
	return 0, false
}

// Bool returns the boolean value of v.
func Bool(v any) (bool, bool) {
	switch t := v.(type) {
	case bool:
		return t, true
	case map[string]any:
		if b, ok := t["boolean"].(bool); ok && len(t) == 1 {
			return b, true
		}
	}
	return false, false
}

// Time returns the timestamp value of v (a timestamp logical type, plain or
// in a union), or the zero time.
func Time(v any) time.Time {
	switch t := v.(type) {
	case time.Time:
		return t
	case map[string]any:
		if len(t) == 1 {
			for _, x := range t {
				tt, _ := x.(time.Time)
				return tt
			}
		}
	}
	return time.Time{}
}

// Rec returns the record map of v: v itself when it is a record, or the
// record inside a one-branch union value; nil for null. Records decoded by
// goavro hold every field of their schema, so a one-key map whose key names
// a record type is a union branch.
func Rec(v any) map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	if len(m) == 1 {
		for k, x := range m {
			if inner, ok := x.(map[string]any); ok && isTypeName(k) {
				return inner
			}
		}
	}
	return m
}

// RecBranch returns the record of a union value when its branch is name.
func RecBranch(v any, name string) map[string]any {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return nil
	}
	inner, _ := m[name].(map[string]any)
	return inner
}

// Arr returns the array value of v.
func Arr(v any) []any {
	switch t := v.(type) {
	case []any:
		return t
	case map[string]any:
		if a, ok := t["array"].([]any); ok && len(t) == 1 {
			return a
		}
	}
	return nil
}

// isTypeName reports whether k names a record type (a full name with a
// namespace, as goavro writes union branches of named types) rather than a
// field.
func isTypeName(k string) bool {
	for i := 0; i < len(k); i++ {
		if k[i] == '.' {
			return true
		}
	}
	return false
}
