package native

import (
	"encoding/json"
)

// Tolerant JSON for workstation archives. The vendor's own activity.json
// example (seed 004) lacks the comma after "input_type":1, the kind of
// slip a hand-rolled JSON writer makes; repairJSON fixes exactly that class
// of error, and nothing else:
//
//   - a missing comma between two members or two elements, where one value
//     ends and the next begins (json_missing_comma);
//   - a comma before a closing } or ] (json_trailing_comma).
//
// Anything else (an unclosed string, a bare word, a missing colon, a
// mismatched bracket) is left for the caller to reject with a reason. The
// repaired text is validated before it is used.

// repairJSON returns b with missing and trailing commas fixed, the quirks
// it applied, and whether the result is valid JSON.
func repairJSON(b []byte) ([]byte, []string, bool) {
	const (
		stValue        = iota // a value is expected
		stKey                 // a member key (or '}') is expected
		stColon               // ':' is expected
		stCommaOrClose        // ',' or the container's close is expected
	)
	out := make([]byte, 0, len(b)+8)
	var stack []byte
	state := stValue
	missing, trailing := false, false
	afterValue := func() {
		if len(stack) == 0 {
			state = stCommaOrClose // top level: only whitespace may follow
			return
		}
		state = stCommaOrClose
	}
	i := 0
	for i < len(b) {
		c := b[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			out = append(out, c)
			i++
			continue
		}
		switch state {
		case stCommaOrClose:
			if len(stack) == 0 {
				return b, nil, false // data after the top-level value
			}
			top := stack[len(stack)-1]
			switch {
			case c == ',':
				j := skipWS(b, i+1)
				if j < len(b) && (b[j] == '}' || b[j] == ']') {
					trailing = true // drop it; the close is handled next
					i++
					continue
				}
				out = append(out, c)
				i++
				if top == '{' {
					state = stKey
				} else {
					state = stValue
				}
				continue
			case c == '}' || c == ']':
				if (c == '}') != (top == '{') {
					return b, nil, false
				}
				stack = stack[:len(stack)-1]
				out = append(out, c)
				i++
				afterValue()
				continue
			case startsValue(c):
				missing = true
				out = append(out, ',')
				if top == '{' {
					state = stKey
				} else {
					state = stValue
				}
				continue // re-read c in the new state
			}
			return b, nil, false
		case stKey:
			if c == '}' {
				if len(stack) == 0 || stack[len(stack)-1] != '{' {
					return b, nil, false
				}
				stack = stack[:len(stack)-1]
				out = append(out, c)
				i++
				afterValue()
				continue
			}
			if c != '"' {
				return b, nil, false
			}
			end, ok := stringEnd(b, i)
			if !ok {
				return b, nil, false
			}
			out = append(out, b[i:end]...)
			i = end
			state = stColon
		case stColon:
			if c != ':' {
				return b, nil, false
			}
			out = append(out, c)
			i++
			state = stValue
		case stValue:
			switch {
			case c == '{':
				stack = append(stack, '{')
				out = append(out, c)
				i++
				state = stKey
			case c == '[':
				stack = append(stack, '[')
				out = append(out, c)
				i++
				j := skipWS(b, i)
				if j < len(b) && b[j] == ']' {
					out = append(out, b[i:j+1]...)
					stack = stack[:len(stack)-1]
					i = j + 1
					afterValue()
				}
			case c == '"':
				end, ok := stringEnd(b, i)
				if !ok {
					return b, nil, false
				}
				out = append(out, b[i:end]...)
				i = end
				afterValue()
			case startsValue(c):
				j := i
				for j < len(b) && isLiteralByte(b[j]) {
					j++
				}
				out = append(out, b[i:j]...)
				i = j
				afterValue()
			default:
				return b, nil, false
			}
		}
	}
	if len(stack) != 0 || state != stCommaOrClose || !json.Valid(out) {
		return b, nil, false
	}
	var quirks []string
	if missing {
		quirks = append(quirks, "json_missing_comma")
	}
	if trailing {
		quirks = append(quirks, "json_trailing_comma")
	}
	return out, quirks, true
}

// startsValue reports whether c can begin a JSON value.
func startsValue(c byte) bool {
	return c == '"' || c == '{' || c == '[' || c == '-' || c >= '0' && c <= '9' || c == 't' || c == 'f' || c == 'n'
}

// isLiteralByte reports whether c can be part of a number or of true,
// false and null.
func isLiteralByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '-' || c == '+' || c == '.' || c == 'E'
}

// stringEnd returns the index just past the string literal at b[i].
func stringEnd(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}
