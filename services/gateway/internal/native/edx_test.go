package native

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/event"
)

// TestUserTrack sends the browser's user_track call as edX's JavaScript
// logger does (form-encoded POST, and GET with a query), and as JSON, and
// checks the tracking-log fields the gateway fills from the request.
func TestUserTrack(t *testing.T) {
	e := newEnv(t, nil)
	page := "https://courses.example.org/courses/course-v1:edX+DemoX+Demo_2014/courseware/intro/"
	form := url.Values{
		"event_type": {"play_video"},
		"event":      {`{"id":"i4x-edX-DemoX-video-0b9e39477cf34507a7a48f74be381fdd","currentTime":243,"code":"html5"}`},
		"page":       {page},
	}
	// 1. POST form, anonymous, with a session cookie and a Latin-1 agent.
	r := e.post("/event", []byte(form.Encode()), map[string]string{
		"Content-Type":    "application/x-www-form-urlencoded",
		"User-Agent":      "FBAN/FBIOS;FBCR/OrangeEspa\xf1a",
		"Referer":         page,
		"Accept-Language": "es-ES,es;q=0.9",
		"Cookie":          "sessionid=abcdef0123456789; csrftoken=x",
	})
	if r.status != 200 || string(r.body) != "success" {
		t.Fatalf("POST form: %d %q", r.status, r.body)
	}
	// 2. GET with a query, trusted server key vouching for a user.
	q := url.Values{"event_type": {"seq_goto"}, "event": {`{"old":1,"new":2,"id":"x"}`}, "page": {"https://lms.example.org/courses/BerkeleyX/Stat_2.1x/1T2014/courseware"}}
	r = e.do(http.MethodGet, "/event?"+q.Encode(), nil, map[string]string{
		"Authorization": "Bearer " + serverKey, "X-Sluice-Username": "staffer",
	})
	if r.status != 200 || string(r.body) != "success" {
		t.Fatalf("GET: %d %q", r.status, r.body)
	}
	// 3. JSON body from a browser key: its username header is ignored.
	r = e.post("/event", []byte(`{"event_type":"page_close","event":"{}","page":null}`), map[string]string{
		"Content-Type": "application/json", "Authorization": "Bearer " + browserKey, "X-Sluice-Username": "mallory",
	})
	if r.status != 200 {
		t.Fatalf("JSON: %d %q", r.status, r.body)
	}
	// 4. multipart form.
	var mb bytes.Buffer
	mw := multipart.NewWriter(&mb)
	_ = mw.WriteField("event_type", "edx.ui.lms.link_clicked")
	_ = mw.WriteField("event", `{"target_url":"https://example.org"}`)
	_ = mw.Close()
	r = e.post("/event", mb.Bytes(), map[string]string{"Content-Type": mw.FormDataContentType()})
	if r.status != 200 {
		t.Fatalf("multipart: %d %q", r.status, r.body)
	}

	recs := e.raw(event.EdX, 4)
	byType := map[string]record{}
	for _, rec := range recs {
		byType[field(rec.native, "event_type").(string)] = rec
	}
	pv := byType["play_video"]
	for path, want := range map[string]any{
		"event_source":             "browser",
		"username":                 "",
		"agent":                    "FBAN/FBIOS;FBCR/OrangeEspaña",
		"referer":                  page,
		"accept_language":          "es-ES,es;q=0.9",
		"page":                     page,
		"context.course_id":        "course-v1:edX+DemoX+Demo_2014",
		"context.org_id":           "edX",
		"context.path":             "/event",
		"event_kind":               "json_string",
		"envelope.source_key":      "anonymous",
		"envelope.endpoint":        "/event",
		"envelope.ip":              "127.0.0.1",
		"envelope.user_agent":      "FBAN/FBIOS;FBCR/OrangeEspaña",
		"envelope.family":          "edx",
		"envelope.event_type":      "play_video",
		"envelope.partition_key":   field(pv.native, "session"),
		"host":                     strings.TrimPrefix(e.url, "http://"),
		"ip":                       "127.0.0.1",
		"event_json":               `{"id":"i4x-edX-DemoX-video-0b9e39477cf34507a7a48f74be381fdd","currentTime":243,"code":"html5"}`,
		"context.user_id":          nil,
		"envelope.gateway_version": "test",
	} {
		if got := field(pv.native, path); got != want {
			t.Errorf("play_video %s = %#v, want %#v", path, got, want)
		}
	}
	if s, _ := field(pv.native, "session").(string); len(s) != 32 || strings.Contains(s, "abcdef") {
		t.Errorf("session %q: want 32 hex digits derived from the cookie, not the cookie", s)
	}
	if q, _ := field(pv.native, "envelope.quirks").([]any); !slices.Contains(q, any("agent_latin1")) || !slices.Contains(q, any("event_json_string")) {
		t.Errorf("play_video quirks %v", q)
	}
	sg := byType["seq_goto"]
	for path, want := range map[string]any{
		"username": "staffer", "context.course_id": "BerkeleyX/Stat_2.1x/1T2014", "context.org_id": "BerkeleyX",
		"envelope.source_key": "lms", "envelope.partition_key": "staffer",
	} {
		if got := field(sg.native, path); got != want {
			t.Errorf("seq_goto %s = %#v, want %#v", path, got, want)
		}
	}
	pc := byType["page_close"]
	if got := field(pc.native, "username"); got != "" {
		t.Errorf("an untrusted key vouched for user %v", got)
	}
	if got := field(pc.native, "page"); got != nil {
		t.Errorf("page_close page = %v, want null", got)
	}
	if got := field(byType["edx.ui.lms.link_clicked"].native, "event_kind"); got != "json_string" {
		t.Errorf("multipart event_kind %v", got)
	}
}

// TestUserTrackRefusals covers keys, bad bodies and the missing event_type,
// which is dead-lettered.
func TestUserTrackRefusals(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.EdX.AllowAnonymous = false })
	form := []byte("event_type=x&event=%7B%7D&page=p")
	ct := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	if r := e.post("/event", form, ct); r.status != 401 || !bytes.Contains(r.body, []byte("missing_key")) {
		t.Errorf("anonymous with allow_anonymous off: %d %s", r.status, r.body)
	}
	ct["Authorization"] = "Bearer wrong-key-0000000000"
	if r := e.post("/event", form, ct); r.status != 401 {
		t.Errorf("wrong key: %d %s", r.status, r.body)
	}
	ct["Authorization"] = "Bearer " + browserKey
	if r := e.post("/event", []byte("not json"), map[string]string{"Content-Type": "application/json", "Authorization": ct["Authorization"]}); r.status != 400 {
		t.Errorf("bad JSON: %d %s", r.status, r.body)
	}
	if r := e.post("/event", []byte("<x/>"), map[string]string{"Content-Type": "application/xml", "Authorization": ct["Authorization"]}); r.status != 415 {
		t.Errorf("XML: %d %s", r.status, r.body)
	}
	big := bytes.Repeat([]byte("a"), 2<<20)
	if r := e.post("/event", big, ct); r.status != 413 {
		t.Errorf("2 MiB body: %d", r.status)
	}
	r := e.post("/event", []byte("event=%7B%7D&page=p"), ct)
	res := r.result(t)
	if r.status != 400 || res.Rejected != 1 || res.Errors[0].Field != "event_type" {
		t.Fatalf("no event_type: %d %s", r.status, r.body)
	}
	dl := e.dlq(1)
	if field(dl[0].native, "reason") != event.ReasonMissingField || field(dl[0].native, "endpoint") != "/event" {
		t.Fatalf("dead letter %s", dl[0].json)
	}
	e.noMore(event.RawTopic(event.EdX), 0)
}

// TestStaffEventLogsDropRule is edX server_track's "staff requests to
// /event_logs are not logged", as a counted drop rule on /event (staff
// header from a trusted key) and on /v1/events/edx (staff usernames).
func TestStaffEventLogsDropRule(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.EdX.StaffUsernames = []string{"admin"} })
	hdr := map[string]string{"Authorization": "Bearer " + serverKey, "X-Sluice-Username": "prof", "X-Sluice-Staff": "true"}
	r := e.do(http.MethodGet, "/event?event_type=/event_logs/courses/x&event=%7B%7D", nil, hdr)
	if r.status != 200 || string(r.body) != "success" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	// A browser key cannot claim staff: stored.
	r = e.do(http.MethodGet, "/event?event_type=/event_logs/courses/x&event=%7B%7D", nil,
		map[string]string{"Authorization": "Bearer " + browserKey, "X-Sluice-Staff": "true"})
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	// The generic endpoint: admin's /event_logs line is dropped, the other kept.
	body := `{"username":"admin","event_type":"/event_logs","event_source":"server","time":"2026-01-01T00:00:00+00:00","event":"{}"}
{"username":"student","event_type":"/event_logs","event_source":"server","time":"2026-01-01T00:00:00+00:00","event":"{}"}
{"username":"admin","event_type":"/courses/x/info","event_source":"server","time":"2026-01-01T00:00:00+00:00","event":"{}"}`
	r = e.post("/v1/events/edx", []byte(body), map[string]string{"Authorization": "Bearer " + serverKey, "Content-Type": "application/x-ndjson"})
	res := r.result(t)
	if r.status != 200 || res.Accepted != 2 || res.Rejected != 0 || len(res.Ignored) != 1 || res.Ignored[0].Index != 0 || res.Ignored[0].Rule != ruleStaffEventLogs {
		t.Fatalf("generic: %d %s", r.status, r.body)
	}
	if got := e.dropped("edx", ruleStaffEventLogs); got != 2 {
		t.Fatalf("dropped counter %v, want 2", got)
	}
	e.raw(event.EdX, 3)
	e.noMore(event.DLQTopic, 0)
}

func TestCourseKeys(t *testing.T) {
	for _, tc := range []struct {
		in, org string
		ok      bool
	}{
		{"course-v1:edX+DemoX+Demo_2014", "edX", true},
		{"BerkeleyX/Stat_2.1x/1T2014", "BerkeleyX", true},
		{"foo/bar/baz", "foo", true},
		{"course-v1:foo+bar+baz", "foo", true},
		{"ccx-v1:edX+DemoX+Demo_2014+ccx@3", "edX", true},
		{"invalid", "", false},
		{"course-v1:a+b", "", false},
		{"a/b", "", false},
		{"a/b/c/d", "", false},
		{"", "", false},
	} {
		k, ok := parseCourseKey(tc.in)
		if ok != tc.ok || k.org != tc.org {
			t.Errorf("parseCourseKey(%q) = %+v %v", tc.in, k, ok)
		}
	}
	for in, want := range map[string]string{
		"https://x.org/courses/course-v1:edX+DemoX+Demo_2014/courseware/a/b": "course-v1:edX+DemoX+Demo_2014",
		"https://x.org/courses/MITx/6.002x/2012_Fall/info":                   "MITx/6.002x/2012_Fall",
		"https://x.org/dashboard":                                            "",
		"/courses/nope":                                                      "",
		"":                                                                   "",
	} {
		if got := courseIDFromURL(in); got != want {
			t.Errorf("courseIDFromURL(%q) = %q, want %q", in, got, want)
		}
	}
}
