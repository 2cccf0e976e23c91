package adapter

import (
	"io"
	"strconv"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/sluicehq/sluice/pkg/event"
)

// CrowdFrame adapts Crowd Frame behavioural-log messages (seed 003) to
// schemas/crowdframe: the base body, the details as JSON text, and a typed
// copy of the details for every known type. It accepts the newest client's
// body, the oldest client's key spellings and the form the Crowd Frame
// Lambda stores (string sequence, details as a JSON string).
type CrowdFrame struct{}

// Family implements Adapter.
func (CrowdFrame) Family() event.Family { return event.CrowdFrame }

const cfNS = "sluice.crowdframe."

var cfKnown = newKeySet("type", "worker", "task", "batch", "unitId", "unitID", "bucket", "region",
	"client_time", "sequence", "details", "server_time", "event_id")

// Adapt implements Adapter.
func (CrowdFrame) Adapt(in *Input) (*Output, *event.Rejection) {
	m := in.Value
	typ, ok, rej := getString(m, "type", "type")
	if rej != nil {
		return nil, rej
	}
	if !ok {
		return nil, event.Reject(event.ReasonMissingField, "type", "is required")
	}
	worker, ok, rej := getString(m, "worker", "worker")
	if rej != nil {
		return nil, rej
	}
	if !ok || worker == "" {
		return nil, event.Reject(event.ReasonMissingField, "worker", "is required")
	}
	out := &Output{EventType: typ, PartitionKey: worker}
	// The Sluice browser agent sends a client event id (the envelope's).
	id, _, rej := getString(m, "event_id", "event_id")
	if rej != nil {
		return nil, rej
	}
	out.EventID = id
	if typ == "select" {
		typ = "selection"
		out.EventType = typ
		out.Quirks = append(out.Quirks, "type_select")
	}
	build, known := cfDetails[typ]
	if !known {
		if in.Meta.Strict {
			return nil, event.Reject(event.ReasonUnknownType, "type", "unknown Crowd Frame type %q", typ)
		}
		out.Unknown = true
	}

	var r unionReader
	f := make(map[string]any, 16)
	f["type"] = typ
	f["worker"] = worker
	f["task"] = r.String(m, "", "task")
	f["batch"] = r.String(m, "", "batch")
	if _, found := m["unitId"]; found {
		f["unit_id"] = r.String(m, "", "unitId")
	} else if _, found := m["unitID"]; found {
		// The thesis (seed 003) spells it unitID; the client code never did.
		f["unit_id"] = r.String(m, "", "unitID")
		out.Quirks = append(out.Quirks, "unit_id_key_case")
	} else {
		f["unit_id"] = nil
	}
	f["bucket"] = r.String(m, "", "bucket")
	f["region"] = r.String(m, "", "region")
	if r.rej != nil {
		return nil, r.rej
	}

	f["sequence"], f["sequence_try"] = nil, nil
	switch v := m["sequence"].(type) {
	case nil:
	case string:
		try, seq, ok := cfStoredSequence(v)
		if !ok {
			return nil, event.Reject(event.ReasonInvalidField, "sequence", "must be an integer or \"<try>_<n>\", got %q", v)
		}
		f["sequence"] = map[string]any{"long": seq}
		if try >= 0 {
			f["sequence_try"] = map[string]any{"int": int32(try)}
		}
		out.Quirks = append(out.Quirks, "sequence_string")
	default:
		seq, ok := asInt64(v)
		if !ok {
			return nil, wrongType("sequence", "an integer", v)
		}
		f["sequence"] = map[string]any{"long": seq}
	}

	ct, ok, rej := cfEpochMillis(m, "client_time", &out.Quirks)
	if rej != nil {
		return nil, rej
	}
	f["client_time"] = nil
	if ok {
		f["client_time"] = map[string]any{"long.timestamp-millis": ct}
		out.ClientTime = time.UnixMilli(ct)
	}
	st, ok, rej := cfEpochMillis(m, "server_time", &out.Quirks)
	if rej != nil {
		return nil, rej
	}
	f["server_time"] = nil
	if ok {
		f["server_time"] = map[string]any{"long.timestamp-millis": st}
	}

	details, detailsJSON, rej := cfReadDetails(in, known, &out.Quirks)
	if rej != nil {
		return nil, rej
	}
	f["details_json"] = detailsJSON
	f["details"] = nil
	if known && details != nil {
		d, isObj := details.(map[string]any)
		if !isObj {
			return nil, wrongType("details", "an object", details)
		}
		name, rec := build(d, &r, &out.Quirks)
		if r.rej != nil {
			return nil, r.rej
		}
		f["details"] = map[string]any{cfNS + name: rec}
	}

	extra, err := unionJSON(unknownMembers(m, cfKnown))
	if err != nil {
		return nil, event.Reject(event.ReasonInvalidField, "", "rendering unknown members: %v", err)
	}
	f["extra_json"] = extra
	out.Fields = f
	return out, nil
}

// cfStoredSequence parses the Lambda's stored sequence "<try>_<n>", or a
// plain decimal string (try -1).
func cfStoredSequence(s string) (try int, seq int64, ok bool) {
	try = -1
	if i := strings.IndexByte(s, '_'); i >= 0 {
		t, err := strconv.Atoi(s[:i])
		if err != nil || t < 0 || t > 1000 {
			return 0, 0, false
		}
		try, s = t, s[i+1:]
	}
	seq, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return try, seq, true
}

// cfEpochMillis reads an epoch-ms time: an integer, or a decimal string
// (the thesis documents client_time as a string; quirk <key>_string).
func cfEpochMillis(m map[string]any, key string, quirks *[]string) (int64, bool, *event.Rejection) {
	switch v := m[key].(type) {
	case nil:
		return 0, false, nil
	case string:
		ms, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, false, event.Reject(event.ReasonInvalidField, key, "must be epoch milliseconds, got %q", v)
		}
		*quirks = append(*quirks, key+"_string")
		return ms, true, nil
	default:
		ms, ok := asInt64(v)
		if !ok {
			return 0, false, wrongType(key, "an integer (epoch milliseconds)", v)
		}
		return ms, true, nil
	}
}

// cfReadDetails returns the decoded details and their JSON text. Details
// stored by the Lambda arrive as a JSON string and are decoded (quirk
// details_json_string); a string that is not JSON is refused for known
// types and kept as a JSON string for unknown ones.
func cfReadDetails(in *Input, known bool, quirks *[]string) (any, string, *event.Rejection) {
	v, found := in.Value["details"]
	if !found || v == nil {
		return nil, "null", nil
	}
	if s, isStr := v.(string); isStr {
		if text, ok := validJSONText(s); ok {
			if dec, ok := decodeJSONText(text); ok {
				*quirks = append(*quirks, "details_json_string")
				return dec, text, nil
			}
		}
		if known {
			return nil, "", event.Reject(event.ReasonInvalidField, "details", "must be an object or a JSON string of one")
		}
		text, err := jsonText(s)
		if err != nil {
			return nil, "", event.Reject(event.ReasonInvalidField, "details", "rendering: %v", err)
		}
		return s, text, nil
	}
	// Slice the details' own bytes out of the raw event when they are
	// there (no re-encoding of large movements arrays); else render them.
	if members, ok := rawMembers(in.Raw, nil); ok {
		if raw := rawLookup(members, "details"); len(raw) > 0 && rawKindMatches(raw[0], v) {
			if text, ok := compactJSON(raw); ok {
				return v, text, nil
			}
		}
	}
	text, err := jsonText(v)
	if err != nil {
		return nil, "", event.Reject(event.ReasonInvalidField, "details", "rendering: %v", err)
	}
	return v, text, nil
}

// rawKindMatches reports whether a raw JSON value starting with byte c has
// the JSON kind of the decoded value v.
func rawKindMatches(c byte, v any) bool {
	switch v.(type) {
	case map[string]any:
		return c == '{'
	case []any:
		return c == '['
	case string:
		return c == '"'
	}
	return false
}

// decodeJSONText decodes s as one JSON value, numbers as json.Number.
func decodeJSONText(s string) (any, bool) {
	dec := gojson.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	var rest any
	if err := dec.Decode(&rest); err != io.EOF {
		return nil, false
	}
	return v, true
}

// cfBuilder builds the typed details record of one type: its schema name
// (without namespace) and native value.
type cfBuilder func(d map[string]any, r *unionReader, quirks *[]string) (string, map[string]any)

var cfDetails map[string]cfBuilder

func init() {
	moment := func(d map[string]any, r *unionReader, _ *[]string) (string, map[string]any) {
		return "Moment", map[string]any{
			"section":   r.String(d, "details", "section"),
			"timeStamp": r.Double(d, "details", "timeStamp"),
		}
	}
	clipboard := func(d map[string]any, r *unionReader, _ *[]string) (string, map[string]any) {
		return "Clipboard", map[string]any{
			"section":   r.String(d, "details", "section"),
			"timeStamp": r.Double(d, "details", "timeStamp"),
			"target":    r.String(d, "details", "target"),
		}
	}
	text := func(d map[string]any, r *unionReader, quirks *[]string) (string, map[string]any) {
		key := "text"
		if _, found := d["text"]; !found {
			if _, found := d["value"]; found {
				key = "value" // oldest client
				*quirks = append(*quirks, "text_value_key")
			}
		}
		return "Text", map[string]any{
			"section":   r.String(d, "details", "section"),
			"timeStamp": r.Double(d, "details", "timeStamp"),
			"text":      r.String(d, "details", key),
		}
	}
	cfDetails = map[string]cfBuilder{
		"context": func(d map[string]any, r *unionReader, _ *[]string) (string, map[string]any) {
			return "Context", map[string]any{
				"ua": r.String(d, "details", "ua"),
				"ip": r.String(d, "details", "ip"),
			}
		},
		"init":   cfInit,
		"button": cfButton,
		"click":  cfClick,
		"movements": func(d map[string]any, r *unionReader, quirks *[]string) (string, map[string]any) {
			pts := r.Array(d, "details", "points")
			items := make([]any, 0, len(pts))
			for i, p := range pts {
				pm, ok := p.(map[string]any)
				if !ok {
					r.fail("", "details.points["+strconv.Itoa(i)+"]", "an object", p)
					break
				}
				items = append(items, map[string]any{
					"timeStamp": r.Double(pm, "details.points[]", "timeStamp"),
					"x":         r.Double(pm, "details.points[]", "x"),
					"y":         r.Double(pm, "details.points[]", "y"),
					"target":    cfTarget(pm, "details.points[]", "details.points[].target", r, quirks),
				})
				if r.rej != nil {
					r.rej.Field = strings.Replace(r.rej.Field, "[]", "["+strconv.Itoa(i)+"]", 1)
					break
				}
			}
			return "Movements", map[string]any{
				"section": r.String(d, "details", "section"),
				"points":  items,
			}
		},
		"shortcut": func(d map[string]any, r *unionReader, _ *[]string) (string, map[string]any) {
			return "Shortcut", map[string]any{
				"section":   r.String(d, "details", "section"),
				"timeStamp": r.Double(d, "details", "timeStamp"),
				"ctrl":      r.Bool(d, "details", "ctrl"),
				"alt":       r.Bool(d, "details", "alt"),
				"key":       r.String(d, "details", "key"),
			}
		},
		"keySequence": func(d map[string]any, r *unionReader, _ *[]string) (string, map[string]any) {
			keys := r.Array(d, "details", "keySequence")
			items := make([]any, 0, len(keys))
			for i, k := range keys {
				km, ok := k.(map[string]any)
				if !ok {
					r.fail("", "details.keySequence["+strconv.Itoa(i)+"]", "an object", k)
					break
				}
				items = append(items, map[string]any{
					"timeStamp": r.Double(km, "details.keySequence[]", "timeStamp"),
					"key":       r.String(km, "details.keySequence[]", "key"),
				})
				if r.rej != nil {
					r.rej.Field = strings.Replace(r.rej.Field, "[]", "["+strconv.Itoa(i)+"]", 1)
					break
				}
			}
			return "KeySequence", map[string]any{
				"section":     r.String(d, "details", "section"),
				"keySequence": items,
				"sentence":    r.String(d, "details", "sentence"),
			}
		},
		"selection": func(d map[string]any, r *unionReader, _ *[]string) (string, map[string]any) {
			return "Selection", map[string]any{
				"section":   r.String(d, "details", "section"),
				"startTime": r.Double(d, "details", "startTime"),
				"endTime":   r.Double(d, "details", "endTime"),
				"timeStamp": r.Double(d, "details", "timeStamp"),
				"selected":  r.String(d, "details", "selected"),
			}
		},
		"unload":       moment,
		"window_focus": moment,
		"window_blur":  moment,
		"scroll": func(d map[string]any, r *unionReader, quirks *[]string) (string, map[string]any) {
			start, end := "startTimestamp", "endTimestamp"
			_, newStart := d[start]
			_, newEnd := d[end]
			if !newStart && !newEnd {
				_, oldStart := d["startTimeStamp"]
				_, oldEnd := d["endTimeStamp"]
				if oldStart || oldEnd {
					start, end = "startTimeStamp", "endTimeStamp" // oldest client
					*quirks = append(*quirks, "scroll_timestamp_case")
				}
			}
			return "Scroll", map[string]any{
				"section":        r.String(d, "details", "section"),
				"startTimestamp": r.Double(d, "details", start),
				"endTimestamp":   r.Double(d, "details", end),
				"x":              r.Double(d, "details", "x"),
				"y":              r.Double(d, "details", "y"),
			}
		},
		"resize": func(d map[string]any, r *unionReader, _ *[]string) (string, map[string]any) {
			return "Resize", map[string]any{
				"section":      r.String(d, "details", "section"),
				"width":        r.Long(d, "details", "width"),
				"height":       r.Long(d, "details", "height"),
				"scrollWidth":  r.Long(d, "details", "scrollWidth"),
				"scrollHeight": r.Long(d, "details", "scrollHeight"),
				"timeStamp":    r.Double(d, "details", "timeStamp"),
			}
		},
		"copy":  clipboard,
		"cut":   clipboard,
		"paste": text,
		"text":  text,
		"radioChange": func(d map[string]any, r *unionReader, quirks *[]string) (string, map[string]any) {
			var value any
			switch v := d["value"].(type) {
			case nil:
			case string:
				value = map[string]any{"string": v}
			default:
				// mat-radio-button values may be any type.
				if s, err := jsonText(v); err == nil {
					value = map[string]any{"string": s}
					*quirks = append(*quirks, "radio_value_json")
				}
			}
			return "RadioChange", map[string]any{
				"section":   r.String(d, "details", "section"),
				"timeStamp": r.Double(d, "details", "timeStamp"),
				"group":     r.String(d, "details", "group"),
				"value":     value,
			}
		},
		"query": func(d map[string]any, r *unionReader, _ *[]string) (string, map[string]any) {
			return "Query", map[string]any{
				"section": r.String(d, "details", "section"),
				"query":   r.String(d, "details", "query"),
			}
		},
		"queryResults": func(d map[string]any, r *unionReader, quirks *[]string) (string, map[string]any) {
			rec := map[string]any{
				"section":   r.String(d, "details", "section"),
				"urlAmount": r.Long(d, "details", "urlAmount"),
				"urlArray":  nil,
			}
			if urls := r.Array(d, "details", "urlArray"); urls != nil {
				items := make([]any, len(urls))
				for i, u := range urls {
					s, ok := u.(string)
					if !ok {
						r.fail("", "details.urlArray["+strconv.Itoa(i)+"]", "a string", u)
						break
					}
					items[i] = s
				}
				rec["urlArray"] = map[string]any{"array": items}
				if rec["urlAmount"] == nil {
					rec["urlAmount"] = map[string]any{"long": int64(len(urls))}
					*quirks = append(*quirks, "query_results_url_array")
				}
			}
			return "QueryResults", rec
		},
		"linkVisited": func(d map[string]any, r *unionReader, _ *[]string) (string, map[string]any) {
			return "LinkVisited", map[string]any{"section": r.String(d, "details", "section")}
		},
	}
}

func cfInit(d map[string]any, r *unionReader, quirks *[]string) (string, map[string]any) {
	win, parent := d, "details"
	var screenW, screenH any
	if ws := r.Object(d, "details", "window_size"); ws != nil {
		// Oldest client: {screen_size:{width,height}, window_size:{section,width,...}}.
		win, parent = ws, "details.window_size"
		*quirks = append(*quirks, "init_window_size")
	}
	if ss := r.Object(d, "details", "screen_size"); ss != nil {
		screenW = r.Long(ss, "details.screen_size", "width")
		screenH = r.Long(ss, "details.screen_size", "height")
	}
	return "Init", map[string]any{
		"section":      r.String(win, parent, "section"),
		"width":        r.Long(win, parent, "width"),
		"height":       r.Long(win, parent, "height"),
		"scrollWidth":  r.Long(win, parent, "scrollWidth"),
		"scrollHeight": r.Long(win, parent, "scrollHeight"),
		"screenWidth":  screenW,
		"screenHeight": screenH,
	}
}

func cfButton(d map[string]any, r *unionReader, _ *[]string) (string, map[string]any) {
	return "Button", map[string]any{
		"section":   r.String(d, "details", "section"),
		"button":    r.String(d, "details", "button"),
		"timeStamp": r.Double(d, "details", "timeStamp"),
		"x":         r.Double(d, "details", "x"),
		"y":         r.Double(d, "details", "y"),
	}
}

func cfClick(d map[string]any, r *unionReader, quirks *[]string) (string, map[string]any) {
	return "Click", map[string]any{
		"section":     r.String(d, "details", "section"),
		"mouseButton": r.String(d, "details", "mouseButton"),
		"startTime":   r.Double(d, "details", "startTime"),
		"endTime":     r.Double(d, "details", "endTime"),
		"timeStamp":   r.Double(d, "details", "timeStamp"),
		"x":           r.Double(d, "details", "x"),
		"y":           r.Double(d, "details", "y"),
		"target":      cfTarget(d, "details", "details.target", r, quirks),
		"clicks":      r.Long(d, "details", "clicks"),
	}
}

// cfTarget reads a {elementName, className} target. A string target (the
// thesis documents one) becomes elementName (quirk target_string); an SVG
// element's className serialises as {} and becomes "" (quirk
// class_svg_object).
func cfTarget(m map[string]any, parent, targetPath string, r *unionReader, quirks *[]string) any {
	switch t := m["target"].(type) {
	case nil:
		return nil
	case string:
		addQuirk(quirks, "target_string")
		return map[string]any{cfNS + "Target": map[string]any{
			"elementName": map[string]any{"string": t}, "className": nil, "id": nil,
		}}
	case map[string]any:
		var class any
		switch c := t["className"].(type) {
		case nil:
		case string:
			class = map[string]any{"string": c}
		case map[string]any:
			class = map[string]any{"string": ""}
			addQuirk(quirks, "class_svg_object")
		default:
			r.fail(targetPath, "className", "a string", c)
		}
		return map[string]any{cfNS + "Target": map[string]any{
			"elementName": r.String(t, targetPath, "elementName"),
			"className":   class,
			"id":          r.String(t, targetPath, "id"), // schema v2
		}}
	default:
		r.fail(parent, "target", "an object", t)
		return nil
	}
}

// addQuirk appends a quirk name once.
func addQuirk(quirks *[]string, name string) {
	for _, q := range *quirks {
		if q == name {
			return
		}
	}
	*quirks = append(*quirks, name)
}
