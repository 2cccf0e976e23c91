package native

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/gateway/internal/adapter"
	"github.com/sluicehq/sluice/services/gateway/internal/ingest"
)

// The segment.io webhook, as edx-platform's track_segmentio_event defines
// it (seed 001): the messages and their order are edX's.
const (
	segUnauthorized   = "Unauthorized"
	segIgnoredChannel = "Channel ignored"
	segIgnoredAction  = "Action ignored"
	segMissingUserID  = "Required user_id missing from context"
	segInvalidUserID  = "Unable to parse userId as an integer"
	segMissingEvType  = "The event_type field must be specified in the properties dictionary"
	segMissingTime    = "Required timestamp field not found"
	segMissingRecvAt  = "Required receivedAt field not found"

	ruleSegmentChannel = "segment_channel"
	ruleSegmentAction  = "segment_action"
)

// segmentReply is edX's reply to the webhook, plus Sluice's reason code
// and field when the event was not stored.
type segmentReply struct {
	Committed bool   `json:"committed"`
	Message   string `json:"message,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Field     string `json:"field,omitempty"`
}

// handleSegment serves POST /segmentio/event?key=…: the key must equal the
// configured secret (compared in constant time; 401 otherwise); a channel
// or action outside the allow-lists is acknowledged with committed=false
// and the reason, counted as dropped and not stored; everything else goes
// through the pipeline as an edX tracking-log event, or is rejected (400,
// DLQ) with edX's message.
func (n *Native) handleSegment(c echo.Context) error {
	r := c.Request()
	if !matchSecret(n.seg, r.URL.Query().Get("key"), r.RemoteAddr) {
		return c.JSON(http.StatusUnauthorized, segmentReply{Message: segUnauthorized, Reason: "invalid_key"})
	}
	body, release, err := n.s.ReadBody(r)
	if err != nil {
		he := asHTTPError(err)
		ingest.SetRetryAfter(c, he)
		return c.JSON(he.Status, segmentReply{Message: he.Message, Reason: he.Code})
	}
	defer release()
	meta := n.s.Meta(c)
	res := n.s.Ingest(ingestCtx(c), &ingest.Request{
		Family: event.EdX, Endpoint: "/segmentio/event", SourceKey: "segmentio",
		Meta: meta, Items: []ingest.Item{ingest.NewItem(body)},
		Drop:  n.segmentDrop,
		Adapt: n.segmentAdapt,
	})
	switch {
	case res.Unavailable != nil:
		n.setRetryAfter(c, res)
		reason := "unavailable"
		if len(res.Errors) > 0 && ingest.Retryable(res.Errors[0].Code) {
			reason = res.Errors[0].Code
		}
		return c.JSON(http.StatusServiceUnavailable, segmentReply{Message: "the event could not be stored right now; retry", Reason: reason})
	case res.Accepted == 1:
		return c.JSON(http.StatusOK, segmentReply{Committed: true})
	case len(res.Ignored) == 1:
		ig := res.Ignored[0]
		return c.JSON(http.StatusOK, segmentReply{Message: ig.Message, Reason: ig.Rule})
	case len(res.Errors) > 0:
		e := res.Errors[0]
		status := http.StatusBadRequest
		if ingest.Retryable(e.Code) {
			status = http.StatusServiceUnavailable
			n.setRetryAfter(c, res)
		} else {
			n.log.Warn("unable to process event received from segment.io",
				zap.String("reason", e.Code), zap.String("field", e.Field), zap.String("message", e.Message))
		}
		return c.JSON(status, segmentReply{Message: e.Message, Reason: e.Code, Field: e.Field})
	}
	return c.JSON(http.StatusInternalServerError, segmentReply{Message: "internal error", Reason: "internal"})
}

// segmentDrop applies the channel and action allow-lists.
func (n *Native) segmentDrop(in *adapter.Input) (string, string) {
	cfg := &n.cfg.EdX
	channel, _ := in.Value["channel"].(string)
	if channel == "" || !containsFold(cfg.AllowedChannels, channel) {
		return ruleSegmentChannel, segIgnoredChannel
	}
	action, _ := in.Value["action"].(string)
	if _, has := in.Value["action"]; !has && cfg.SegmentActionFromType {
		action, _ = in.Value["type"].(string)
	}
	if action == "" || !containsFold(cfg.AllowedActions, action) {
		return ruleSegmentAction, segIgnoredAction
	}
	return "", ""
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// segmentAdapt converts a segment.io payload into the tracking-log event
// edX would emit and adapts that with the edX adapter.
func (n *Native) segmentAdapt(in *adapter.Input) (*adapter.Output, *event.Rejection) {
	line, quirks, rj := segmentToEdX(in.Value, in.Meta.Host, n.cfg.EdX.SegmentNameFallback)
	if rj != nil {
		return nil, rj
	}
	if bad, ok := quirkValue(quirks, "course_id_invalid"); ok {
		n.log.Warn("unable to parse course_id from segment.io event", zap.String("course_id", bad))
	}
	raw, err := marshalJSON(line)
	if err != nil {
		return nil, event.Reject(event.ReasonInvalidField, "", "rendering the tracking-log event: %v", err)
	}
	out, rj := adapter.EdX{}.Adapt(&adapter.Input{Raw: raw, Value: line, Meta: in.Meta})
	if rj != nil {
		return nil, rj
	}
	out.Quirks = append(out.Quirks, stripQuirkValues(quirks)...)
	if s, ok := in.Value["sentAt"].(string); ok {
		if t, ok := parseSegmentTime(s); ok {
			out.SentTime = t
		}
	}
	return out, nil
}

// segmentToEdX builds the tracking-log event of a segment.io payload,
// following track_segmentio_event step by step. host is the gateway's
// host as the webhook called it. Quirks may carry a value after "=" (the
// bad course id), for logging.
func segmentToEdX(v map[string]any, host string, nameFallback bool) (map[string]any, []string, *event.Rejection) {
	var quirks []string
	props := map[string]any{}
	if pv, has := v["properties"]; has && pv != nil {
		p, ok := pv.(map[string]any)
		if !ok {
			return nil, nil, event.Reject(event.ReasonInvalidField, "properties", "must be an object")
		}
		props = p
	}

	// context: the segment context as "client", overlaid by
	// properties.context.
	ctx := map[string]any{}
	if sc, has := v["context"]; has && truthy(sc) {
		ctx["client"] = sc
	}
	if pc, has := props["context"]; has && pc != nil {
		m, ok := pc.(map[string]any)
		if !ok {
			return nil, nil, event.Reject(event.ReasonInvalidField, "properties.context", "must be an object")
		}
		for k, x := range m {
			ctx[k] = x
		}
	}

	uv := v["userId"]
	if !truthy(uv) {
		return nil, nil, event.Reject(event.ReasonMissingField, "userId", "%s", segMissingUserID)
	}
	uid, ok := segmentUserID(uv)
	if !ok {
		return nil, nil, event.Reject(event.ReasonInvalidField, "userId", "%s", segInvalidUserID)
	}
	ctx["user_id"] = json.Number(strconv.FormatInt(uid, 10))

	if cid, ok := ctx["course_id"].(string); ok && cid != "" {
		if k, ok := parseCourseKey(cid); ok {
			ctx["org_id"] = k.org
		} else {
			// Logged and kept, as edX does.
			quirks = append(quirks, "course_id_invalid="+cid)
		}
	}

	tv, has := v["timestamp"]
	if !has {
		return nil, nil, event.Reject(event.ReasonMissingField, "timestamp", "%s", segMissingTime)
	}
	ts, ok := tv.(string)
	if !ok {
		return nil, nil, event.Reject(event.ReasonInvalidField, "timestamp", "must be an ISO-8601 string")
	}
	if _, ok := parseSegmentTime(ts); !ok {
		return nil, nil, event.Reject(event.ReasonInvalidField, "timestamp", "%q is not an ISO-8601 time", ts)
	}
	rv, has := v["receivedAt"]
	if !has {
		return nil, nil, event.Reject(event.ReasonMissingField, "receivedAt", "%s", segMissingRecvAt)
	}
	ra, ok := rv.(string)
	if !ok {
		return nil, nil, event.Reject(event.ReasonInvalidField, "receivedAt", "must be an ISO-8601 string")
	}
	if _, ok := parseSegmentTime(ra); !ok {
		return nil, nil, event.Reject(event.ReasonInvalidField, "receivedAt", "%q is not an ISO-8601 time", ra)
	}
	ctx["received_at"] = ra

	var eventType any
	if et, has := props["event_type"]; has {
		eventType = et
	} else if name, ok := props["name"].(string); ok && nameFallback {
		eventType = name
		quirks = append(quirks, "event_type_from_name")
	} else {
		return nil, nil, event.Reject(event.ReasonMissingField, "properties.event_type", "%s", segMissingEvType)
	}
	if _, ok := eventType.(string); !ok {
		return nil, nil, event.Reject(event.ReasonInvalidField, "properties.event_type", "must be a string")
	}
	ctx["path"] = "/segmentio/event"

	ev, has := props["event"]
	if !has {
		if d, hasData := props["data"]; hasData && nameFallback {
			ev = d
			quirks = append(quirks, "event_from_data")
		} else {
			ev = map[string]any{}
		}
	}
	ip, _ := props["ip"].(string)
	channel, _ := v["channel"].(string)
	line := map[string]any{
		"username":     "",
		"event_type":   eventType,
		"event_source": channel,
		"time":         ts,
		"context":      ctx,
		"page":         props["page"],
		"host":         host,
		"agent":        "",
		"ip":           ip,
		"event":        ev,
	}
	if h, ok := ctx["host"].(string); ok {
		line["host"] = h
	}
	if id, ok := v["messageId"].(string); ok && id != "" {
		// Segment's message id names the event; retried webhooks carry
		// the same one, so duplicates are visible downstream.
		line["event_id"] = "segment:" + id
	}
	return line, quirks, nil
}

// truthy is Python's truth value of a decoded JSON value.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case json.Number:
		f, err := x.Float64()
		return err != nil || f != 0
	case map[string]any:
		return len(x) > 0
	case []any:
		return len(x) > 0
	}
	return true
}

// segmentUserID reads userId as edX does (int(userId)): an integer, or a
// string of one.
func segmentUserID(v any) (int64, bool) {
	switch x := v.(type) {
	case json.Number:
		i, err := strconv.ParseInt(string(x), 10, 64)
		return i, err == nil
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return i, err == nil
	}
	return 0, false
}

// parseSegmentTime parses Segment's ISO-8601 times: a fraction of any
// length or none, and Z, +hh:mm or +hhmm (originalTimestamp's
// "2015-04-14T20:42:49+0100", which time.RFC3339 refuses).
func parseSegmentTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// quirkValue finds quirk name=value in quirks.
func quirkValue(quirks []string, name string) (string, bool) {
	for _, q := range quirks {
		if v, ok := strings.CutPrefix(q, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// stripQuirkValues drops the "=value" parts, which are for logs only.
func stripQuirkValues(quirks []string) []string {
	out := make([]string, len(quirks))
	for i, q := range quirks {
		name, _, _ := strings.Cut(q, "=")
		out[i] = name
	}
	return out
}
