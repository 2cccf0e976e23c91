package native

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/event"
)

// segReply is the webhook reply.
type segReply struct {
	Committed bool   `json:"committed"`
	Message   string `json:"message"`
	Reason    string `json:"reason"`
	Field     string `json:"field"`
}

func (e *env) segment(key string, body []byte) (int, segReply) {
	e.t.Helper()
	r := e.post("/segmentio/event?key="+key, body, map[string]string{"Content-Type": "application/json"})
	var sr segReply
	r.json(e.t, &sr)
	return r.status, sr
}

// TestSegmentSamples posts the twelve segment.io payloads of the
// edx-analytics-pipeline fixtures, one per webhook call, under the default
// configuration (edX's own allow-lists: channel mobile, actions Track and
// Screen) and under one that also allows the fixtures' channels, and
// records each verdict.
func TestSegmentSamples(t *testing.T) {
	files, _ := filepath.Glob("testdata/segment/*.log")
	if len(files) != 2 {
		t.Fatalf("want the 2 segment fixture files, found %v", files)
	}
	type verdict struct {
		status int
		reply  segReply
	}
	run := func(t *testing.T, mutate func(*Config)) (*env, map[string]verdict, int) {
		e := newEnv(t, mutate)
		out := map[string]verdict{}
		stored := 0
		for _, f := range files {
			for i, l := range lines(t, f) {
				st, sr := e.segment(segSecret, l)
				name := fmt.Sprintf("%s#%d", filepath.Base(f)[len("load_events_acceptance_segment_"):len("load_events_acceptance_segment_")+8], i)
				out[name] = verdict{st, sr}
				if sr.Committed {
					stored++
				}
				t.Logf("%s: %d committed=%v %s %s", name, st, sr.Committed, sr.Reason, sr.Message)
			}
		}
		return e, out, stored
	}

	t.Run("edx defaults", func(t *testing.T) {
		e, out, stored := run(t, nil)
		for name, v := range out {
			if v.status != 200 || v.reply.Committed || v.reply.Message != segIgnoredChannel {
				t.Errorf("%s: %d %+v, want 200 Channel ignored", name, v.status, v.reply)
			}
		}
		if stored != 0 || e.dropped("edx", ruleSegmentChannel) != 12 {
			t.Errorf("stored %d, dropped %v", stored, e.dropped("edx", ruleSegmentChannel))
		}
		e.noMore(event.RawTopic(event.EdX), 0)
		e.noMore(event.DLQTopic, 0)
	})

	t.Run("fixture channels allowed", func(t *testing.T) {
		e, out, stored := run(t, func(c *Config) { c.EdX.AllowedChannels = []string{"mobile", "server", "client"} })
		want := map[int]string{0: "stored", 1: "stored", 2: segIgnoredAction, 3: segIgnoredAction, 4: segMissingEvType, 5: segIgnoredAction}
		for name, v := range out {
			i := int(name[len(name)-1] - '0')
			switch w := want[i]; w {
			case "stored":
				if v.status != 200 || !v.reply.Committed {
					t.Errorf("%s: %d %+v, want stored", name, v.status, v.reply)
				}
			case segMissingEvType:
				if v.status != 400 || v.reply.Message != w || v.reply.Field != "properties.event_type" {
					t.Errorf("%s: %d %+v, want 400 %s", name, v.status, v.reply, w)
				}
			default:
				if v.status != 200 || v.reply.Committed || v.reply.Message != w {
					t.Errorf("%s: %d %+v, want 200 %s", name, v.status, v.reply, w)
				}
			}
		}
		if stored != 4 {
			t.Fatalf("stored %d, want 4", stored)
		}
		recs := e.raw(event.EdX, 4)
		for _, r := range recs {
			et := field(r.native, "event_type")
			if et != "edx.video.loaded" && et != "edx.bi.video.screen.fullscreen.toggled" {
				t.Errorf("event_type %v", et)
			}
			for path, want := range map[string]any{
				"event_source": "server", "username": "", "agent": "", "ip": "",
				"context.course_id": "course-v1:edX+DemoX+2T2016", "context.org_id": "edX",
				"context.user_id": int64(4), "context.path": "/segmentio/event",
				"context.open_in_browser_url": "https://courses.edx.org/xblock/block-v1:edX+DemoX+2T2016+type@video+block@dcf121c8ce734eec99bf09182c2991be",
				"context.component":           "videoplayer", "event_kind": "object", "envelope.source_key": "segmentio",
				"envelope.partition_key": "4",
			} {
				if got := field(r.native, path); got != want {
					t.Errorf("%v %s = %#v, want %#v", et, path, got, want)
				}
			}
			if ra, _ := field(r.native, "context.received_at_raw").(string); !strings.HasSuffix(ra, "19:43:04.237Z") {
				t.Errorf("received_at_raw %q", ra)
			}
			client, _ := field(r.native, "context.client").(string)
			var cm map[string]any
			if json.Unmarshal([]byte(client), &cm) != nil || cm["library"] == nil || cm["app"] == nil {
				t.Errorf("context.client is not the segment context: %s", client)
			}
			if x, _ := field(r.native, "context.extra").(map[string]any); x["app_name"] == nil {
				t.Errorf("properties.context.app_name not merged into context: %v", x)
			}
			if ej, _ := field(r.native, "event_json").(string); !strings.Contains(ej, `"module_id"`) {
				t.Errorf("event (from properties.data) %s", ej)
			}
			q, _ := field(r.native, "envelope.quirks").([]any)
			if !strings.HasSuffix(fmt.Sprint(q), "event_type_from_name event_from_data]") {
				t.Errorf("quirks %v", q)
			}
			if id, _ := field(r.native, "envelope.event_id").(string); !strings.HasPrefix(id, "segment:01234567-89ab-cdef-0123-4567890000") {
				t.Errorf("event id %q", id)
			}
			if st, _ := field(r.native, "envelope.sent_time").(time.Time); st.IsZero() {
				t.Errorf("sent_time not set from sentAt: %v", field(r.native, "envelope.sent_time"))
			}
		}
		dl := e.dlq(2)
		for _, d := range dl {
			if field(d.native, "reason") != event.ReasonMissingField || field(d.native, "field") != "properties.event_type" {
				t.Errorf("dead letter %s", d.json)
			}
		}
		if e.dropped("edx", ruleSegmentAction) != 6 {
			t.Errorf("dropped action %v", e.dropped("edx", ruleSegmentAction))
		}
	})

	t.Run("seed rules exactly", func(t *testing.T) {
		// Without the fallbacks the fixtures (no "action", no
		// properties.event_type) are all ignored for their action.
		_, out, stored := run(t, func(c *Config) {
			c.EdX.AllowedChannels = []string{"mobile", "server", "client"}
			c.EdX.SegmentActionFromType = false
			c.EdX.SegmentNameFallback = false
		})
		for name, v := range out {
			if v.status != 200 || v.reply.Message != segIgnoredAction {
				t.Errorf("%s: %d %+v, want Action ignored", name, v.status, v.reply)
			}
		}
		if stored != 0 {
			t.Errorf("stored %d", stored)
		}
	})
}

// segEvent is the payload of edx-platform's own segment.io tests
// (track/views/tests/test_segmentio.py), with overrides.
func segEvent(mut func(m map[string]any)) []byte {
	m := map[string]any{
		"userId": 10, "event": "Did something",
		"properties": map[string]any{
			"event_type": "sentinel.event_type", "event": map[string]any{"foo": "bar"},
			"context": map[string]any{"course_id": "foo/bar/baz"},
		},
		"channel":    "mobile",
		"context":    map[string]any{"library": map[string]any{"name": "unknown", "version": "unknown"}},
		"receivedAt": "2014-08-27T16:33:39.100Z", "timestamp": "2014-08-27T16:33:39.215Z",
		"type": "track", "projectId": "u0j33yjkr8", "messageId": "qy52hwp4", "version": 2,
		"integrations": map[string]any{}, "options": map[string]any{"library": "unknown", "providers": map[string]any{}},
		"action": "Track",
	}
	if mut != nil {
		mut(m)
	}
	b, _ := json.Marshal(m)
	return b
}

// TestSegmentRules follows track_segmentio_event's checks one by one.
func TestSegmentRules(t *testing.T) {
	e := newEnv(t, nil)
	props := func(m map[string]any) map[string]any { return m["properties"].(map[string]any) }
	for _, tc := range []struct {
		name    string
		key     string
		mut     func(map[string]any)
		status  int
		message string
		field   string
	}{
		{"stored slash course key", segSecret, nil, 200, "", ""},
		{"stored course-v1 key", segSecret, func(m map[string]any) {
			props(m)["context"] = map[string]any{"course_id": "course-v1:foo+bar+baz"}
		}, 200, "", ""},
		{"invalid course id logged and kept", segSecret, func(m map[string]any) {
			props(m)["context"] = map[string]any{"course_id": "invalid"}
		}, 200, "", ""},
		{"+0100 offsets parsed", segSecret, func(m map[string]any) {
			m["timestamp"] = "2015-04-14T20:42:49.000+0100"
			m["receivedAt"] = "2015-04-14T20:43:04+0100"
		}, 200, "", ""},
		{"wrong key", "y", nil, 401, segUnauthorized, ""},
		{"no key", "", nil, 401, segUnauthorized, ""},
		{"dev key from loopback", "dev", nil, 200, "", ""},
		{"channel server", segSecret, func(m map[string]any) { m["channel"] = "server" }, 200, segIgnoredChannel, ""},
		{"channel Browser", segSecret, func(m map[string]any) { m["channel"] = "Browser" }, 200, segIgnoredChannel, ""},
		{"no channel", segSecret, func(m map[string]any) { delete(m, "channel") }, 200, segIgnoredChannel, ""},
		{"channel case", segSecret, func(m map[string]any) { m["channel"] = "MOBILE" }, 200, "", ""},
		{"action Identify", segSecret, func(m map[string]any) { m["action"] = "Identify" }, 200, segIgnoredAction, ""},
		{"action page", segSecret, func(m map[string]any) { m["action"] = "Page" }, 200, segIgnoredAction, ""},
		{"action screen", segSecret, func(m map[string]any) { m["action"] = "screen" }, 200, "", ""},
		{"missing userId", segSecret, func(m map[string]any) { delete(m, "userId") }, 400, segMissingUserID, "userId"},
		{"empty userId", segSecret, func(m map[string]any) { m["userId"] = "" }, 400, segMissingUserID, "userId"},
		{"userId foobar", segSecret, func(m map[string]any) { m["userId"] = "foobar" }, 400, segInvalidUserID, "userId"},
		{"missing timestamp", segSecret, func(m map[string]any) { delete(m, "timestamp") }, 400, segMissingTime, "timestamp"},
		{"missing receivedAt", segSecret, func(m map[string]any) { delete(m, "receivedAt") }, 400, segMissingRecvAt, "receivedAt"},
		{"missing event_type", segSecret, func(m map[string]any) { m["properties"] = map[string]any{} }, 400, segMissingEvType, "properties.event_type"},
		{"bad timestamp", segSecret, func(m map[string]any) { m["timestamp"] = "yesterday" }, 400, `"yesterday" is not an ISO-8601 time`, "timestamp"},
		{"properties not an object", segSecret, func(m map[string]any) { m["properties"] = "x" }, 400, "must be an object", "properties"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, sr := e.segment(tc.key, segEvent(tc.mut))
			if st != tc.status || sr.Message != tc.message || sr.Field != tc.field || sr.Committed != (tc.status == 200 && tc.message == "") {
				t.Fatalf("%d %+v, want %d %q %q", st, sr, tc.status, tc.message, tc.field)
			}
		})
	}
	if st, sr := e.segment(segSecret, []byte(`{"userId":`)); st != 400 || sr.Reason != event.ReasonInvalidJSON {
		t.Errorf("truncated JSON: %d %+v", st, sr)
	}
	recs := e.raw(event.EdX, 7)
	orgs := map[string]int{}
	for _, r := range recs {
		if field(r.native, "context.user_id") != int64(10) || field(r.native, "event_type") != "sentinel.event_type" ||
			field(r.native, "event_json") != `{"foo":"bar"}` || field(r.native, "event_source") == "" {
			t.Errorf("record %s", r.json)
		}
		org, _ := field(r.native, "context.org_id").(string)
		orgs[org]++
		if field(r.native, "context.course_id") == "invalid" {
			if q, _ := field(r.native, "envelope.quirks").([]any); !strings.HasSuffix(fmt.Sprint(q), " course_id_invalid]") {
				t.Errorf("invalid course quirks %v", q)
			}
		}
		if field(r.native, "time_raw") == "2015-04-14T20:42:49.000+0100" {
			if ct, _ := field(r.native, "time").(time.Time); !ct.Equal(time.Date(2015, 4, 14, 19, 42, 49, 0, time.UTC)) {
				t.Errorf("+0100 time %v", field(r.native, "time"))
			}
		}
	}
	if orgs["foo"] != 6 || orgs[""] != 1 {
		t.Errorf("org ids %v, want foo ×6 and none for the invalid course id", orgs)
	}
	e.dlq(9) // 8 rejected by rule + the truncated body
}

func TestParseSegmentTime(t *testing.T) {
	for _, s := range []string{"2015-04-14T19:42:52.237Z", "2015-04-14T20:42:49+0100", "2015-04-14T20:42:49+01:00", "2015-04-14T19:42:49Z", "2015-04-14T19:42:49.123456"} {
		if _, ok := parseSegmentTime(s); !ok {
			t.Errorf("%q does not parse", s)
		}
	}
	for _, s := range []string{"", "2015-04-14", "yesterday", "2015-13-14T19:42:49Z"} {
		if _, ok := parseSegmentTime(s); ok {
			t.Errorf("%q parses", s)
		}
	}
}
