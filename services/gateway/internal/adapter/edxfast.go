package adapter

import (
	"bytes"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/bytedance/sonic/unquote"

	"github.com/sluicehq/sluice/pkg/avro"
)

// The edX fast path.
//
// Most tracking-log lines have one shape: a flat object of string members,
// a context object of strings and a user id (older lines repeat username,
// ip, agent, ... in it), an event that is a JSON string or an object. For
// those, AdaptFast reads the event's bytes once and writes the Avro fields
// directly, without decoding the event into maps (sonic's generic decode),
// building the record maps and encoding them. Any line it does not fully
// understand — the envelope shape, values of an unexpected type, duplicate
// or escaped keys, control characters or whitespace other than spaces,
// module members that are objects, a request that
// names its user, a strict source meeting an unknown type — it leaves to
// Adapt, which remains the definition of what an edX line maps to and
// gives every rejection. The two are checked against each other on every
// edX test line (ingest's TestEdXFastPathMatchesTheGeneralPath) and by
// ingest's FuzzEdXFastMatchesGeneral: whenever AdaptFast takes a line, the
// record it writes decodes to the record Adapt's output encodes to, with
// the same key and headers. The gateway also runs that comparison on
// sample lines when it starts and uses Adapt alone if they disagree (a
// schema the fast path does not follow).

// FastOutput is the result of AdaptFast: Output without Fields, plus the
// Avro binary of the family's fields that follow the envelope.
type FastOutput struct {
	Output
	// Body is the Avro binary of every record field after "envelope":
	// the family's fields and the null "enrichment".
	Body []byte
	run  *edxFastRun // pooled; Release returns it
}

// Release gives the output's scratch memory back once the caller is done
// with it and with the Input (Output.Quirks and Input.TopString use it).
func (fo *FastOutput) Release() {
	if fo.run != nil {
		fo.run.edxRun = edxRun{}
		fastRuns.Put(fo.run)
		fo.run = nil
	}
}

// FastAdapter is an Adapter that can also write the Avro record body of
// common events directly. The record must start with the envelope.
type FastAdapter interface {
	Adapter
	// AdaptFast maps in.Raw (in.Value is nil; in.Raw is valid UTF-8: the
	// gateway reads other events as Latin-1 the general way), appending
	// the body to dst.
	// ok is false when the event needs the general path (Adapt), which
	// also produces any rejection; nothing is then promised about dst.
	AdaptFast(in *Input, dst []byte) (out FastOutput, ok bool)
}

// fastMember is one member of an object in the raw event.
type fastMember struct {
	key   string
	value []byte
}

// fastString decodes the JSON string literal span (quotes included),
// which the fast scan has validated; ok is false only for what the decoder
// refuses. A string without escapes is not copied: it shares the event's
// bytes (rawString). Everything AdaptFast returns is encoded or copied by
// the gateway before the request's buffer is reused, which
// TestBuildKeepsNothingOfTheRequestBuffer checks; do not keep such a
// string beyond the call. One with escapes is unescaped by the gateway's
// decoder's own unquoting routine (sonic/unquote, which replaces a lone
// surrogate escape with U+FFFD as the decoder does), without the decoder's
// per-call setup; the fast scan has already refused control characters and
// the pipeline invalid UTF-8, which the decoder's ValidateString checks.
func fastString(span []byte) (string, bool) {
	if len(span) < 2 || span[0] != '"' || span[len(span)-1] != '"' {
		return "", false
	}
	body := span[1 : len(span)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return rawString(body), true
	}
	s, err := unquote.String(rawString(body))
	if err != 0 {
		return "", false
	}
	return s, true
}

// fastScalar classifies a member value: 's' string, 'n' null, 'o' object,
// 'a' array, 'd' number, 'b' boolean.
func fastScalar(v []byte) byte {
	switch v[0] {
	case '"':
		return 's'
	case 'n':
		return 'n'
	case '{':
		return 'o'
	case '[':
		return 'a'
	case 't', 'f':
		return 'b'
	}
	return 'd'
}

// fastJSONOf is edxJSONOf for a raw member value: the JSON text an extra
// member is kept as.
func fastJSONOf(v []byte) (string, bool) {
	switch fastScalar(v) {
	case 's':
		s, ok := fastString(v)
		if !ok {
			return "", false
		}
		t, err := jsonText(s)
		return t, err == nil
	case 'o', 'a':
		return compactText(rawString(v)), true // the fast scan validated v
	}
	return rawString(v), true // number, boolean, null: their literal
}

// fastOptString reads a member that must be a string or null: set is false
// for null; ok is false for another type.
func fastOptString(v []byte) (s string, set, ok bool) {
	switch fastScalar(v) {
	case 'n':
		return "", false, true
	case 's':
		s, ok = fastString(v)
		return s, ok, ok
	}
	return "", false, false
}

// edxFastRun is an edxRun with room for what AdaptFast finds.
type edxFastRun struct {
	edxRun
	top    [24]fastMember
	ctxTop [24]fastMember // the context's members
	quirks [6]string
	ctx    []byte // the Context record's bytes
}

var fastRuns = sync.Pool{New: func() any { return &edxFastRun{ctx: make([]byte, 0, 1024)} }}

// AdaptFast implements FastAdapter; see the comment at the top of the file.
func (EdX) AdaptFast(in *Input, dst []byte) (fo FastOutput, ok bool) {
	if in.Meta.Username != "" {
		return fo, false
	}
	// A pooled run holds the top-level members (which Input.TopString
	// reads afterwards, for drop rules), the quirks and the context's
	// bytes; FastOutput.Release returns it.
	fr := fastRuns.Get().(*edxFastRun)
	fo.run = fr
	defer func() {
		if !ok { // the general path takes the event: nothing of the run is used
			in.fastTop = nil
			fo.Release()
		}
	}()
	maxDepth := fastMaxDepth
	if in.MaxDepth > 0 {
		maxDepth = min(in.MaxDepth, fastMaxDepth)
	}
	// One pass validates the whole event, bounds its nesting and lists its
	// members and its context's.
	ctxMembers := fastNested{key: "context", dst: fr.ctxTop[:0]}
	top, ok := fastObjectWith(in.Raw, fr.top[:0], maxDepth, &ctxMembers)
	if !ok {
		return fo, false
	}
	in.fastTop = top
	fr.edxRun = edxRun{in: in, quirks: fr.quirks[:0]}
	r := &fr.edxRun
	var (
		timeV, eventV, ctxV   []byte // nil when absent
		hasTimestamp, hasData bool
		extras                [8]fastMember
		nExtra                int
		eventID               string
	)
	for _, m := range top {
		switch m.key {
		case "time":
			timeV = m.value
			continue
		case "event":
			eventV = m.value
			continue
		case "context":
			ctxV = m.value
			continue
		case "timestamp":
			hasTimestamp = true
		case "data":
			hasData = true
		}
		if i := edxTopIndex(m.key); i >= 0 {
			s, set, ok := fastOptString(m.value)
			if !ok {
				return fo, false
			}
			r.val[i], r.set[i] = s, set
			continue
		}
		if m.key == "event_id" && fastScalar(m.value) == 's' {
			if eventID, ok = fastString(m.value); !ok {
				return fo, false
			}
		}
		if nExtra == len(extras) {
			return fo, false
		}
		extras[nExtra] = m
		nExtra++
	}
	hasTime, hasEvent := timeV != nil, eventV != nil
	if !hasTime && !hasEvent && (hasTimestamp || hasData) {
		return fo, false // the envelope shape
	}
	if !hasKey(top, "event_type") && !hasKey(top, "name") && !hasTime && !hasTimestamp {
		return fo, false // rejected by Adapt
	}

	// context (its quirks come first, as in Adapt).
	var ctxBody []byte
	ctxNull := true
	if ctxV != nil && fastScalar(ctxV) != 'n' {
		if fastScalar(ctxV) != 'o' || !ctxMembers.found {
			return fo, false
		}
		var ok bool
		ctxBody, ok = r.fastContext(ctxMembers.dst, fr.ctx[:0], top)
		if !ok {
			return fo, false
		}
		ctxNull = false
	}

	r.repairTopFields()

	// event.
	var kind, evRaw, evJSON string
	var rawSet, jsonSet bool
	switch {
	case !hasEvent:
		kind = "absent"
		r.quirk("event_absent")
	case fastScalar(eventV) == 'n':
		kind = "null"
		r.quirk("event_null")
	case fastScalar(eventV) == 'o' || fastScalar(eventV) == 'a':
		kind = "object"
		if eventV[0] == '[' {
			kind = "list"
			r.quirk("event_list")
		}
		// The fast scan validated eventV (only spaces between tokens).
		evRaw, rawSet = rawString(eventV), true
		evJSON, jsonSet = compactText(evRaw), true
	case fastScalar(eventV) == 's':
		s, ok := fastString(eventV)
		if !ok {
			return fo, false
		}
		evRaw, rawSet = s, true
		kind, evJSON = r.classifyString(s, true)
		jsonSet = evJSON != ""
	default:
		return fo, false
	}

	// time.
	out := &fo.Output
	var timeRaw string
	var t time.Time
	switch {
	case !hasTime || fastScalar(timeV) == 'n':
		r.quirk("time_absent")
	case fastScalar(timeV) == 's':
		var ok bool
		if timeRaw, ok = fastString(timeV); !ok {
			return fo, false
		}
		pt, form, ok := parseTime(timeRaw)
		if ok {
			t = pt
			out.ClientTime = pt
			r.timeQuirks(form)
		} else {
			r.quirk("time_unparseable")
		}
	default:
		return fo, false
	}

	// Envelope values, as Adapt computes them.
	out.EventID = eventID
	r.envelopeValues(out)
	if out.Unknown && in.Meta.Strict {
		return fo, false // rejected by Adapt
	}
	out.Quirks = r.quirks

	// The body, in the schema's field order (schemas/edx): username,
	// event_type, name, event_source, event_kind, event_raw, event_json,
	// time_raw, time, context, ip, agent, host, referer, accept_language,
	// page, session, extra, enrichment. The context was written to the
	// run's scratch buffer; it is copied into place after the fields
	// before it.
	if cap(ctxBody) <= 64<<10 {
		fr.ctx = ctxBody[:0] // keep a grown buffer for the next event
	}
	b := dst
	for _, i := range [...]int{edxUsername, edxEventType, edxName, edxEventSource} {
		b = fastOpt(b, r.val[i], r.set[i])
	}
	b = avro.AppendString(b, kind)
	b = fastOpt(b, evRaw, rawSet)
	b = fastOpt(b, evJSON, jsonSet)
	b = avro.AppendString(b, timeRaw)
	b = avro.AppendOptTimeMicros(b, t)
	if ctxNull {
		b = avro.AppendNull(b)
	} else {
		b = append(b, 2) // branch 1: the Context record
		b = append(b, ctxBody...)
	}
	for _, i := range [...]int{edxIP, edxAgent, edxHost, edxReferer, edxAcceptLanguage, edxPage, edxSession} {
		b = fastOpt(b, r.val[i], r.set[i])
	}
	if b, ok = appendExtras(b, extras[:nExtra]); !ok {
		return fo, false
	}
	b = avro.AppendNull(b) // enrichment
	fo.Body = b
	return fo, true
}

func hasKey(ms []fastMember, k string) bool {
	for i := range ms {
		if ms[i].key == k {
			return true
		}
	}
	return false
}

// fastOpt writes a ["null", "string"] union: the string branch when set,
// even for "".
func fastOpt(b []byte, s string, set bool) []byte {
	if !set {
		return avro.AppendNull(b)
	}
	return avro.AppendUnionString(b, s)
}

// appendExtras writes a map<string> of extra members as JSON text.
func appendExtras(b []byte, ms []fastMember) ([]byte, bool) {
	if len(ms) > 0 {
		b = avro.AppendLong(b, int64(len(ms)))
		for _, m := range ms {
			js, ok := fastJSONOf(m.value)
			if !ok {
				return nil, false
			}
			b = avro.AppendString(avro.AppendString(b, m.key), js)
		}
	}
	return append(b, 0), true
}

// fastContext writes the Context record body of the context object whose
// members are ms, recording its quirks in r as Adapt's context does. top is
// the event's top-level members, whose strings are in r already: context
// members that belong at the top (older lines keep username, ip, agent, ...
// in context) fill the top-level fields the line lacks, as in Adapt.
func (r *edxRun) fastContext(ms []fastMember, b []byte, top []fastMember) ([]byte, bool) {
	var ok bool
	var (
		str                  [len(edxContextStrings)]string
		strSet               [len(edxContextStrings)]bool
		userID, tags, module []byte
		jsonV                [len(edxContextJSON)][]byte
		receivedAt           []byte
		extras               [16]fastMember
		nExtra               int
		topInCtx             [len(edxContextTopFields)]fastMember
		nTopInCtx            int
	)
	for _, m := range ms {
		switch kind, i := edxContextMember(m.key); kind {
		case edxCtxString:
			s, set, ok := fastOptString(m.value)
			if !ok {
				return nil, false
			}
			str[i], strSet[i] = s, set
		case edxCtxJSON:
			jsonV[i] = m.value
		case edxCtxUserID:
			userID = m.value
		case edxCtxTags:
			tags = m.value
		case edxCtxModule:
			module = m.value
		case edxCtxReceived:
			receivedAt = m.value
		case edxCtxTop:
			topInCtx[nTopInCtx] = m
			nTopInCtx++
		default:
			if nExtra == len(extras) {
				return nil, false
			}
			extras[nExtra] = m
			nExtra++
		}
	}

	// user_id: int → long; "" → null; other strings kept as given.
	var uidKind byte // 0 null, 1 long, 2 string
	var uidLong int64
	var uidStr string
	if userID != nil {
		switch fastScalar(userID) {
		case 'n':
		case 's':
			s, ok := fastString(userID)
			if !ok {
				return nil, false
			}
			if s == "" {
				r.quirk("user_id_empty")
			} else {
				uidKind, uidStr = 2, s
				r.uid = s
				r.quirk("user_id_string")
			}
		case 'd':
			n, err := strconv.ParseInt(string(userID), 10, 64)
			if err != nil {
				return nil, false // a fraction, an exponent, out of range: Adapt decides
			}
			uidKind, uidLong = 1, n
			r.uid = strconv.FormatInt(n, 10)
		default:
			return nil, false
		}
	}

	// received_at.
	var raSet bool
	var raRaw string
	var raTime time.Time
	if receivedAt != nil {
		s, set, ok := fastOptString(receivedAt)
		if !ok {
			return nil, false
		}
		if set {
			raSet, raRaw = true, s
			if t, _, ok := parseTime(s); ok {
				raTime = t
			} else {
				r.quirk("received_at_unparseable")
			}
		}
	}

	// Top-level fields kept in context: moved up when the top lacks them,
	// dropped when equal, kept in extra when different.
	for _, m := range topInCtx[:nTopInCtx] {
		s, isSet, ok := fastOptString(m.value)
		if !ok {
			return nil, false
		}
		i := edxTopIndex(m.key)
		if !hasKey(top, m.key) {
			r.val[i], r.set[i] = s, isSet
			continue
		}
		if isSet && r.set[i] && r.val[i] == s || !isSet && !r.set[i] {
			continue
		}
		if nExtra == len(extras) {
			return nil, false
		}
		extras[nExtra] = m
		nExtra++
	}
	if nTopInCtx > 0 {
		r.quirk("context_fields_at_top")
	}

	// Context fields in the schema's order: course_id, org_id, user_id,
	// path, course_user_tags, module, asides, application, client,
	// received_at_raw, received_at, enterprise_uuid, component, label,
	// open_in_browser_url, command, extra.
	b = fastOpt(b, str[0], strSet[0]) // course_id
	b = fastOpt(b, str[1], strSet[1]) // org_id
	switch uidKind {
	case 0:
		b = avro.AppendNull(b)
	case 1:
		b = avro.AppendLong(append(b, 2), uidLong)
	case 2:
		b = avro.AppendString(append(b, 4), uidStr)
	}
	b = fastOpt(b, str[2], strSet[2]) // path
	if b, ok = fastTags(b, tags); !ok {
		return nil, false
	}
	if b, ok = fastModule(b, module); !ok {
		return nil, false
	}
	for _, v := range jsonV {
		if v == nil || fastScalar(v) == 'n' {
			b = avro.AppendNull(b)
			continue
		}
		js, ok := fastJSONOf(v)
		if !ok {
			return nil, false
		}
		b = avro.AppendUnionString(b, js)
	}
	b = fastOpt(b, raRaw, raSet)
	b = avro.AppendOptTimeMicros(b, raTime)
	for i := 3; i < len(edxContextStrings); i++ { // enterprise_uuid ... command
		b = fastOpt(b, str[i], strSet[i])
	}
	return appendExtras(b, extras[:nExtra])
}

// fastOptObject reads a member that must be an object or null (or
// absent: v nil): null is true for null or absent; ok is false for another
// type or an object the fast path leaves to Adapt.
func fastOptObject(v []byte, dst []fastMember) (ms []fastMember, null, ok bool) {
	if v == nil || fastScalar(v) == 'n' {
		return nil, true, true
	}
	if fastScalar(v) != 'o' {
		return nil, false, false
	}
	ms, ok = fastObject(v, dst, fastMaxDepth)
	return ms, false, ok
}

// fastTags writes course_user_tags: null, or a map of strings.
func fastTags(b []byte, v []byte) ([]byte, bool) {
	var buf [16]fastMember
	ms, null, ok := fastOptObject(v, buf[:0])
	if null || !ok {
		return avro.AppendNull(b), ok
	}
	b = append(b, 2) // branch 1: the map
	if len(ms) > 0 {
		b = avro.AppendLong(b, int64(len(ms)))
		for _, m := range ms {
			if fastScalar(m.value) != 's' {
				return nil, false
			}
			s, ok := fastString(m.value)
			if !ok {
				return nil, false
			}
			b = avro.AppendString(avro.AppendString(b, m.key), s)
		}
	}
	return append(b, 0), true
}

// fastModule writes module: null, or the Module record (usage_key,
// display_name, original_usage_key, original_usage_version, extra). Extra
// members that are objects or arrays are left to Adapt (it keeps them as
// re-marshalled JSON).
func fastModule(b []byte, v []byte) ([]byte, bool) {
	var buf [16]fastMember
	ms, null, ok := fastOptObject(v, buf[:0])
	if null || !ok {
		return avro.AppendNull(b), ok
	}
	names := [...]string{"usage_key", "display_name", "original_usage_key", "original_usage_version"}
	var val [len(names)]string
	var set [len(names)]bool
	var extras [8]fastMember
	n := 0
members:
	for _, m := range ms {
		for i, k := range names {
			if m.key == k {
				s, isSet, ok := fastOptString(m.value)
				if !ok {
					return nil, false
				}
				val[i], set[i] = s, isSet
				continue members
			}
		}
		if c := fastScalar(m.value); c == 'o' || c == 'a' || n == len(extras) {
			return nil, false
		}
		extras[n] = m
		n++
	}
	b = append(b, 2) // branch 1: the Module record
	for i := range names {
		b = fastOpt(b, val[i], set[i])
	}
	return appendExtras(b, extras[:n])
}

// rawString is b as a string without a copy: it shares b's bytes, which
// must not change while the string is in use.
func rawString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
