package adapter

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
)

// EdX adapts Open edX tracking-log events (schemas/edx): legacy flat
// tracking-log lines, event-tracking envelopes ({name, timestamp, data,
// context}), and the lines the gateway builds for browser /event and
// segment.io calls.
//
// Policy. edX data is messy by history, not by accident, so the adapter
// accepts every shape real edX installations have written and names each
// irregularity in Output.Quirks (the per-event answer to "what did Sluice do
// with this line"). It rejects only what no edX version writes: a member of
// an impossible JSON type (context a number, username an object, event a
// number, ...), with the member's path, and an object with none of
// event_type, name, time and timestamp (nothing says it is an edX event).
//
// Decisions worth knowing:
//   - An unparseable time (the EAP Jinja template's "{{ start_date }}T..."
//     placeholder, an impossible date) does not reject the event: time_raw
//     keeps the text, time and ClientTime stay null/zero, and the quirk
//     time_unparseable says so; envelope.received_at still orders it. A
//     missing or null time is accepted the same way with time_raw "" and
//     quirk time_absent. A time of another JSON type is rejected.
//   - Event types are an open set. Unknown is set for a type that is neither
//     documented (edxKnownTypes) nor an implicit server event ("/..."); such
//     events are accepted unless Meta.Strict, which rejects them with
//     unknown_type. A line without any type (minimal lines) is not unknown.
//   - A number or boolean event, which no edX version emits, is rejected.
//   - JSON-text fields are sliced from Input.Raw when it is exactly the
//     decoded object, else re-marshalled (keys then sorted).
//
// Quirk names:
//
//	envelope_shape          event-tracking envelope mapped to the flat fields
//	context_fields_at_top   context carried top-level fields (username, ip, ...):
//	                        moved up when the top lacks them, dropped when equal,
//	                        kept in context.extra when different
//	event_json_string       event was a JSON-encoded string
//	event_double_encoded    ... whose content was itself JSON text of an
//	                        object or list (event_json holds the inner text)
//	event_urlencoded        event was a URL-encoded form (browser problem_check)
//	event_list              event was a JSON list (browser problem_graded)
//	event_empty             event was ""
//	event_null              event was null
//	event_absent            no event member
//	event_truncated_512     a JSON-looking string of exactly 512 characters that
//	                        does not parse (middleware truncation)
//	event_invalid_json      a JSON-looking string of another length that does
//	                        not parse
//	event_plain_string      any other string
//	time_absent             no time (time_raw "", time null)
//	time_unparseable        time kept in time_raw, time null (e.g. the Jinja
//	                        placeholder "{{ start_date }}T...")
//	time_no_fraction, time_naive (taken as UTC), time_z, time_space_separator,
//	time_offset_no_colon, time_comma_fraction, time_lowercase
//	received_at_unparseable context.received_at kept raw, parsed value null
//	username_empty          username ""
//	username_from_request   username absent, taken from Meta.Username
//	username_overridden     Meta.Username replaced a different username
//	                        (the claimed one is kept in extra["username"])
//	user_id_string          context.user_id a non-empty string (kept as given)
//	user_id_empty           context.user_id "" (stored as null)
//	agent_mojibake          agent was UTF-8 decoded as latin-1; repaired
type EdX struct{}

// Family implements Adapter.
func (EdX) Family() event.Family { return event.EdX }

// Top-level members of a tracking-log line that have their own field.
var edxTopFields = [...]string{
	"username", "event_type", "name", "event_source", "ip", "agent", "host",
	"referer", "accept_language", "page", "session",
}

// Top-level fields that older lines (and the envelope shape) keep inside
// context; see LegacyFieldMappingProcessor in event-tracking's shim.
var edxContextTopFields = [...]string{
	"username", "session", "ip", "agent", "host", "referer", "accept_language",
	"event_source", "page", "event_type",
}

// String members of context with their own field.
var edxContextStrings = [...]string{
	"course_id", "org_id", "path", "enterprise_uuid", "component", "label",
	"open_in_browser_url", "command",
}

var edxContextStringPaths = func() (p [len(edxContextStrings)]string) {
	for i, k := range edxContextStrings {
		p[i] = "context." + k
	}
	return p
}()

// Members of context kept as JSON text.
var edxContextJSON = [...]string{"asides", "application", "client"}

const edxTopFieldCount = len(edxTopFields)

// Indexes into edxTopFields.
const (
	edxUsername = iota
	edxEventType
	edxName
	edxEventSource
	edxIP
	edxAgent
	edxHost
	edxReferer
	edxAcceptLanguage
	edxPage
	edxSession
)

// edxTopIndex is key's index in edxTopFields, or -1. A switch, not a loop
// over the array: it runs for every member of every event, and the
// compiler turns it into a search on length and value
// (TestEdXFieldIndexes holds it equal to the array).
func edxTopIndex(key string) int {
	switch key {
	case "username":
		return edxUsername
	case "event_type":
		return edxEventType
	case "name":
		return edxName
	case "event_source":
		return edxEventSource
	case "ip":
		return edxIP
	case "agent":
		return edxAgent
	case "host":
		return edxHost
	case "referer":
		return edxReferer
	case "accept_language":
		return edxAcceptLanguage
	case "page":
		return edxPage
	case "session":
		return edxSession
	}
	return -1
}

// edxRun holds the state of one Adapt call.
type edxRun struct {
	in     *Input
	quirks []string
	// top-level string fields by edxTopFields index; set[i] when present
	// and not null.
	val [edxTopFieldCount]string
	set [edxTopFieldCount]bool
	// raw members of the whole event and of its context, found lazily.
	top, ctx         []rawMember
	topDone, ctxDone bool
	topOK, ctxOK     bool
	// uid is context.user_id as text, for the partition key.
	uid string
}

func (r *edxRun) quirk(q string) { r.quirks = append(r.quirks, q) }

func (r *edxRun) topMembers() []rawMember {
	if !r.topDone {
		r.topDone = true
		r.top, r.topOK = rawMembers(r.in.Raw, make([]rawMember, 0, 20))
	}
	if !r.topOK {
		return nil
	}
	return r.top
}

func (r *edxRun) ctxMembers() []rawMember {
	if !r.ctxDone {
		r.ctxDone = true
		if span := rawLookup(r.topMembers(), "context"); len(span) > 0 && span[0] == '{' {
			r.ctx, r.ctxOK = rawMembers(span, make([]rawMember, 0, 20))
		}
	}
	if !r.ctxOK {
		return nil
	}
	return r.ctx
}

// edxJSONOf returns v as compact JSON text, slicing the raw bytes found in
// members when they match v's type, else marshalling v.
func edxJSONOf(members func() []rawMember, key string, v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		if x {
			return "true"
		}
		return "false"
	case json.Number:
		return string(x)
	case string:
		if s, err := jsonText(x); err == nil {
			return s
		}
	}
	if span := rawLookup(members(), key); len(span) > 0 && edxSpanMatches(span[0], v) {
		if s, ok := compactJSON(span); ok {
			return s
		}
	}
	s, err := jsonText(v)
	if err != nil { // not reachable for decoded JSON values
		return "null"
	}
	return s
}

// edxSpanMatches reports whether a raw value starting with byte c can be the
// decoded value v.
func edxSpanMatches(c byte, v any) bool {
	switch v.(type) {
	case map[string]any:
		return c == '{'
	case []any:
		return c == '['
	case string:
		return c == '"'
	case nil:
		return c == 'n'
	case bool:
		return c == 't' || c == 'f'
	default:
		return c == '-' || (c >= '0' && c <= '9')
	}
}

// setExtra sets m[k] = v, making m when it is nil: most events have no
// extra members, and a map not made is one the collector need not sweep.
func setExtra(m map[string]any, k string, v any) map[string]any {
	if m == nil {
		m = make(map[string]any, 4)
	}
	m[k] = v
	return m
}

// Adapt implements Adapter. Null and absent optional fields are left out of
// the record maps: every nullable field of the edX schema defaults to null
// and every extra map to {}, and the encoder fills a missing field with its
// default.
func (EdX) Adapt(in *Input) (*Output, *event.Rejection) {
	v := in.Value
	if v == nil {
		return nil, event.Reject(event.ReasonNotObject, "", "an edX event must be a JSON object")
	}
	r := &edxRun{in: in, quirks: make([]string, 0, 4)}
	f := make(map[string]any, 20)

	// Shape: the event-tracking envelope has name/timestamp/data/context
	// and neither time nor event.
	_, hasTime := v["time"]
	_, hasEvent := v["event"]
	_, hasTimestamp := v["timestamp"]
	_, hasData := v["data"]
	envelope := !hasTime && !hasEvent && (hasTimestamp || hasData)
	timeKey, eventKey := "time", "event"
	if envelope {
		timeKey, eventKey = "timestamp", "data"
		r.quirk("envelope_shape")
	}
	if _, ok := v["event_type"]; !ok {
		if _, ok := v["name"]; !ok && !hasTime && !hasTimestamp {
			return nil, event.Reject(event.ReasonMissingField, "event_type",
				"an edX event needs at least one of event_type, name, time and timestamp")
		}
	}

	// Top-level string fields.
	for i, k := range edxTopFields {
		s, ok, rej := getString(v, k, k)
		if rej != nil {
			return nil, rej
		}
		r.val[i], r.set[i] = s, ok
	}

	// context, which may also fill top-level fields.
	ctxVal, rej := r.context(v, envelope, f)
	if rej != nil {
		return nil, rej
	}
	f["context"] = ctxVal

	// The envelope's event_type is context.event_type (moved up above) or
	// else its name, as event-tracking's LegacyFieldMappingProcessor does.
	if envelope && !r.set[edxEventType] && r.set[edxName] {
		r.val[edxEventType], r.set[edxEventType] = r.val[edxName], true
	}

	// username: Meta.Username (a trusted key vouching for the user) wins.
	var extra map[string]any // made when a member needs it (the schema's default is {})
	if mu := in.Meta.Username; mu != "" && r.val[edxUsername] != mu {
		if r.set[edxUsername] {
			r.quirk("username_overridden")
			extra = setExtra(extra, "username", edxJSONOf(r.topMembers, "username", r.val[edxUsername]))
		} else {
			r.quirk("username_from_request")
		}
		r.val[edxUsername], r.set[edxUsername] = mu, true
	}
	r.repairTopFields()

	for i, k := range edxTopFields {
		if r.set[i] {
			f[k] = avro.String(r.val[i])
		}
	}

	// event.
	if rej := r.event(v, eventKey, f); rej != nil {
		return nil, rej
	}

	// time.
	out := &Output{}
	switch tv := v[timeKey].(type) {
	case nil:
		if !envelope || !r.fromContextTime(f, out) {
			f["time_raw"] = ""
			r.quirk("time_absent")
		}
	case string:
		f["time_raw"] = tv
		t, form, ok := parseTime(tv)
		if ok {
			f["time"] = avro.TimeMicros(t)
			out.ClientTime = t
			r.timeQuirks(form)
		} else {
			r.quirk("time_unparseable")
		}
	default:
		return nil, wrongType(timeKey, "a string", tv)
	}

	// Unknown top-level members, each as JSON text.
	for k, x := range v {
		switch k {
		case "time", "event", "context":
			continue
		case "timestamp", "data":
			if envelope {
				continue
			}
		}
		if edxTopIndex(k) >= 0 {
			continue
		}
		extra = setExtra(extra, k, edxJSONOf(r.topMembers, k, x))
	}
	if extra != nil {
		f["extra"] = extra
	}

	// Envelope values.
	if id, ok := v["event_id"].(string); ok {
		out.EventID = id
	}
	r.envelopeValues(out)
	if out.Unknown && in.Meta.Strict {
		field := "event_type"
		if r.set[edxName] && r.val[edxName] != "" {
			field = "name"
		}
		return nil, event.Reject(event.ReasonUnknownType, field, "unknown edX event type %q", out.EventType)
	}
	out.Fields = f
	out.Quirks = r.quirks
	return out, nil
}

// envelopeValues sets out's event type, partition key and Unknown from
// the mapped top-level fields (both Adapt and AdaptFast use it).
func (r *edxRun) envelopeValues(out *Output) {
	out.EventType = r.val[edxEventType]
	if r.set[edxName] && r.val[edxName] != "" {
		out.EventType = r.val[edxName]
	}
	switch {
	case r.val[edxUsername] != "":
		out.PartitionKey = r.val[edxUsername]
	case r.val[edxSession] != "":
		out.PartitionKey = r.val[edxSession]
	case r.uid != "":
		out.PartitionKey = r.uid
	case r.val[edxIP] != "":
		out.PartitionKey = r.val[edxIP]
	default:
		out.PartitionKey = "anonymous"
	}
	out.Unknown = out.EventType != "" && !edxKnownType(r.val[edxEventType]) && !edxKnownType(r.val[edxName])
}

// fromContextTime takes the envelope's time from context.timestamp, which
// the envelope shape may carry instead of a top-level timestamp.
func (r *edxRun) fromContextTime(f map[string]any, out *Output) bool {
	ctx, _ := r.in.Value["context"].(map[string]any)
	ts, ok := ctx["timestamp"].(string)
	if !ok {
		return false
	}
	f["time_raw"] = ts
	if t, form, ok := parseTime(ts); ok {
		f["time"] = avro.TimeMicros(t)
		out.ClientTime = t
		r.timeQuirks(form)
	} else {
		r.quirk("time_unparseable")
	}
	return true
}

func (r *edxRun) timeQuirks(form timeForm) {
	if form == 0 {
		return
	}
	for _, q := range [...]struct {
		bit  timeForm
		name string
	}{
		{timeNoFraction, "time_no_fraction"},
		{timeNaive, "time_naive"},
		{timeZ, "time_z"},
		{timeSpaceSeparator, "time_space_separator"},
		{timeOffsetNoColon, "time_offset_no_colon"},
		{timeCommaFraction, "time_comma_fraction"},
		{timeLowercase, "time_lowercase"},
	} {
		if form&q.bit != 0 {
			r.quirk(q.name)
		}
	}
}

// context maps the context member to the Context record (or null) and
// moves top-level fields kept in context up to r.val.
func (r *edxRun) context(v map[string]any, envelope bool, f map[string]any) (any, *event.Rejection) {
	ctx, ok, rej := getObject(v, "context", "context")
	if rej != nil || !ok {
		return nil, rej
	}
	c := make(map[string]any, 18)
	for i, k := range edxContextStrings {
		s, ok, rej := getString(ctx, k, edxContextStringPaths[i])
		if rej != nil {
			return nil, rej
		}
		if ok {
			c[k] = avro.String(s)
		}
	}

	// user_id: int → long; "" → null; other strings kept as given.
	switch u := ctx["user_id"].(type) {
	case nil:
	case string:
		if u == "" {
			r.quirk("user_id_empty")
		} else {
			c["user_id"] = avro.String(u)
			r.uid = u
			r.quirk("user_id_string")
		}
	default:
		n, ok := asInt64(u)
		if !ok {
			return nil, wrongType("context.user_id", "an integer or a string", u)
		}
		c["user_id"] = avro.Long(n)
		r.uid = strconv.FormatInt(n, 10)
	}

	// course_user_tags: map<string>.
	tags, ok, rej := getObject(ctx, "course_user_tags", "context.course_user_tags")
	if rej != nil {
		return nil, rej
	}
	if ok {
		m := make(map[string]any, len(tags))
		for k, x := range tags {
			s, isStr := x.(string)
			if !isStr {
				return nil, wrongType("context.course_user_tags."+k, "a string", x)
			}
			m[k] = s
		}
		c["course_user_tags"] = avro.Map(m)
	}

	// module.
	mod, ok, rej := getObject(ctx, "module", "context.module")
	if rej != nil {
		return nil, rej
	}
	if ok {
		m := make(map[string]any, 5)
		var mextra map[string]any
		for k, x := range mod {
			switch k {
			case "usage_key", "display_name", "original_usage_key", "original_usage_version":
			default:
				s, err := jsonText(x)
				if err != nil {
					s = "null"
				}
				mextra = setExtra(mextra, k, s)
			}
		}
		for _, k := range [...]string{"usage_key", "display_name", "original_usage_key", "original_usage_version"} {
			s, ok, rej := getString(mod, k, "context.module."+k)
			if rej != nil {
				return nil, rej
			}
			if ok {
				m[k] = avro.String(s)
			}
		}
		if mextra != nil {
			m["extra"] = mextra
		}
		c["module"] = avro.Record("sluice.edx.Module", m)
	}

	// JSON-text members.
	for _, k := range edxContextJSON {
		x, present := ctx[k]
		if !present || x == nil {
			continue
		}
		c[k] = avro.String(edxJSONOf(r.ctxMembers, k, x))
	}

	// received_at.
	ra, ok, rej := getString(ctx, "received_at", "context.received_at")
	if rej != nil {
		return nil, rej
	}
	if ok {
		c["received_at_raw"] = avro.String(ra)
		if t, _, ok := parseTime(ra); ok {
			c["received_at"] = avro.TimeMicros(t)
		} else {
			r.quirk("received_at_unparseable")
		}
	}

	// Top-level fields kept in context.
	moved := false
	var keep map[string]bool
	for _, k := range edxContextTopFields {
		x, present := ctx[k]
		if !present {
			continue
		}
		moved = true
		var s string
		isNull := x == nil
		if !isNull {
			var isStr bool
			if s, isStr = x.(string); !isStr {
				return nil, wrongType("context."+k, "a string", x)
			}
		}
		i := edxTopIndex(k)
		if _, atTop := v[k]; !atTop {
			r.val[i], r.set[i] = s, !isNull
			continue
		}
		if !isNull && r.set[i] && r.val[i] == s || isNull && !r.set[i] {
			continue // same as the top-level value
		}
		if keep == nil {
			keep = map[string]bool{}
		}
		keep[k] = true
	}
	if moved && !envelope {
		r.quirk("context_fields_at_top")
	}

	// Everything else in context goes to extra as JSON text.
	var extra map[string]any
	for k, x := range ctx {
		if edxContextKnown(k) {
			continue
		}
		if edxIsContextTopField(k) && !keep[k] {
			continue
		}
		if envelope && k == "timestamp" && v["timestamp"] == nil {
			if _, isStr := x.(string); isStr {
				continue // used as the event's time (fromContextTime)
			}
		}
		extra = setExtra(extra, k, edxJSONOf(r.ctxMembers, k, x))
	}
	if extra != nil {
		c["extra"] = extra
	}
	return avro.Record("sluice.edx.Context", c), nil
}

func edxContextKnown(k string) bool {
	switch k {
	case "course_id", "org_id", "path", "enterprise_uuid", "component", "label",
		"open_in_browser_url", "command", "user_id", "course_user_tags", "module",
		"asides", "application", "client", "received_at":
		return true
	}
	return false
}

// Kinds of context member, as edxContextMember classifies them.
const (
	edxCtxExtra    = iota // kept in context.extra
	edxCtxString          // edxContextStrings[i]
	edxCtxJSON            // edxContextJSON[i]
	edxCtxUserID          // user_id
	edxCtxTags            // course_user_tags
	edxCtxModule          // module
	edxCtxReceived        // received_at
	edxCtxTop             // one of edxContextTopFields
)

// edxContextMember classifies a context member by its key: its kind and,
// for strings and JSON members, its index. A switch, for the same reason as
// edxTopIndex; TestEdXFieldIndexes holds it equal to the arrays.
func edxContextMember(key string) (kind, i int) {
	switch key {
	case "course_id":
		return edxCtxString, 0
	case "org_id":
		return edxCtxString, 1
	case "path":
		return edxCtxString, 2
	case "enterprise_uuid":
		return edxCtxString, 3
	case "component":
		return edxCtxString, 4
	case "label":
		return edxCtxString, 5
	case "open_in_browser_url":
		return edxCtxString, 6
	case "command":
		return edxCtxString, 7
	case "asides":
		return edxCtxJSON, 0
	case "application":
		return edxCtxJSON, 1
	case "client":
		return edxCtxJSON, 2
	case "user_id":
		return edxCtxUserID, 0
	case "course_user_tags":
		return edxCtxTags, 0
	case "module":
		return edxCtxModule, 0
	case "received_at":
		return edxCtxReceived, 0
	case "username", "session", "ip", "agent", "host", "referer", "accept_language",
		"event_source", "page", "event_type":
		return edxCtxTop, 0
	}
	return edxCtxExtra, 0
}

func edxIsContextTopField(k string) bool {
	for _, x := range edxContextTopFields {
		if x == k {
			return true
		}
	}
	return false
}

// event maps the polymorphic event member to event_kind, event_raw and
// event_json.
func (r *edxRun) event(v map[string]any, key string, f map[string]any) *event.Rejection {
	x, present := v[key]
	kind := ""
	var raw, js any
	switch e := x.(type) {
	case nil:
		if present {
			kind = "null"
			r.quirk("event_null")
		} else {
			kind = "absent"
			r.quirk("event_absent")
		}
	case map[string]any, []any:
		kind = "object"
		if _, isList := e.([]any); isList {
			kind = "list"
			r.quirk("event_list")
		}
		span := rawLookup(r.topMembers(), key)
		if len(span) > 0 && edxSpanMatches(span[0], e) && utf8.Valid(span) {
			raw = avro.String(string(span))
			if !hasInsignificantSpace(span) {
				js = raw
			} else if s, ok := compactJSON(span); ok {
				js = avro.String(s)
			}
		}
		if js == nil {
			s, err := jsonText(e)
			if err != nil {
				s = "null"
			}
			js = avro.String(s)
			if raw == nil {
				raw = js
			}
		}
	case string:
		raw = avro.String(e)
		var jsText string
		kind, jsText = r.classifyString(e, true)
		if jsText != "" {
			js = avro.String(jsText)
		}
	default:
		return wrongType(key, "an object, an array or a string", x)
	}
	f["event_kind"] = kind
	f["event_raw"] = raw
	f["event_json"] = js
	return nil
}

// classifyString returns the kind of a string event and, for JSON text of
// an object or list, that text compacted. outer is false for the string a
// JSON-encoded string decoded to.
func (r *edxRun) classifyString(s string, outer bool) (kind, js string) {
	if s == "" {
		r.quirk("event_empty")
		return "empty", ""
	}
	c := s[skipSpace([]byte(s), 0):]
	if c == "" {
		r.quirk("event_plain_string")
		return "plain_string", ""
	}
	switch c[0] {
	case '{', '[':
		if t, ok := validJSONText(s); ok {
			if outer {
				r.quirk("event_json_string")
			} else {
				r.quirk("event_double_encoded")
			}
			return "json_string", t
		}
		if utf8.RuneCountInString(s) == 512 {
			r.quirk("event_truncated_512")
		} else {
			r.quirk("event_invalid_json")
		}
		return "truncated_json", ""
	case '"':
		if outer {
			if inner, ok := edxDecodeJSONString(s); ok {
				r.quirk("event_json_string")
				return r.classifyString(inner, false)
			}
		}
	}
	if edxLooksURLEncoded(s) {
		r.quirk("event_urlencoded")
		return "urlencoded", ""
	}
	r.quirk("event_plain_string")
	return "plain_string", ""
}

// edxDecodeJSONString decodes s when it is exactly one JSON string literal
// (surrounding whitespace allowed).
func edxDecodeJSONString(s string) (string, bool) {
	t := strings.TrimSpace(s)
	if len(t) < 2 || t[0] != '"' || t[len(t)-1] != '"' {
		return "", false
	}
	var out string
	if err := gojson.Unmarshal([]byte(t), &out); err != nil {
		return "", false
	}
	return out, true
}

// edxLooksURLEncoded reports whether s is an application/x-www-form-urlencoded
// body: '&'-separated key=value pairs of URL-safe characters with valid
// percent escapes.
func edxLooksURLEncoded(s string) bool {
	hasEq := false
	keyLen := 0
	inValue := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '&':
			if keyLen == 0 && !inValue {
				if i > 0 && s[i-1] != '&' {
					return false
				}
			}
			keyLen, inValue = 0, false
			continue
		case c == '=':
			if !inValue {
				if keyLen == 0 {
					return false
				}
				inValue, hasEq = true, true
				continue
			}
		case c == '%':
			if i+2 >= len(s) || !edxIsHex(s[i+1]) || !edxIsHex(s[i+2]) {
				return false
			}
			i += 2
		case c <= ' ' || c >= 0x7f:
			return false
		case strings.IndexByte("\"<>\\^`{|}", c) >= 0:
			return false
		}
		if !inValue {
			keyLen++
		}
	}
	if !inValue && keyLen > 0 {
		return false
	}
	return hasEq
}

func edxIsHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// repairTopFields records an empty username and repairs a mojibake agent
// in the top-level fields found so far; Adapt and AdaptFast call it at the
// same point, after the context's fields are merged in.
func (r *edxRun) repairTopFields() {
	if r.set[edxUsername] && r.val[edxUsername] == "" {
		r.quirk("username_empty")
	}
	if r.set[edxAgent] {
		if fixed, ok := edxRepairMojibake(r.val[edxAgent]); ok {
			r.val[edxAgent] = fixed
			r.quirk("agent_mojibake")
		}
	}
}

// edxRepairMojibake undoes UTF-8 text that was decoded as latin-1 (PEP
// 3333 header decoding): when every rune of s is below U+0100, some are
// above U+007F, and those bytes form valid UTF-8 with at least one
// multi-byte sequence, it returns the UTF-8 reading.
func edxRepairMojibake(s string) (string, bool) {
	if isASCII(s) {
		return "", false
	}
	b := make([]byte, 0, len(s))
	for _, c := range s {
		if c >= 0x100 {
			return "", false
		}
		b = append(b, byte(c))
	}
	if !utf8.Valid(b) {
		return "", false
	}
	return string(b), true
}

// edxKnownType reports whether t is an edX event type Sluice knows: a
// documented type, an undocumented one seen in real data, or the URL path
// of an implicit server event.
func edxKnownType(t string) bool {
	if t == "" {
		return false
	}
	if t[0] == '/' {
		return true
	}
	_, ok := edxKnownTypes[t]
	return ok
}

// edxKnownTypes lists the 220 event types documented in edx-documentation
// event_list.rst (@14b32b4ec7f3, CC BY-SA 4.0) plus the undocumented ones
// seen in public fixtures and real logs (shared/reference
// edx_event_types_documented.tsv).
var edxKnownTypes = map[string]struct{}{
	"add-forum-admin":                                              {},
	"add-forum-community-TA":                                       {},
	"add-forum-mod":                                                {},
	"add-instructor":                                               {},
	"add-or-remove-user-group":                                     {},
	"book":                                                         {},
	"change-email-settings":                                        {},
	"complete_video":                                               {},
	"delete-student-module-state":                                  {},
	"dump-answer-dist-csv":                                         {},
	"dump-graded-assignments-config":                               {},
	"dump-grades":                                                  {},
	"dump-grades-csv":                                              {},
	"dump-grades-csv-raw":                                          {},
	"dump-grades-raw":                                              {},
	"edx.bookmark.accessed":                                        {},
	"edx.bookmark.added":                                           {},
	"edx.bookmark.listed":                                          {},
	"edx.bookmark.removed":                                         {},
	"edx.certificate.created":                                      {},
	"edx.certificate.evidence_visited":                             {},
	"edx.certificate.generation.disabled":                          {},
	"edx.certificate.generation.enabled":                           {},
	"edx.certificate.revoked":                                      {},
	"edx.certificate.shared":                                       {},
	"edx.cohort.created":                                           {},
	"edx.cohort.creation_requested":                                {},
	"edx.cohort.user_add_requested":                                {},
	"edx.cohort.user_added":                                        {},
	"edx.cohort.user_removed":                                      {},
	"edx.completion.block_completion.changed":                      {},
	"edx.course.enrollment.activated":                              {},
	"edx.course.enrollment.deactivated":                            {},
	"edx.course.enrollment.mode_changed":                           {},
	"edx.course.enrollment.upgrade.clicked":                        {},
	"edx.course.enrollment.upgrade.succeeded":                      {},
	"edx.course.grade.now_failed":                                  {},
	"edx.course.grade.now_passed":                                  {},
	"edx.course.grade.passed.first_time":                           {},
	"edx.course.home.course_update.toggled":                        {},
	"edx.course.index.published":                                   {},
	"edx.course.index.reindexed":                                   {},
	"edx.course.student_notes.added":                               {},
	"edx.course.student_notes.deleted":                             {},
	"edx.course.student_notes.edited":                              {},
	"edx.course.student_notes.notes_page_viewed":                   {},
	"edx.course.student_notes.searched":                            {},
	"edx.course.student_notes.used_unit_link":                      {},
	"edx.course.student_notes.viewed":                              {},
	"edx.course.tool.accessed":                                     {},
	"edx.course_discovery.search.initiated":                        {},
	"edx.course_discovery.search.results_displayed":                {},
	"edx.done.toggled":                                             {},
	"edx.drag_and_drop_v2.feedback.closed":                         {},
	"edx.drag_and_drop_v2.feedback.opened":                         {},
	"edx.drag_and_drop_v2.item.dropped":                            {},
	"edx.drag_and_drop_v2.item.picked_up":                          {},
	"edx.drag_and_drop_v2.loaded":                                  {},
	"edx.forum.comment.created":                                    {},
	"edx.forum.comment.deleted":                                    {},
	"edx.forum.comment.edited":                                     {},
	"edx.forum.comment.reported":                                   {},
	"edx.forum.comment.unreported":                                 {},
	"edx.forum.response.created":                                   {},
	"edx.forum.response.deleted":                                   {},
	"edx.forum.response.edited":                                    {},
	"edx.forum.response.reported":                                  {},
	"edx.forum.response.unreported":                                {},
	"edx.forum.response.voted":                                     {},
	"edx.forum.searched":                                           {},
	"edx.forum.thread.created":                                     {},
	"edx.forum.thread.deleted":                                     {},
	"edx.forum.thread.edited":                                      {},
	"edx.forum.thread.reported":                                    {},
	"edx.forum.thread.unreported":                                  {},
	"edx.forum.thread.viewed":                                      {},
	"edx.forum.thread.voted":                                       {},
	"edx.googlecomponent.calendar.displayed":                       {},
	"edx.googlecomponent.document.displayed":                       {},
	"edx.grades.course.grade_calculated":                           {},
	"edx.grades.problem.rescored":                                  {},
	"edx.grades.problem.score_overridden":                          {},
	"edx.grades.problem.state_deleted":                             {},
	"edx.grades.problem.submitted":                                 {},
	"edx.grades.subsection.grade_calculated":                       {},
	"edx.instructor.report.downloaded":                             {},
	"edx.instructor.report.requested":                              {},
	"edx.librarycontentblock.content.assigned":                     {},
	"edx.librarycontentblock.content.removed":                      {},
	"edx.problem.completed":                                        {},
	"edx.problem.hint.demandhint_displayed":                        {},
	"edx.problem.hint.feedback_displayed":                          {},
	"edx.special_exam.practice.allowance.created":                  {},
	"edx.special_exam.practice.allowance.deleted":                  {},
	"edx.special_exam.practice.attempt.created":                    {},
	"edx.special_exam.practice.attempt.deleted":                    {},
	"edx.special_exam.practice.attempt.download_software_clicked":  {},
	"edx.special_exam.practice.attempt.error":                      {},
	"edx.special_exam.practice.attempt.ready_to_start":             {},
	"edx.special_exam.practice.attempt.ready_to_submit":            {},
	"edx.special_exam.practice.attempt.started":                    {},
	"edx.special_exam.practice.attempt.submitted":                  {},
	"edx.special_exam.practice.created":                            {},
	"edx.special_exam.practice.updated":                            {},
	"edx.special_exam.proctored.allowance.created":                 {},
	"edx.special_exam.proctored.allowance.deleted":                 {},
	"edx.special_exam.proctored.attempt.created":                   {},
	"edx.special_exam.proctored.attempt.declined":                  {},
	"edx.special_exam.proctored.attempt.deleted":                   {},
	"edx.special_exam.proctored.attempt.download_software_clicked": {},
	"edx.special_exam.proctored.attempt.error":                     {},
	"edx.special_exam.proctored.attempt.ready_to_start":            {},
	"edx.special_exam.proctored.attempt.ready_to_submit":           {},
	"edx.special_exam.proctored.attempt.rejected":                  {},
	"edx.special_exam.proctored.attempt.review_received":           {},
	"edx.special_exam.proctored.attempt.started":                   {},
	"edx.special_exam.proctored.attempt.submitted":                 {},
	"edx.special_exam.proctored.attempt.verified":                  {},
	"edx.special_exam.proctored.created":                           {},
	"edx.special_exam.proctored.option-presented":                  {},
	"edx.special_exam.proctored.updated":                           {},
	"edx.special_exam.timed.allowance.created":                     {},
	"edx.special_exam.timed.allowance.deleted":                     {},
	"edx.special_exam.timed.attempt.created":                       {},
	"edx.special_exam.timed.attempt.deleted":                       {},
	"edx.special_exam.timed.attempt.ready_to_submit":               {},
	"edx.special_exam.timed.attempt.started":                       {},
	"edx.special_exam.timed.attempt.submitted":                     {},
	"edx.special_exam.timed.created":                               {},
	"edx.special_exam.timed.updated":                               {},
	"edx.team.activity_updated":                                    {},
	"edx.team.changed":                                             {},
	"edx.team.created":                                             {},
	"edx.team.deleted":                                             {},
	"edx.team.learner_added":                                       {},
	"edx.team.learner_removed":                                     {},
	"edx.team.page_viewed":                                         {},
	"edx.team.searched":                                            {},
	"edx.ui.lms.link_clicked":                                      {},
	"edx.ui.lms.outline.selected":                                  {},
	"edx.ui.lms.sequence.next_selected":                            {},
	"edx.ui.lms.sequence.previous_selected":                        {},
	"edx.ui.lms.sequence.tab_selected":                             {},
	"edx.user.settings.change_initiated":                           {},
	"edx.user.settings.changed":                                    {},
	"edx.user.settings.viewed":                                     {},
	"edx.video.bumper.dismissed":                                   {},
	"edx.video.bumper.loaded":                                      {},
	"edx.video.bumper.played":                                      {},
	"edx.video.bumper.skipped":                                     {},
	"edx.video.bumper.stopped":                                     {},
	"edx.video.bumper.transcript.hidden":                           {},
	"edx.video.bumper.transcript.menu.hidden":                      {},
	"edx.video.bumper.transcript.menu.shown":                       {},
	"edx.video.bumper.transcript.shown":                            {},
	"edx.video.closed_captions.hidden":                             {},
	"edx.video.closed_captions.shown":                              {},
	"edx.video.language_menu.hidden":                               {},
	"edx.video.language_menu.shown":                                {},
	"edx.video.loaded":                                             {},
	"edx.video.paused":                                             {},
	"edx.video.played":                                             {},
	"edx.video.position.changed":                                   {},
	"edx.video.stopped":                                            {},
	"edx.video.transcript.hidden":                                  {},
	"edx.video.transcript.shown":                                   {},
	"get-student-progress-page":                                    {},
	"hide_transcript":                                              {},
	"list-beta-testers":                                            {},
	"list-forum-admins":                                            {},
	"list-forum-community-TAs":                                     {},
	"list-forum-mods":                                              {},
	"list-instructors":                                             {},
	"list-staff":                                                   {},
	"list-students":                                                {},
	"load_video":                                                   {},
	"microsoft.office.mix.loaded":                                  {},
	"microsoft.office.mix.paused":                                  {},
	"microsoft.office.mix.played":                                  {},
	"microsoft.office.mix.slide.loaded":                            {},
	"microsoft.office.mix.stopped":                                 {},
	"openassessment.student_training_assess_example":               {},
	"openassessment.upload_file":                                   {},
	"openassessmentblock.create_submission":                        {},
	"openassessmentblock.get_peer_submission":                      {},
	"openassessmentblock.get_submission_for_staff_grading":         {},
	"openassessmentblock.peer_assess":                              {},
	"openassessmentblock.save_submission":                          {},
	"openassessmentblock.self_assess":                              {},
	"openassessmentblock.staff_assess":                             {},
	"openassessmentblock.submit_feedback_on_assessments":           {},
	"oppia.exploration.completed":                                  {},
	"oppia.exploration.loaded":                                     {},
	"oppia.exploration.state.changed":                              {},
	"page_close":                                                   {},
	"pause_video":                                                  {},
	"play_video":                                                   {},
	"problem_check":                                                {},
	"problem_check_fail":                                           {},
	"problem_graded":                                               {},
	"problem_rescore":                                              {},
	"problem_rescore_fail":                                         {},
	"problem_reset":                                                {},
	"problem_save":                                                 {},
	"problem_show":                                                 {},
	"remove-forum-admin":                                           {},
	"remove-forum-community-TA":                                    {},
	"remove-forum-mod":                                             {},
	"remove-instructor":                                            {},
	"rescore-all-submissions":                                      {},
	"rescore-student-submission":                                   {},
	"reset-all-attempts":                                           {},
	"reset-student-attempts":                                       {},
	"reset_problem":                                                {},
	"reset_problem_fail":                                           {},
	"save_problem_fail":                                            {},
	"save_problem_success":                                         {},
	"seek_video":                                                   {},
	"seq_goto":                                                     {},
	"seq_next":                                                     {},
	"seq_prev":                                                     {},
	"show_transcript":                                              {},
	"showanswer":                                                   {},
	"speed_change_video":                                           {},
	"stop_video":                                                   {},
	"textbook.pdf.chapter.navigated":                               {},
	"textbook.pdf.display.scaled":                                  {},
	"textbook.pdf.outline.toggled":                                 {},
	"textbook.pdf.page.navigated":                                  {},
	"textbook.pdf.page.scrolled":                                   {},
	"textbook.pdf.search.executed":                                 {},
	"textbook.pdf.search.highlight.toggled":                        {},
	"textbook.pdf.search.navigatednext":                            {},
	"textbook.pdf.searchcasesensitivity.toggled":                   {},
	"textbook.pdf.thumbnail.navigated":                             {},
	"textbook.pdf.thumbnails.toggled":                              {},
	"textbook.pdf.zoom.buttons.changed":                            {},
	"textbook.pdf.zoom.menu.changed":                               {},
	"ubc.peer_instruction.accessed":                                {},
	"ubc.peer_instruction.original_submitted":                      {},
	"ubc.peer_instruction.revised_submitted":                       {},
	"unknown":                                                      {},
	"video_hide_cc_menu":                                           {},
	"video_show_cc_menu":                                           {},
	"xblock.poll.submitted":                                        {},
	"xblock.poll.view_results":                                     {},
	"xblock.split_test.child_render":                               {},
	"xblock.survey.submitted":                                      {},
	"xblock.survey.view_results":                                   {},
	"xmodule.partitions.assigned_user_to_partition":                {},
}
