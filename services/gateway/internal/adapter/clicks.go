package adapter

import (
	"time"

	"github.com/sluicehq/sluice/pkg/event"
)

// Clicks adapts browser click-tracker events in the dejavu shape (seed 000)
// to schemas/clicks: {type, info:{x, y, button?, target:{id, name?, class}}},
// also wrapped as {"event": {...}} the way the dejavu PHP proxy forwards it
// to HEC, plus the optional session fields of the Sluice browser agent.
type Clicks struct{}

// Family implements Adapter.
func (Clicks) Family() event.Family { return event.Clicks }

const clNS = "sluice.clicks."

var (
	clKnown     = newKeySet("type", "info", "session", "page", "client_time", "event_id", "sequence")
	clInfoKnown = newKeySet("x", "y", "button", "target")
	// clTypes are the DOM event types the dejavu agent and its README
	// send, and the click the Sluice agent adds; the set stays open.
	clTypes = newKeySet("mousedown", "mouseup", "mousemove", "click")
)

// Adapt implements Adapter.
func (Clicks) Adapt(in *Input) (*Output, *event.Rejection) {
	m := in.Value
	out := &Output{}
	if w, found := m["event"]; found && len(m) == 1 {
		// dejavu.php forwards {"event": {...}} to HEC unchanged.
		inner, ok := w.(map[string]any)
		if !ok {
			return nil, wrongType("event", "an object", w)
		}
		m = inner
		out.Quirks = append(out.Quirks, "event_wrapper")
	}
	typ, ok, rej := getString(m, "type", "type")
	if rej != nil {
		return nil, rej
	}
	if !ok || typ == "" {
		return nil, event.Reject(event.ReasonMissingField, "type", "is required")
	}
	if _, known := clTypes[typ]; !known {
		if in.Meta.Strict {
			return nil, event.Reject(event.ReasonUnknownType, "type", "unknown click type %q", typ)
		}
		out.Unknown = true
	}
	out.EventType = typ
	info, ok, rej := getObject(m, "info", "info")
	if rej != nil {
		return nil, rej
	}
	if !ok {
		return nil, event.Reject(event.ReasonMissingField, "info", "is required")
	}

	var r unionReader
	var target any
	if t := r.Object(info, "info", "target"); t != nil {
		var class any
		switch c := t["class"].(type) {
		case nil:
		case string:
			class = map[string]any{"string": c}
		case map[string]any:
			// An SVG element's className is an SVGAnimatedString, which
			// JSON.stringify writes as {}.
			class = map[string]any{"string": ""}
			out.Quirks = append(out.Quirks, "class_svg_object")
		default:
			r.fail("info.target", "class", "a string", c)
		}
		target = map[string]any{clNS + "Target": map[string]any{
			"id":    r.String(t, "info.target", "id"),
			"name":  r.String(t, "info.target", "name"),
			"class": class,
		}}
	}
	f := make(map[string]any, 9)
	f["type"] = typ
	f["info"] = map[string]any{
		"x":      r.Double(info, "info", "x"),
		"y":      r.Double(info, "info", "y"),
		"button": r.Long(info, "info", "button"),
		"target": target,
	}
	session := r.String(m, "", "session")
	f["session"] = session
	f["page"] = r.String(m, "", "page")
	eventID := r.String(m, "", "event_id")
	f["event_id"] = eventID
	f["sequence"] = r.Long(m, "", "sequence")
	ct := r.Long(m, "", "client_time")
	if r.rej != nil {
		if r.rej.Field == "client_time" {
			r.rej.Message = "must be an integer (epoch milliseconds)"
		}
		return nil, r.rej
	}
	f["client_time"] = nil
	if c, ok := ct.(map[string]any); ok {
		ms := c["long"].(int64)
		f["client_time"] = map[string]any{"long.timestamp-millis": ms}
		out.ClientTime = time.UnixMilli(ms)
	}

	extra := unknownMembers(m, clKnown)
	if x := unknownMembers(info, clInfoKnown); x != nil {
		if extra == nil {
			extra = map[string]any{}
		}
		extra["info"] = x
	}
	ej, err := unionJSON(extra)
	if err != nil {
		return nil, event.Reject(event.ReasonInvalidField, "", "rendering unknown members: %v", err)
	}
	f["extra_json"] = ej

	if s, ok := session.(map[string]any); ok {
		out.PartitionKey = s["string"].(string)
	}
	if out.PartitionKey == "" {
		out.PartitionKey = in.Meta.IP
	}
	if out.PartitionKey == "" {
		out.PartitionKey = "anonymous"
	}
	if id, ok := eventID.(map[string]any); ok {
		out.EventID = id["string"].(string)
	}
	out.Fields = f
	return out, nil
}
