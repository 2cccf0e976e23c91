package native

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/gateway/internal/adapter"
	"github.com/sluicehq/sluice/services/gateway/internal/ingest"
)

// EdXConfig configures the Open edX endpoints: the browser user_track call
// (GET|POST /event), the segment.io webhook (POST /segmentio/event) and the
// staff /event_logs drop rule.
type EdXConfig struct {
	// AllowAnonymous accepts /event calls that present no Sluice key, as
	// edX's own /event does (the browser sends none). A presented key must
	// still be valid.
	AllowAnonymous bool `yaml:"allow_anonymous" env:"ALLOW_ANONYMOUS"`
	// SessionCookie names the cookie whose value identifies the browser
	// session (Django's "sessionid"). The event's session is a one-way hash
	// of it, never the cookie itself.
	SessionCookie string `yaml:"session_cookie" env:"SESSION_COOKIE"`
	// SessionHashKey keys that hash (HMAC-SHA256), so session ids cannot be
	// matched against cookies by anyone without it. Empty: plain SHA-256.
	SessionHashKey config.Secret `yaml:"session_hash_key" env:"SESSION_HASH_KEY"`
	// StaffHeader is the request header ("true" or "1") by which a trusted
	// key says the user is staff; other keys' headers are ignored.
	StaffHeader string `yaml:"staff_header" env:"STAFF_HEADER"`
	// StaffUsernames are users treated as staff on every edX endpoint,
	// including /v1/events/edx, where no header describes the user.
	StaffUsernames []string `yaml:"staff_usernames" env:"STAFF_USERNAMES" envSeparator:","`
	// DropStaffEventLogs is edX server_track's "staff requests to
	// /event_logs are not logged": events whose event_type starts with
	// StaffDropPrefix from staff are not stored, and are counted in
	// sluice_gateway_dropped_events_total{family="edx",rule="staff_event_logs"}.
	DropStaffEventLogs bool   `yaml:"drop_staff_event_logs" env:"DROP_STAFF_EVENT_LOGS"`
	StaffDropPrefix    string `yaml:"staff_drop_prefix" env:"STAFF_DROP_PREFIX"`

	// SegmentSecret is the segment.io webhook secret (edX's
	// TRACKING_SEGMENTIO_WEBHOOK_SECRET): the ?key= of /segmentio/event
	// must equal it. Empty: every call gets 401, as in edX.
	SegmentSecret config.Secret `yaml:"segment_secret" env:"SEGMENT_SECRET"`
	// AllowedChannels and AllowedActions are edX's
	// TRACKING_SEGMENTIO_ALLOWED_CHANNELS and _ACTIONS (compared
	// case-insensitively). Other events are acknowledged but not stored.
	AllowedChannels []string `yaml:"allowed_channels" env:"ALLOWED_CHANNELS" envSeparator:","`
	AllowedActions  []string `yaml:"allowed_actions" env:"ALLOWED_ACTIONS" envSeparator:","`
	// SegmentActionFromType reads a payload's "type" as its action when it
	// has no "action": Segment renamed the field, and later edx-platform
	// versions check "type". Off: the seed's rule exactly.
	SegmentActionFromType bool `yaml:"segment_action_from_type" env:"SEGMENT_ACTION_FROM_TYPE"`
	// SegmentNameFallback takes the event type from properties.name and
	// the event from properties.data when properties.event_type and
	// properties.event are absent, as later edx-platform versions read
	// them. Off: the seed's rule exactly.
	SegmentNameFallback bool `yaml:"segment_name_fallback" env:"SEGMENT_NAME_FALLBACK"`
}

// EdXDefaults are edX's own defaults where it has them.
func EdXDefaults() EdXConfig {
	return EdXConfig{
		AllowAnonymous:        true,
		SessionCookie:         "sessionid",
		StaffHeader:           "X-Sluice-Staff",
		DropStaffEventLogs:    true,
		StaffDropPrefix:       "/event_logs",
		AllowedChannels:       []string{"mobile"},
		AllowedActions:        []string{"Track", "Screen"},
		SegmentActionFromType: true,
		SegmentNameFallback:   true,
	}
}

// Validate reports every problem.
func (c EdXConfig) Validate() error {
	var p config.Problems
	if c.DropStaffEventLogs && c.StaffDropPrefix == "" {
		p.Addf("staff_drop_prefix: required when drop_staff_event_logs is on")
	}
	if s := c.SegmentSecret.Value(); s != "" && len(s) < 16 {
		p.Addf("segment_secret: must be at least 16 characters")
	}
	if c.StaffHeader != "" && !validHeaderName(c.StaffHeader) {
		p.Addf("staff_header: %q is not a header name", c.StaffHeader)
	}
	return p.Err()
}

func validHeaderName(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return h != ""
}

// edxRules holds the edX drop rule and session hashing.
type edxRules struct {
	cfg   EdXConfig
	staff map[string]bool
}

func newEdXRules(c EdXConfig) edxRules {
	r := edxRules{cfg: c, staff: map[string]bool{}}
	for _, u := range c.StaffUsernames {
		r.staff[u] = true
	}
	return r
}

const ruleStaffEventLogs = "staff_event_logs"

// drop applies the staff /event_logs rule to a tracking-log event.
func (r *edxRules) drop(in *adapter.Input, staff bool) (string, string) {
	if !r.cfg.DropStaffEventLogs {
		return "", ""
	}
	et, _ := in.TopString("event_type")
	if !strings.HasPrefix(et, r.cfg.StaffDropPrefix) {
		return "", ""
	}
	if u, _ := in.TopString("username"); !staff && !r.staff[u] {
		return "", ""
	}
	return ruleStaffEventLogs, "staff requests to " + r.cfg.StaffDropPrefix + " are not logged"
}

// dropGeneric is the rule on /v1/events/edx, where only StaffUsernames say
// who is staff.
func (r *edxRules) dropGeneric(in *adapter.Input) (string, string) {
	return r.drop(in, false)
}

// session returns the event's session id for the request's session cookie.
func (r *edxRules) session(req *http.Request) string {
	if r.cfg.SessionCookie == "" {
		return ""
	}
	ck, err := req.Cookie(r.cfg.SessionCookie)
	if err != nil || ck.Value == "" {
		return ""
	}
	var sum []byte
	if k := r.cfg.SessionHashKey.Value(); k != "" {
		m := hmac.New(sha256.New, []byte(k))
		m.Write([]byte(ck.Value))
		sum = m.Sum(nil)
	} else {
		s := sha256.Sum256([]byte(ck.Value))
		sum = s[:]
	}
	// 32 hex digits, the length of edX's own (MD5) session ids.
	return hex.EncodeToString(sum[:16])
}

// userTrackParams are the parameters of one user_track call.
type userTrackParams struct {
	eventType, page, courseRunKey string
	hasEventType, hasPage         bool
	// event is the "event" parameter: a string from a query or form, any
	// JSON value from a JSON body; nil when absent.
	event    any
	hasEvent bool
}

// readUserTrack reads event_type, event and page (and the MFEs'
// courserun_key) from the query, a form or a JSON object body. Body values
// win over query values, as in Django's request.REQUEST.
func readUserTrack(r *http.Request, body []byte, mt string, params map[string]string) (userTrackParams, error) {
	var p userTrackParams
	get := func(vals url.Values) {
		if vs, ok := vals["event_type"]; ok && len(vs) > 0 && !p.hasEventType {
			p.eventType, p.hasEventType = vs[0], true
		}
		if vs, ok := vals["event"]; ok && len(vs) > 0 && !p.hasEvent {
			p.event, p.hasEvent = vs[0], true
		}
		if vs, ok := vals["page"]; ok && len(vs) > 0 && !p.hasPage {
			p.page, p.hasPage = vs[0], true
		}
		if vs, ok := vals["courserun_key"]; ok && len(vs) > 0 && p.courseRunKey == "" {
			p.courseRunKey = vs[0]
		}
	}
	if len(bytes.TrimSpace(body)) > 0 {
		switch mt {
		case "", "application/x-www-form-urlencoded":
			vals, err := url.ParseQuery(string(body))
			if err != nil {
				return p, errorf(http.StatusBadRequest, "invalid_form", "the form body does not parse: %v", err)
			}
			get(vals)
		case "multipart/form-data":
			mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
			form, err := mr.ReadForm(int64(len(body)))
			if err != nil {
				return p, errorf(http.StatusBadRequest, "invalid_form", "the multipart body does not parse: %v", err)
			}
			defer func() { _ = form.RemoveAll() }()
			get(form.Value)
		case "application/json", "text/plain":
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			var m map[string]any
			if err := dec.Decode(&m); err != nil || dec.More() {
				return p, errorf(http.StatusBadRequest, "invalid_json", "the body is not one JSON object")
			}
			if v, ok := m["event_type"]; ok {
				s, isStr := v.(string)
				if !isStr {
					return p, errorf(http.StatusBadRequest, "invalid_field", "event_type must be a string")
				}
				p.eventType, p.hasEventType = s, true
			}
			if v, ok := m["event"]; ok {
				p.event, p.hasEvent = v, true
			}
			for _, k := range []string{"page", "courserun_key"} {
				v, ok := m[k]
				if !ok || v == nil {
					continue
				}
				s, isStr := v.(string)
				if !isStr {
					return p, errorf(http.StatusBadRequest, "invalid_field", "%s must be a string", k)
				}
				if k == "page" {
					p.page, p.hasPage = s, true
				} else {
					p.courseRunKey = s
				}
			}
		default:
			return p, errorf(http.StatusUnsupportedMediaType, "unsupported_media_type",
				"Content-Type %q is not supported (send a form or a JSON object)", mt)
		}
	}
	get(r.URL.Query())
	return p, nil
}

// handleUserTrack serves GET|POST /event, edX's user_track view: it builds
// the browser tracking-log line edX would write and stores it. Like edX it
// answers "success".
func (n *Native) handleUserTrack(c echo.Context) error {
	src, err := n.source(c, event.EdX, n.cfg.EdX.AllowAnonymous)
	if err != nil {
		return err
	}
	r := c.Request()
	mt, params, err := mediaType(r)
	if err != nil {
		return err
	}
	bid, err := n.batchID(c)
	if err != nil {
		return err
	}
	var body []byte
	if r.Method == http.MethodPost {
		b, release, err := n.s.ReadBody(r)
		if err != nil {
			return err
		}
		defer release()
		body = b
	}
	p, err := readUserTrack(r, body, mt, params)
	if err != nil {
		return err
	}
	meta := n.s.Meta(c)
	var quirks []string
	if !utf8.ValidString(r.UserAgent()) {
		quirks = append(quirks, "agent_latin1")
	}
	username := ""
	staff := false
	if src.trusted {
		username = r.Header.Get("X-Sluice-Username")
		if h := n.cfg.EdX.StaffHeader; h != "" {
			v := strings.ToLower(strings.TrimSpace(r.Header.Get(h)))
			staff = v == "true" || v == "1"
		}
	}
	line := userTrackLine(p, meta, username, n.edx.session(r), meta.ReceivedAt)
	raw, err := marshalJSON(line)
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid_body", "the event cannot be rendered: %v", err)
	}
	var it ingest.Item
	if !p.hasEventType || p.eventType == "" {
		it = ingest.RejectedItem(raw, event.Reject(event.ReasonMissingField, "event_type", "user_track needs an event_type parameter"))
	} else {
		it = ingest.NewItem(raw, quirks...)
	}
	res := n.s.Ingest(ingestCtx(c), &ingest.Request{
		Family: event.EdX, Endpoint: "/event", SourceKey: src.id, Strict: src.strict,
		BatchID: bid, Meta: meta, Items: []ingest.Item{it},
		Drop: func(in *adapter.Input) (string, string) { return n.edx.drop(in, staff) },
	})
	if res.Accepted == 1 || len(res.Ignored) == 1 {
		return c.String(http.StatusOK, "success")
	}
	return n.replyEvents(c, res)
}

// userTrackLine builds the tracking-log line of a user_track call, with
// the fields edx-platform's user_track fills from the request.
func userTrackLine(p userTrackParams, meta adapter.Meta, username, session string, now time.Time) map[string]any {
	var page any
	if p.hasPage {
		page = p.page
	}
	ctx := map[string]any{"path": "/event"}
	courseID := p.courseRunKey
	if courseID == "" {
		courseID = courseIDFromURL(p.page)
	}
	ctx["course_id"] = courseID
	ctx["org_id"] = ""
	if k, ok := parseCourseKey(courseID); ok {
		ctx["org_id"] = k.org
	}
	line := map[string]any{
		"username":        username,
		"session":         session,
		"ip":              meta.IP,
		"referer":         meta.Referer,
		"accept_language": meta.AcceptLanguage,
		"event_source":    "browser",
		"event_type":      p.eventType,
		"agent":           meta.UserAgent,
		"page":            page,
		"time":            edxTime(now),
		"host":            meta.Host,
		"context":         ctx,
	}
	if p.hasEvent {
		line["event"] = p.event
	} else {
		line["event"] = ""
	}
	return line
}

// edxTime formats t as edX does: isoformat() of an aware UTC datetime.
func edxTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000-07:00")
}

// courseKey is a parsed edX course key.
type courseKey struct{ org, course, run string }

// parseCourseKey parses the course key forms edX accepts: course-v1:Org+Course+Run
// (also ccx-v1:Org+Course+Run+ccx@N) and the old slash form Org/Course/Run.
func parseCourseKey(s string) (courseKey, bool) {
	isPart := func(p string) bool {
		if p == "" {
			return false
		}
		for _, c := range p {
			if !(c == '-' || c == '_' || c == '.' || c == '~' || c == '%' ||
				c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				return false
			}
		}
		return true
	}
	for _, prefix := range []string{"course-v1:", "ccx-v1:"} {
		if rest, ok := strings.CutPrefix(s, prefix); ok {
			parts := strings.Split(rest, "+")
			if len(parts) < 3 || !isPart(parts[0]) || !isPart(parts[1]) || !isPart(parts[2]) {
				return courseKey{}, false
			}
			if prefix == "course-v1:" && len(parts) != 3 {
				return courseKey{}, false
			}
			return courseKey{parts[0], parts[1], parts[2]}, true
		}
	}
	parts := strings.Split(s, "/")
	if len(parts) != 3 || !isPart(parts[0]) || !isPart(parts[1]) || !isPart(parts[2]) {
		return courseKey{}, false
	}
	return courseKey{parts[0], parts[1], parts[2]}, true
}

// courseIDFromURL finds the course id in a page URL of the form
// .../courses/<course key>/..., like edx-platform's course_context_from_url.
func courseIDFromURL(page string) string {
	if page == "" {
		return ""
	}
	path := page
	if u, err := url.Parse(page); err == nil {
		path = u.Path
	}
	_, rest, ok := strings.Cut(path, "/courses/")
	if !ok {
		return ""
	}
	segs := strings.Split(rest, "/")
	if strings.Contains(segs[0], ":") {
		if _, ok := parseCourseKey(segs[0]); ok {
			return segs[0]
		}
		return ""
	}
	if len(segs) >= 3 {
		id := strings.Join(segs[:3], "/")
		if _, ok := parseCourseKey(id); ok {
			return id
		}
	}
	return ""
}

// marshalJSON renders v without HTML escaping, numbers as decoded.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}
