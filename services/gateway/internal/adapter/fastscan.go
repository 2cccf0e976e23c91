package adapter

import (
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// A validating scan for the fast paths: one pass over an event (or a
// member of one) that checks it is JSON the decoder (JSON) takes, and lists
// the object's members on the way. It is stricter than the
// grammar where strictness costs nothing in practice: whitespace other than
// spaces (tabs, CR, LF between tokens), escaped or duplicate keys and
// nesting deeper than fastMaxDepth make it say no, and the event then goes
// the general way. Strings, where most of an event's bytes are, are read
// eight bytes at a time up to their next quote, backslash or control
// character (which JSON allows nowhere unescaped; outside strings, where
// only spaces are skipped, any is refused by the grammar).

// fastMaxDepth bounds the nesting the scan follows; Input.MaxDepth (the
// gateway's limits.max_depth) lowers it. Nesting is counted as the
// gateway's splitter counts it: the event's own braces are level 1.
const fastMaxDepth = 128

// fastNested names a member whose object value fastObject lists too, in
// the same pass (the edX context): its members go to dst, and found says
// whether the member was there as an object.
type fastNested struct {
	key   string
	dst   []fastMember
	found bool
}

// fastObject validates raw and appends its members to dst. ok is false
// when raw is not an object the fast path takes (see above), or nests
// deeper than maxDepth.
func fastObject(raw []byte, dst []fastMember, maxDepth int) ([]fastMember, bool) {
	end, ms, _, _, ok := fastObjectAt(raw, fastSpace(raw, 0), 1, maxDepth, dst, "", nil)
	return ms, ok && fastSpace(raw, end) == len(raw)
}

// fastObjectWith is fastObject that also lists the members of nested's
// object. It is a function of its own so that fastObject's callers can
// keep their member arrays on the stack: the nested members are stored
// through a pointer, which makes what flows there escape.
func fastObjectWith(raw []byte, dst []fastMember, maxDepth int, nested *fastNested) ([]fastMember, bool) {
	end, ms, nms, found, ok := fastObjectAt(raw, fastSpace(raw, 0), 1, maxDepth, dst, nested.key, nested.dst)
	nested.dst, nested.found = nms, found
	return ms, ok && fastSpace(raw, end) == len(raw)
}

// fastObjectAt is fastObject for the object at b[i], at nesting level
// depth; end is the index after its closing brace. The members of the
// member nestedKey ("": none), when it is an object, are appended to
// nestedDst and returned as nested.
func fastObjectAt(b []byte, i, depth, maxDepth int, dst []fastMember, nestedKey string, nestedDst []fastMember) (end int, ms, nested []fastMember, found, ok bool) {
	if i >= len(b) || b[i] != '{' {
		return 0, nil, nil, false, false
	}
	i = fastSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, dst, nil, false, true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, nil, nil, false, false
		}
		kEnd, esc, ok := fastScanString(b, i)
		if !ok || esc {
			return 0, nil, nil, false, false
		}
		key := rawString(b[i+1 : kEnd-1])
		for j := range dst {
			if dst[j].key == key {
				return 0, nil, nil, false, false
			}
		}
		i = fastSpace(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return 0, nil, nil, false, false
		}
		i = fastSpace(b, i+1)
		var vEnd int
		if nestedKey != "" && i < len(b) && b[i] == '{' && key == nestedKey {
			if depth >= maxDepth {
				return 0, nil, nil, false, false
			}
			vEnd, nested, _, _, ok = fastObjectAt(b, i, depth+1, maxDepth, nestedDst, "", nil)
			found = ok
		} else {
			vEnd, ok = fastScanValue(b, i, depth, maxDepth)
		}
		if !ok {
			return 0, nil, nil, false, false
		}
		dst = append(dst, fastMember{key: key, value: b[i:vEnd]})
		i = fastSpace(b, vEnd)
		if i >= len(b) {
			return 0, nil, nil, false, false
		}
		switch b[i] {
		case '}':
			return i + 1, dst, nested, found, true
		case ',':
			i = fastSpace(b, i+1)
		default:
			return 0, nil, nil, false, false
		}
	}
}

// fastValid reports whether raw is one JSON value the decoder takes, as
// fastObject judges it.
func fastValid(raw []byte) bool {
	i := fastSpace(raw, 0)
	end, ok := fastScanValue(raw, i, 0, fastMaxDepth)
	return ok && fastSpace(raw, end) == len(raw)
}

// fastSpace skips spaces (only: other whitespace is left to the decoder).
func fastSpace(b []byte, i int) int {
	for i < len(b) && b[i] == ' ' {
		i++
	}
	return i
}

// fastScanValue returns the end of the valid JSON value at b[i], which is
// inside depth containers; ok is false when it nests deeper than maxDepth.
func fastScanValue(b []byte, i, depth, maxDepth int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		end, _, ok := fastScanString(b, i)
		return end, ok
	case c == '{':
		if depth >= maxDepth {
			return 0, false
		}
		i = fastSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return 0, false
			}
			end, _, ok := fastScanString(b, i)
			if !ok {
				return 0, false
			}
			i = fastSpace(b, end)
			if i >= len(b) || b[i] != ':' {
				return 0, false
			}
			if i, ok = fastScanValue(b, fastSpace(b, i+1), depth+1, maxDepth); !ok {
				return 0, false
			}
			i = fastSpace(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == '}' {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = fastSpace(b, i+1)
		}
	case c == '[':
		if depth >= maxDepth {
			return 0, false
		}
		i = fastSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = fastScanValue(b, i, depth+1, maxDepth); !ok {
				return 0, false
			}
			i = fastSpace(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == ']' {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = fastSpace(b, i+1)
		}
	case c == 't':
		return fastLiteral(b, i, "true")
	case c == 'f':
		return fastLiteral(b, i, "false")
	case c == 'n':
		return fastLiteral(b, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		return fastScanNumber(b, i)
	}
	return 0, false
}

func fastLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

// fastScanNumber returns the end of the number at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func fastScanNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	digits := func(i int) int {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i + 1)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

// Eight-byte words, for finding bytes in a string a word at a time.
const (
	wordLSB = 0x0101010101010101
	wordMSB = 0x8080808080808080
)

// stringStop returns the index of the first byte at or after b[j] that
// ends a run of plain string bytes: a quote, a backslash or a control
// character (below 0x20); len(b) if none. A byte below c is one that
// borrows when c is subtracted from it and has its top bit clear, and a
// byte equal to c is one that is below 1 after xor with c: per word, three
// subtractions and masks. A borrow can mark a byte past the first match
// but never before it, so the lowest marked byte is the first match.
func stringStop(b []byte, j int) int {
	for ; j+8 <= len(b); j += 8 {
		w := binary.LittleEndian.Uint64(b[j:])
		q := w ^ (wordLSB * '"')
		s := w ^ (wordLSB * '\\')
		if m := ((q - wordLSB) &^ q) | ((s - wordLSB) &^ s) | ((w - wordLSB*0x20) &^ w); m&wordMSB != 0 {
			return j + bits.TrailingZeros64(m&wordMSB)/8
		}
	}
	for ; j < len(b); j++ {
		if c := b[j]; c == '"' || c == '\\' || c < 0x20 {
			return j
		}
	}
	return j
}

// fastScanString returns the end of the string literal at b[i] == '"' and
// whether it has escapes; ok is false for a bad escape, a control
// character or no closing quote. b is valid UTF-8 (the gateway checks
// that).
func fastScanString(b []byte, i int) (end int, esc, ok bool) {
	j := i + 1
	for {
		j = stringStop(b, j)
		if j >= len(b) || b[j] < 0x20 {
			return 0, false, false
		}
		if b[j] == '"' {
			return j + 1, esc, true
		}
		esc = true // b[j] is a backslash
		if j+1 >= len(b) {
			return 0, false, false
		}
		switch b[j+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			j += 2
		case 'u':
			if j+5 >= len(b) || !edxIsHex(b[j+2]) || !edxIsHex(b[j+3]) || !edxIsHex(b[j+4]) || !edxIsHex(b[j+5]) {
				return 0, false, false
			}
			j += 6
		default:
			return 0, false, false
		}
	}
}

// isASCII reports whether s has no byte above 0x7f, eight bytes at a time.
func isASCII(s string) bool {
	b := unsafe.Slice(unsafe.StringData(s), len(s)) // read only
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:])&wordMSB != 0 {
			return false
		}
	}
	for ; i < len(b); i++ {
		if b[i] >= 0x80 {
			return false
		}
	}
	return true
}
