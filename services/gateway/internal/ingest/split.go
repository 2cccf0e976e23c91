package ingest

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/pkg/event"
)

// Item is one event as split from a request body, or as framed by a native
// endpoint (one archive entry, one log line, one HEC envelope). Raw is what
// the DLQ keeps when the event is rejected.
type Item struct {
	Raw []byte
	// Quirks names irregularities found while framing the event; they are
	// stamped on its envelope with the adapter's own.
	Quirks []string
	// Reject, when set, refuses the item with this reason without decoding
	// it: a native endpoint's framing verdict (e.g. an archive entry that is
	// not JSON even after repair), dead-lettered like any other rejection.
	Reject *event.Rejection
	// depth is the event's nesting depth, or depthUnknown: an NDJSON line
	// is framed by its newline alone, and measured only if the general
	// path is to decode it (the fast paths bound nesting as they scan).
	depth int
	// blank is set for an NDJSON line holding only whitespace.
	blank bool
}

// NewItem frames raw as one event, measuring its nesting depth so that the
// pipeline's depth limit applies to it.
func NewItem(raw []byte, quirks ...string) Item {
	it := Item{Raw: raw, Quirks: quirks}
	// The depth counts even when the value is malformed, so that a deep one
	// is refused here and not handed to the decoder.
	_, it.depth, _ = scanValue(raw, skipSpace(raw, 0))
	return it
}

// RejectedItem frames raw as an event the endpoint already refused.
func RejectedItem(raw []byte, rj *event.Rejection) Item {
	return Item{Raw: raw, Reject: rj}
}

// depthUnknown is Item.depth before the event is measured.
const depthUnknown = -1

// errNotJSON is returned when a body has no JSON structure at all.
var errNotJSON = errors.New("body is not JSON: expected an array, an object or NDJSON lines")

// Body formats.
const (
	formatAuto   = ""
	formatNDJSON = "ndjson"
)

// split cuts a request body into events: a JSON array (one event per
// element), a single JSON object, or NDJSON (one event per line; also used
// for concatenated objects). It does not decode the events; it finds their
// boundaries (and, where finding them means scanning the value, their
// nesting depth) so that a malformed event is rejected on its own rather
// than failing the whole request.
func split(body []byte, format string, maxEvents int) ([]Item, error) {
	if format == formatNDJSON {
		return splitLines(body, maxEvents)
	}
	i := skipSpace(body, 0)
	if i == len(body) {
		return nil, errors.New("body is empty")
	}
	switch body[i] {
	case '[':
		return splitArray(body, i, maxEvents)
	case '{':
		end, depth, err := scanValue(body, i)
		if err == nil && skipSpace(body, end) == len(body) {
			return []Item{{Raw: body[i:end], depth: depth}}, nil
		}
		if depth > deepBody {
			// Malformed and deep: one event, refused for its depth without
			// cutting it into lines.
			return []Item{{Raw: body[i:], depth: depth}}, nil
		}
		// Several objects, or a malformed one: read as lines, so each line
		// gets its own verdict.
		return splitLines(body, maxEvents)
	default:
		// Text that is not JSON at all is a request-level error, unless it
		// holds lines of which some are objects (a log with a header line).
		if bytes.Contains(body, []byte("\n{")) {
			return splitLines(body, maxEvents)
		}
		return nil, errNotJSON
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// ErrTooManyEvents is returned when a body holds more events than allowed.
type ErrTooManyEvents struct{ Max int }

func (e ErrTooManyEvents) Error() string {
	return fmt.Sprintf("body holds more than %d events", e.Max)
}

func splitArray(body []byte, start, maxEvents int) ([]Item, error) {
	var items []Item
	i := skipSpace(body, start+1)
	if i < len(body) && body[i] == ']' {
		if skipSpace(body, i+1) != len(body) {
			return nil, errors.New("body is not JSON: data after the closing ]")
		}
		return nil, nil
	}
	for {
		if len(items) == maxEvents {
			return nil, ErrTooManyEvents{maxEvents}
		}
		i = skipSpace(body, i)
		end, depth, err := scanValue(body, i)
		if err != nil {
			return nil, fmt.Errorf("body is not JSON: element %d: %w", len(items), err)
		}
		items = append(items, Item{Raw: body[i:end], depth: depth})
		i = skipSpace(body, end)
		if i == len(body) {
			return nil, errors.New("body is not JSON: the array is not closed")
		}
		if body[i] == ']' {
			if skipSpace(body, i+1) != len(body) {
				return nil, errors.New("body is not JSON: data after the closing ]")
			}
			return items, nil
		}
		if body[i] != ',' {
			return nil, fmt.Errorf("body is not JSON: expected , or ] after element %d", len(items)-1)
		}
		i++
	}
}

func splitLines(body []byte, maxEvents int) ([]Item, error) {
	var items []Item
	for len(body) > 0 {
		var line []byte
		if j := bytes.IndexByte(body, '\n'); j >= 0 {
			line, body = body[:j], body[j+1:]
		} else {
			line, body = body, nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(items) == maxEvents {
			return nil, ErrTooManyEvents{maxEvents}
		}
		it := Item{Raw: line}
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) == 0 {
			it.blank = true
			items = append(items, it)
			continue
		}
		if trimmed[0] == 0 {
			// logrotate copytruncate leaves NUL bytes before the first line.
			trimmed = bytes.TrimLeft(trimmed, "\x00")
			it.Quirks = append(it.Quirks, "nul_prefix")
		}
		if len(trimmed) > 0 && trimmed[0] != '{' && trimmed[0] != '[' && trimmed[len(trimmed)-1] == '}' {
			// Python logging prefix before the JSON ("2023-05-23 13:53:13,461
			// INFO ... - {json}"): keep the object, say so.
			if k := bytes.IndexByte(trimmed, '{'); k > 0 && trimmed[0] != '#' {
				trimmed = trimmed[k:]
				it.Quirks = append(it.Quirks, "log_prefix")
			}
		}
		it.Raw = trimmed
		it.depth = depthUnknown // measured before decoding (Pipeline.build)
		items = append(items, it)
	}
	return items, nil
}

// deepBody is the nesting depth past which a malformed single-object body
// is taken as one event rather than read as lines: no event limit is that
// deep, and lines of it would each be decoded.
const deepBody = 256

// scanValue finds the end of the JSON value starting at b[i] and its maximum
// nesting depth. It checks structure (brackets, strings, escapes), not the
// full grammar: each event is fully decoded later. One pass, no recursion,
// no allocation: a 10,000-deep value costs what its bytes cost. On error,
// maxDepth is the deepest nesting reached before it.
func scanValue(b []byte, i int) (end, maxDepth int, err error) {
	if i >= len(b) {
		return 0, 0, errors.New("unexpected end of input")
	}
	depth := 0
	for ; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			j := i + 1
			for ; j < len(b); j++ {
				if b[j] == '\\' {
					j++
					continue
				}
				if b[j] == '"' {
					break
				}
			}
			if j >= len(b) {
				return 0, maxDepth, errors.New("unterminated string")
			}
			i = j
			if depth == 0 {
				return i + 1, maxDepth, nil
			}
		case '{', '[':
			depth++
			if depth > maxDepth {
				maxDepth = depth
			}
		case '}', ']':
			depth--
			if depth < 0 {
				return 0, maxDepth, fmt.Errorf("unexpected %q", c)
			}
			if depth == 0 {
				return i + 1, maxDepth, nil
			}
		case ',', ' ', '\t', '\n', '\r', ':':
			if depth == 0 {
				return i, maxDepth, nil
			}
		default:
			if depth == 0 {
				// a scalar at top level: runs to the next delimiter
				j := i
				for j < len(b) && !bytes.ContainsRune([]byte(",]} \t\r\n"), rune(b[j])) {
					j++
				}
				return j, 0, nil
			}
		}
	}
	return 0, maxDepth, errors.New("unexpected end of input: value not closed")
}
