package adapter

import (
	"time"

	"github.com/sluicehq/sluice/pkg/event"
)

// Weaklayer adapts Weaklayer sensor and gateway events (seed 002) to
// schemas/weaklayer. Adapt serves the generic endpoint, where sensor and
// group come from the body and are required; AdaptFromSensor serves the
// native /events endpoint, where they come from the sensor's token.
type Weaklayer struct{}

// Family implements Adapter.
func (Weaklayer) Family() event.Family { return event.Weaklayer }

const wlNS = "sluice.weaklayer."

// Members known for every type, and per known type.
var (
	wlCommon = []string{"type", "time", "sensor", "group"}
	wlKnown  = map[string]keySet{
		"Install":        newKeySet(append(wlCommon, "label", "isNewInstall", "userAgent")...),
		"Window":         newKeySet(append(wlCommon, "isTopLevelWindow", "topLevelWindowReference")...),
		"WindowLocation": newKeySet(append(wlCommon, "protocol", "hostname", "port", "path", "search", "hash", "windowReference")...),
		"TextInput":      newKeySet(append(wlCommon, "textHash", "textLength", "inputType", "windowLocationReference")...),
	}
	wlUnknown = newKeySet(wlCommon...)
)

// Adapt implements Adapter for the generic endpoint: sensor and group are
// read from the body.
func (Weaklayer) Adapt(in *Input) (*Output, *event.Rejection) {
	sensor, group, rej := wlIdentity(in.Value)
	if rej != nil {
		return nil, rej
	}
	if sensor == "" {
		return nil, event.Reject(event.ReasonMissingField, "sensor", "is required")
	}
	if group == "" {
		return nil, event.Reject(event.ReasonMissingField, "group", "is required")
	}
	return wlAdapt(in, sensor, group, nil)
}

// AdaptFromSensor adapts one element of a native /events batch from the
// sensor whose token carried sensor and group. Sensor and group in the
// body are ignored (quirk body_sensor_overridden when they differ), as the
// Weaklayer gateway does. Install events are refused: only the gateway
// emits them, on /install.
func (Weaklayer) AdaptFromSensor(in *Input, sensor, group string) (*Output, *event.Rejection) {
	var quirks []string
	bs, bg, rej := wlIdentity(in.Value)
	if rej != nil {
		// A wrong-typed body value is overridden like any other.
		quirks = append(quirks, "body_sensor_overridden")
	} else if (bs != "" && bs != sensor) || (bg != "" && bg != group) {
		quirks = append(quirks, "body_sensor_overridden")
	}
	if t, _ := in.Value["type"].(string); t == "Install" {
		return nil, event.Reject(event.ReasonForbiddenType, "type", "Install events are emitted by the gateway, not by sensors")
	}
	return wlAdapt(in, sensor, group, quirks)
}

func wlIdentity(m map[string]any) (sensor, group string, rej *event.Rejection) {
	if sensor, _, rej = getString(m, "sensor", "sensor"); rej != nil {
		return "", "", rej
	}
	if group, _, rej = getString(m, "group", "group"); rej != nil {
		return "", "", rej
	}
	return sensor, group, nil
}

func wlAdapt(in *Input, sensor, group string, quirks []string) (*Output, *event.Rejection) {
	m := in.Value
	out := &Output{PartitionKey: sensor, Quirks: quirks}
	typ, ok, rej := getString(m, "type", "type")
	if rej != nil {
		return nil, rej
	}
	if !ok {
		// The Weaklayer gateway reads a missing type as "".
		out.Quirks = append(out.Quirks, "type_missing")
	}
	switch typ {
	case "TextCapture":
		return nil, event.Reject(event.ReasonForbiddenType, "type", "TextCapture carries plaintext and must never leave the sensor")
	case "PageLoad":
		typ = "WindowLocation" // the pre-rename name
		out.Quirks = append(out.Quirks, "type_pageload")
	}
	out.EventType = typ

	v, found := m["time"]
	if !found || v == nil {
		return nil, event.Reject(event.ReasonMissingField, "time", "is required")
	}
	t, ok := asInt64(v)
	if !ok {
		return nil, wrongType("time", "an integer (epoch microseconds)", v)
	}
	if t <= 0 {
		return nil, event.Reject(event.ReasonInvalidField, "time", "must be > 0, got %d", t)
	}
	out.ClientTime = time.UnixMicro(t)

	f := make(map[string]any, 10)
	f["type"] = typ
	f["time"] = t
	f["sensor"] = sensor
	f["group"] = group
	f["install"], f["window"], f["window_location"], f["text_input"] = nil, nil, nil, nil
	known := wlKnown[typ]
	var r unionReader
	switch typ {
	case "Install":
		f["install"] = map[string]any{wlNS + "Install": map[string]any{
			"label":        r.String(m, "", "label"),
			"isNewInstall": r.Bool(m, "", "isNewInstall"),
			"userAgent":    r.String(m, "", "userAgent"),
		}}
	case "Window":
		f["window"] = map[string]any{wlNS + "Window": map[string]any{
			"isTopLevelWindow":        r.Bool(m, "", "isTopLevelWindow"),
			"topLevelWindowReference": r.Long(m, "", "topLevelWindowReference"),
		}}
	case "WindowLocation":
		port := r.Int(m, "", "port")
		if p, ok := port.(map[string]any); ok {
			if n := p["int"].(int32); n < 0 || n > 65535 {
				return nil, event.Reject(event.ReasonInvalidField, "port", "must be 0-65535, got %d", n)
			}
		}
		f["window_location"] = map[string]any{wlNS + "WindowLocation": map[string]any{
			"protocol":        r.String(m, "", "protocol"),
			"hostname":        r.String(m, "", "hostname"),
			"port":            port,
			"path":            r.String(m, "", "path"),
			"search":          r.String(m, "", "search"),
			"hash":            r.String(m, "", "hash"),
			"windowReference": r.Long(m, "", "windowReference"),
		}}
	case "TextInput":
		f["text_input"] = map[string]any{wlNS + "TextInput": map[string]any{
			"textHash":                r.String(m, "", "textHash"),
			"textLength":              r.Long(m, "", "textLength"),
			"inputType":               r.String(m, "", "inputType"),
			"windowLocationReference": r.Long(m, "", "windowLocationReference"),
		}}
	default:
		if in.Meta.Strict {
			return nil, event.Reject(event.ReasonUnknownType, "type", "unknown Weaklayer type %q", typ)
		}
		out.Unknown = true
		known = wlUnknown
	}
	if r.rej != nil {
		return nil, r.rej
	}
	extra, err := unionJSON(unknownMembers(m, known))
	if err != nil {
		return nil, event.Reject(event.ReasonInvalidField, "", "rendering unknown members: %v", err)
	}
	f["extra_json"] = extra
	out.Fields = f
	return out, nil
}
