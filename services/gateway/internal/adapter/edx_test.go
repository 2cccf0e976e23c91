package adapter

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/schemas"
	"unicode/utf8"
)

// edxDecode decodes raw the way the gateway does (goccy/go-json, UseNumber).
// It returns nil when raw is not a JSON object.
func edxDecode(raw []byte) map[string]any {
	dec := gojson.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	m, _ := v.(map[string]any)
	return m
}

func edxAdaptBytes(t testing.TB, raw []byte, meta Meta) (*Output, *event.Rejection) {
	t.Helper()
	m := edxDecode(raw)
	if m == nil {
		t.Fatalf("not a JSON object: %.200s", raw)
	}
	return EdX{}.Adapt(&Input{Raw: raw, Value: m, Meta: meta})
}

// edxRendered adapts raw, fails on rejection, encodes with the composed
// schema and returns the output and the record as decoded JSON.
func edxRendered(t *testing.T, raw []byte, meta Meta) (*Output, map[string]any) {
	t.Helper()
	out, rej := edxAdaptBytes(t, raw, meta)
	if rej != nil {
		t.Fatalf("rejected: %v", rej)
	}
	js := mustEncode(t, event.EdX, out)
	var rec map[string]any
	if err := json.Unmarshal([]byte(js), &rec); err != nil {
		t.Fatalf("rendered record is not JSON: %v", err)
	}
	return out, rec
}

// at returns the value at a dotted path of a rendered record.
func at(rec map[string]any, path string) any {
	var cur any = rec
	for _, p := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return "<missing>"
		}
		if cur, ok = m[p]; !ok {
			return "<missing>"
		}
	}
	return cur
}

func readEdX(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "edx", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// quirkList is nil-safe equality for quirk lists.
func sameQuirks(got, want []string) bool {
	if len(got) == 0 && len(want) == 0 {
		return true
	}
	return reflect.DeepEqual(got, want)
}

func TestEdXFixtures(t *testing.T) {
	type want map[string]any
	cases := []struct {
		file      string
		quirks    []string
		eventType string
		partition string
		clientAt  string // RFC 3339, "" for zero
		unknown   bool
		fields    want
	}{
		{
			file: "minimal.json", quirks: []string{"event_absent"},
			partition: "user2", clientAt: "2017-07-20T17:09:59.941616Z",
			fields: want{"username": "user2", "event_type": nil, "event_kind": "absent", "event_raw": nil,
				"event_json": nil, "context": nil, "time_raw": "2017-07-20T17:09:59.941616+00:00", "extra": map[string]any{}},
		},
		{
			file: "event_json_string_video.json", quirks: []string{"event_json_string"},
			eventType: "play_video", partition: "dummy_username_1", clientAt: "2014-05-02T16:44:35.901775Z",
			fields: want{"event_kind": "json_string", "event_source": "browser",
				"event_json": `{"id":"i4x-edX-DemoX-video-3cb54a11efae4ccc8a0aade24d14b255","currentTime":0,"code":"OEoXaMPEzfM"}`},
		},
		{
			file: "event_object_enrollment.json", eventType: "edx.course.enrollment.activated",
			partition: "anonymous", clientAt: "2014-04-18T17:09:59.941616Z",
			fields: want{"event_kind": "object", "page": nil, "ip": "", "host": "",
				"event_raw":                   `{"course_id": "edX/Open_DemoX/edx_demo_course", "user_id": 1, "mode": "honor"}`,
				"event_json":                  `{"course_id":"edX/Open_DemoX/edx_demo_course","user_id":1,"mode":"honor"}`,
				"context.command":             "./manage.py create_user",
				"context.course_id":           "edX/Open_DemoX/edx_demo_course",
				"context.user_id":             nil,
				"envelope.partition_key":      "anonymous",
				"envelope.event_type":         "edx.course.enrollment.activated",
				"context.extra":               map[string]any{},
				"context.module":              nil,
				"context.course_user_tags":    nil,
				"context.received_at":         nil,
				"context.received_at_raw":     nil,
				"context.enterprise_uuid":     nil,
				"context.open_in_browser_url": nil},
		},
		{
			file: "event_urlencoded_problem_check.json", quirks: []string{"event_urlencoded"},
			eventType: "problem_check", partition: "staff", clientAt: "2015-10-01T02:35:28.025574Z",
			fields: want{"event_kind": "urlencoded", "event_json": nil, "name": "problem_check"},
		},
		{
			file: "event_urlencoded_in_json_string.json", quirks: []string{"context_fields_at_top", "event_json_string", "event_urlencoded"},
			eventType: "problem_check", partition: "honor", clientAt: "2014-05-02T16:02:27.005314Z",
			fields: want{"event_kind": "urlencoded", "event_json": nil,
				"event_raw":     `"input_i4x-edX-E929-problem-17de162d435f4621ac451afb938ac8f7_2_1=choice_ipad"`,
				"context.extra": map[string]any{}, "context.user_id": float64(1)},
		},
		{
			file: "event_list_problem_graded.json", quirks: []string{"event_list"},
			eventType: "problem_graded", partition: "scooby", clientAt: "2016-09-06T04:57:10.44616Z",
			fields: want{"event_kind": "list"},
		},
		{
			file: "event_truncated_512.json", quirks: []string{"event_truncated_512"},
			eventType: "/xblock/i4x://edX/DemoX/video/8c0028eb2a724f48a074bc184cd8635f", partition: "staff",
			clientAt: "2015-04-13T18:31:52.935128Z",
			fields:   want{"event_kind": "truncated_json", "event_json": nil, "page": nil},
		},
		{
			file: "event_empty_page_close.json", quirks: []string{"context_fields_at_top", "event_empty"},
			eventType: "page_close", partition: "honor", clientAt: "2014-05-02T16:01:52.895722Z",
			fields: want{"event_kind": "empty", "event_raw": "", "event_json": nil},
		},
		{
			file: "user_id_empty.json", quirks: []string{"user_id_empty", "username_empty", "event_json_string"},
			eventType: "/", partition: "127.0.0.1", clientAt: "2014-04-18T19:11:52.941619Z",
			fields: want{"username": "", "context.user_id": nil, "event_json": `{"POST":{},"GET":{}}`},
		},
		{
			file: "extra_top_level_keys.json", quirks: []string{"event_json_string"},
			eventType: "edx.instructor.report.downloaded", partition: "audit", clientAt: "2015-10-02T21:02:08.521731Z",
			fields: want{"extra": map[string]any{"label": `"course-v1:edX+DemoX+Demo_Course"`, "nonInteraction": "1"}},
		},
		{
			file: "no_context_no_event.json", quirks: []string{"event_absent"},
			eventType: "other_event_type_c851532e9a61ad8167bdd846b531e39e", partition: "test 1", unknown: true,
			clientAt: "2013-12-16T08:37:02.269058Z",
			fields:   want{"context": nil, "event_kind": "absent", "ip": "127.0.0.1"},
		},
		{
			file: "jinja_time_placeholder.json", quirks: []string{"time_unparseable"},
			eventType: "edx.course.enrollment.activated", partition: "anonymous",
			fields: want{"time_raw": "{{ start_date }}T17:09:59.941616+00:00", "time": nil, "envelope.client_time": nil},
		},
		{
			file: "session_null.json", quirks: []string{"user_id_empty", "context_fields_at_top", "username_empty", "event_json_string"},
			eventType: "/", partition: "127.0.0.1", clientAt: "2014-05-02T15:49:30.886285Z",
			fields: want{"session": nil, "username": ""},
		},
		{
			file: "docs_escaped_slashes.json", quirks: []string{"event_json_string"},
			eventType: "edx.video.bumper.played", partition: "honor", clientAt: "2015-05-26T18:22:07.684172Z",
			fields: want{
				"agent":             "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:37.0) Gecko/20100101 Firefox/37.0",
				"context.course_id": "edX/DemoX.1/2015", "context.path": "/event",
				"event_json": `{"duration":10,"bumper_id":"http://www.w3schools.com/html/mov_bbb.webm","code":"html5","currentTime":0,"host_component_id":"i4x-edX-DemoX_1-video-4e2eeecf597040e3b5e1a27600bc8ddc"}`,
				"name":       "edx.video.bumper.played", "event_type": "edx.video.bumper.played"},
		},
		{
			file: "docs_problem_check_server.json", eventType: "problem_check", partition: "staff",
			clientAt: "2016-08-04T13:43:34.96798Z",
			fields: want{"event_kind": "object", "page": "x_module",
				"context.asides":                    "{}",
				"context.course_user_tags":          map[string]any{},
				"context.module.usage_key":          "block-v1:edX+DemoX+Demo_Course+type@problem+block@29c5cbd840324d94be8ba51db1864277",
				"context.module.display_name":       "Checkboxes with Hints and Feedback",
				"context.module.original_usage_key": nil,
				"context.module.extra":              map[string]any{}},
		},
		{
			file: "docs_partial_no_time.json", quirks: []string{"time_absent"},
			eventType: "edx.ui.lms.outline.selected", partition: "anonymous",
			fields: want{"time_raw": "", "time": nil, "username": nil, "event_kind": "object"},
		},
		{
			file: "docs_mobile_no_fraction_derived.json", quirks: []string{"event_json_string", "time_no_fraction"},
			eventType: "edx.video.played", partition: "AAAAAAAAAA", clientAt: "2014-12-09T03:57:24Z",
			fields: want{"event_source": "mobile", "session": "", "ip": "",
				"context.application":     `{"name":"edx.mobileapp.android","version":"0.1.8"}`,
				"context.component":       "videoplayer",
				"context.received_at_raw": "2014-12-09T03:57:56.373000+00:00",
				"context.received_at":     "2014-12-09T03:57:56.373Z",
				"context.user_id":         float64(99999999),
				"envelope.sent_time":      nil},
		},
		{
			file: "time_naive_derived.json", quirks: []string{"event_json_string", "time_naive"},
			eventType: "play_video", partition: "dummy_username_1", clientAt: "2013-12-17T15:38:32.805444Z",
			fields: want{"time_raw": "2013-12-17T15:38:32.805444"},
		},
		{
			file: "time_z_derived.json", quirks: []string{"event_json_string", "time_z"},
			eventType: "play_video", partition: "dummy_username_1", clientAt: "2023-08-22T20:16:25.500832Z",
		},
		{
			file: "erb_envelope_video_cc_shown.json", quirks: []string{"envelope_shape"},
			eventType: "edx.video.closed_captions.shown", partition: "test", clientAt: "2022-11-16T08:05:01.963139Z",
			fields: want{"username": "test", "session": "95522acebdda19758bd98a456a640afa", "ip": "172.20.0.1",
				"host": "localhost:18000", "event_source": "browser", "event_type": "edx.video.closed_captions.shown",
				"name": "edx.video.closed_captions.shown", "accept_language": "en-US,en;q=0.9",
				"time_raw":      "2022-11-16T08:05:01.963139+00:00",
				"event_kind":    "object",
				"event_json":    `{"id":"0b9e39477cf34507a7a48f74be381fdd","code":"html5","duration":194,"current_time":19.133524}`,
				"context.extra": map[string]any{"client_id": `"1309536091.1619499525"`},
				"extra":         map[string]any{}},
		},
		{
			file: "erb_envelope_enrollment_activated.json", quirks: []string{"envelope_shape"},
			eventType: "edx.course.enrollment.activated", partition: "edx", clientAt: "2020-07-15T06:36:01.917775Z",
			fields: want{"username": "edx", "event_source": nil, "page": nil,
				"context.extra": map[string]any{"client_id": "null", "Password": `"xyz"`},
				"extra":         map[string]any{"Password": `"xyz"`},
				"event_json":    `{"course_id":"course-v1:edX+DemoX+Demo_Course","mode":"audit","user_id":3,"Password":"xyz"}`},
		},
	}
	for _, tc := range cases {
		t.Run(strings.TrimSuffix(tc.file, ".json"), func(t *testing.T) {
			raw := readEdX(t, tc.file)
			out, rec := edxRendered(t, raw, Meta{})
			if !sameQuirks(out.Quirks, tc.quirks) {
				t.Errorf("quirks = %q, want %q", out.Quirks, tc.quirks)
			}
			if got := at(rec, "envelope.quirks"); !reflect.DeepEqual(got, toAnySlice(out.Quirks)) {
				t.Errorf("envelope.quirks = %v", got)
			}
			if out.EventType != tc.eventType {
				t.Errorf("EventType = %q, want %q", out.EventType, tc.eventType)
			}
			if out.PartitionKey != tc.partition {
				t.Errorf("PartitionKey = %q, want %q", out.PartitionKey, tc.partition)
			}
			if out.Unknown != tc.unknown {
				t.Errorf("Unknown = %v, want %v", out.Unknown, tc.unknown)
			}
			gotAt := ""
			if !out.ClientTime.IsZero() {
				gotAt = out.ClientTime.Format(time.RFC3339Nano)
			}
			if gotAt != tc.clientAt {
				t.Errorf("ClientTime = %q, want %q", gotAt, tc.clientAt)
			}
			if !out.SentTime.IsZero() || out.EventID != "" {
				t.Errorf("SentTime %v EventID %q, want zero", out.SentTime, out.EventID)
			}
			for path, w := range tc.fields {
				if g := at(rec, path); !reflect.DeepEqual(g, w) {
					t.Errorf("%s = %#v, want %#v", path, g, w)
				}
			}
			// event_json, when set, is the event member decoded.
			if ej, ok := at(rec, "event_json").(string); ok {
				var a any
				if err := json.Unmarshal([]byte(ej), &a); err != nil {
					t.Errorf("event_json is not JSON: %v", err)
				}
			}
		})
	}
}

func toAnySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// TestEdXSampleFiles adapts every line of every edx-analytics-pipeline
// acceptance fixture: each JSON-object line must be accepted and encode;
// comment and blank lines are not objects (the gateway reports those).
func TestEdXSampleFiles(t *testing.T) {
	type counts struct{ lines, objects, accepted int }
	want := map[string]counts{
		"active_users_tracking.log":                           {23, 23, 23},
		"answer_dist_acceptance_tracking.log":                 {693, 693, 693},
		"enrollment_trends_tracking.log":                      {15, 15, 15},
		"enrollment_validation_trends_tracking.log.j2":        {13, 13, 13},
		"event_export_tracking.log":                           {15, 15, 15},
		"lms_courseware_link_clicked_acceptance_tracking.log": {20, 20, 20},
		"location_by_course_tracking.log":                     {74, 74, 74},
		"module_engagement_acceptance_empty.log":              {0, 0, 0},
		"module_engagement_acceptance_tracking_20150413.log":  {68, 68, 68},
		"module_engagement_acceptance_tracking_20150416.log":  {126, 126, 126},
		"obfuscation_tracking.log":                            {17, 17, 17},
		"problem_response_tracking.log":                       {846, 846, 846},
		"student_engagement_acceptance_tracking.log":          {304, 226, 226},
		"student_forum_activity.log":                          {25, 13, 13},
		"tags_dist_acceptance_tracking.log":                   {117, 117, 117},
		"user_activity_tracking.log":                          {207, 207, 207},
		"video_timeline.log":                                  {29, 18, 18},
	}
	files, err := filepath.Glob(filepath.Join("testdata", "edx", "eap", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Fatalf("found %d files, want %d", len(files), len(want))
	}
	kinds := map[string]int{}
	quirks := map[string]int{}
	total := 0
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
			var got counts
			for sc.Scan() {
				got.lines++
				line := bytes.Clone(sc.Bytes())
				m := edxDecode(line)
				if m == nil {
					if s := bytes.TrimSpace(line); len(s) > 0 && s[0] != '#' {
						t.Errorf("line %d: not a comment, blank line or object: %.80s", got.lines, line)
					}
					continue
				}
				got.objects++
				out, rej := EdX{}.Adapt(&Input{Raw: line, Value: m})
				if rej != nil {
					t.Errorf("line %d rejected: %v", got.lines, rej)
					continue
				}
				rendered := mustEncode(t, event.EdX, out)
				got.accepted++
				var rec map[string]any
				if err := json.Unmarshal([]byte(rendered), &rec); err != nil {
					t.Fatalf("line %d: %v", got.lines, err)
				}
				kind := rec["event_kind"].(string)
				kinds[kind]++
				for _, q := range out.Quirks {
					quirks[q]++
				}
				if out.Unknown {
					quirks["(unknown type)"]++
				}
				// The sliced event text is the decoded event.
				if kind == "object" || kind == "list" {
					if !reflect.DeepEqual(edxDecodeAny(t, rec["event_json"].(string)), m["event"]) {
						t.Errorf("line %d: event_json differs from the event", got.lines)
					}
					if !reflect.DeepEqual(edxDecodeAny(t, rec["event_raw"].(string)), m["event"]) {
						t.Errorf("line %d: event_raw differs from the event", got.lines)
					}
				}
			}
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d lines, %d JSON objects, %d accepted", got.lines, got.objects, got.accepted)
			if got != want[name] {
				t.Errorf("counts (lines, objects, accepted) = %v, want %v", got, want[name])
			}
			total += got.accepted
		})
	}
	if total != 2491 {
		t.Errorf("accepted %d lines in all, want 2491", total)
	}
	wantKinds := map[string]int{"object": 459, "json_string": 1789, "urlencoded": 121, "list": 25,
		"empty": 34, "truncated_json": 23, "absent": 40}
	if !reflect.DeepEqual(kinds, wantKinds) {
		t.Errorf("event kinds = %v, want %v", kinds, wantKinds)
	}
	t.Logf("event kinds: %v", kinds)
	t.Logf("quirks: %v", sortedCounts(quirks))
}

func edxDecodeAny(t *testing.T, s string) any {
	t.Helper()
	dec := gojson.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %.80s: %v", s, err)
	}
	return v
}

func sortedCounts(m map[string]int) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+strconv.Itoa(v))
	}
	sort.Strings(out)
	return out
}

const edxBase = `"username":"u1","event_type":"t","time":"2014-12-09T03:57:24.123456+00:00"`

func TestEdXRejections(t *testing.T) {
	cases := []struct {
		name, body, code, field string
		strict                  bool
	}{
		{"context number", `{` + edxBase + `,"context":5}`, event.ReasonInvalidField, "context", false},
		{"context string", `{` + edxBase + `,"context":"course_id"}`, event.ReasonInvalidField, "context", false},
		{"username object", `{"username":{"a":1},"event_type":"t","time":"2014-12-09T03:57:24+00:00"}`, event.ReasonInvalidField, "username", false},
		{"event_type number", `{"username":"u","event_type":5,"time":"2014-12-09T03:57:24+00:00"}`, event.ReasonInvalidField, "event_type", false},
		{"name list", `{` + edxBase + `,"name":["x"]}`, event.ReasonInvalidField, "name", false},
		{"ip bool", `{` + edxBase + `,"ip":true}`, event.ReasonInvalidField, "ip", false},
		{"page number", `{` + edxBase + `,"page":1}`, event.ReasonInvalidField, "page", false},
		{"time number", `{"username":"u","event_type":"t","time":1418097444}`, event.ReasonInvalidField, "time", false},
		{"event number", `{` + edxBase + `,"event":5}`, event.ReasonInvalidField, "event", false},
		{"event bool", `{` + edxBase + `,"event":false}`, event.ReasonInvalidField, "event", false},
		{"user_id bool", `{` + edxBase + `,"context":{"user_id":true}}`, event.ReasonInvalidField, "context.user_id", false},
		{"user_id fraction", `{` + edxBase + `,"context":{"user_id":1.5}}`, event.ReasonInvalidField, "context.user_id", false},
		{"user_id object", `{` + edxBase + `,"context":{"user_id":{}}}`, event.ReasonInvalidField, "context.user_id", false},
		{"course_id number", `{` + edxBase + `,"context":{"course_id":7}}`, event.ReasonInvalidField, "context.course_id", false},
		{"module string", `{` + edxBase + `,"context":{"module":"m"}}`, event.ReasonInvalidField, "context.module", false},
		{"module usage_key", `{` + edxBase + `,"context":{"module":{"usage_key":1}}}`, event.ReasonInvalidField, "context.module.usage_key", false},
		{"course_user_tags value", `{` + edxBase + `,"context":{"course_user_tags":{"xyz_partition":3}}}`, event.ReasonInvalidField, "context.course_user_tags.xyz_partition", false},
		{"course_user_tags list", `{` + edxBase + `,"context":{"course_user_tags":[]}}`, event.ReasonInvalidField, "context.course_user_tags", false},
		{"received_at number", `{` + edxBase + `,"context":{"received_at":5}}`, event.ReasonInvalidField, "context.received_at", false},
		{"context username object", `{"event_type":"t","time":"2014-12-09T03:57:24+00:00","context":{"username":{}}}`, event.ReasonInvalidField, "context.username", false},
		{"envelope data number", `{"name":"x","timestamp":"2014-12-09T03:57:24+00:00","data":5}`, event.ReasonInvalidField, "data", false},
		{"envelope timestamp number", `{"name":"x","timestamp":5,"data":{}}`, event.ReasonInvalidField, "timestamp", false},
		{"not edX", `{"foo":1}`, event.ReasonMissingField, "event_type", false},
		{"only username", `{"username":"u"}`, event.ReasonMissingField, "event_type", false},
		{"strict unknown", `{` + edxBase + `}`, event.ReasonUnknownType, "event_type", true},
		{"strict unknown name", `{` + edxBase + `,"name":"x.y"}`, event.ReasonUnknownType, "name", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, rej := edxAdaptBytes(t, []byte(tc.body), Meta{Strict: tc.strict})
			if rej == nil {
				t.Fatalf("accepted: %+v", out)
			}
			if rej.Code != tc.code || rej.Field != tc.field {
				t.Errorf("rejection = %s %q (%s), want %s %q", rej.Code, rej.Field, rej.Message, tc.code, tc.field)
			}
			if rej.Message == "" {
				t.Error("empty message")
			}
		})
	}
}

func TestEdXStrictKnownTypes(t *testing.T) {
	for _, body := range []string{
		`{"username":"u","event_type":"play_video","time":"2014-12-09T03:57:24+00:00"}`,
		`{"username":"u","event_type":"/courses/course-v1:a+b+c/courseware","time":"2014-12-09T03:57:24+00:00"}`,
		`{"username":"u","event_type":"play_video","name":"edx.video.played","time":"2014-12-09T03:57:24+00:00"}`,
		`{"username":"u","time":"2014-12-09T03:57:24+00:00"}`,
	} {
		out, rej := edxAdaptBytes(t, []byte(body), Meta{Strict: true})
		if rej != nil || out.Unknown {
			t.Errorf("%s: rejection %v, unknown %v", body, rej, out != nil && out.Unknown)
		}
	}
	out, rej := edxAdaptBytes(t, []byte(`{`+edxBase+`}`), Meta{})
	if rej != nil || !out.Unknown {
		t.Errorf("non-strict unknown type: rejection %v, unknown %v", rej, out != nil && out.Unknown)
	}
}

func TestEdXTimeForms(t *testing.T) {
	cases := []struct {
		time   string
		quirks []string
		want   string // RFC 3339 UTC, "" for null
	}{
		{"2014-12-09T03:57:24.123456+00:00", nil, "2014-12-09T03:57:24.123456Z"},
		{"2014-12-09T03:57:24+00:00", []string{"time_no_fraction"}, "2014-12-09T03:57:24Z"},
		{"2013-12-17T15:38:32.805444", []string{"time_naive"}, "2013-12-17T15:38:32.805444Z"},
		{"2013-12-17T15:38:32", []string{"time_no_fraction", "time_naive"}, "2013-12-17T15:38:32Z"},
		{"2023-08-22T20:16:25.500832Z", []string{"time_z"}, "2023-08-22T20:16:25.500832Z"},
		{"2023-05-12 20:55:53.096285+00:00", []string{"time_space_separator"}, "2023-05-12T20:55:53.096285Z"},
		{"2015-04-14T20:42:49+0100", []string{"time_no_fraction", "time_offset_no_colon"}, "2015-04-14T19:42:49Z"},
		{"2015-04-14T20:42:49.5-05:30", nil, "2015-04-15T02:12:49.5Z"},
		{"2023-05-23 13:53:13,461", []string{"time_naive", "time_space_separator", "time_comma_fraction"}, "2023-05-23T13:53:13.461Z"},
		{"2016-02-29T00:00:00.1+00:00", nil, "2016-02-29T00:00:00.1Z"},
		{"{{ start_date }}T17:09:59.941616+00:00", []string{"time_unparseable"}, ""},
		{"2015-02-29T00:00:00+00:00", []string{"time_unparseable"}, ""},
		{"2014-12-09T25:57:24+00:00", []string{"time_unparseable"}, ""},
		{"2014-12-09T03:57:24.+00:00", []string{"time_unparseable"}, ""},
		{"2014-12-09T03:57:24.123456+00:00 ", []string{"time_unparseable"}, ""},
		{"1418097444", []string{"time_unparseable"}, ""},
		{"", []string{"time_unparseable"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.time, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"username": "u", "event_type": "play_video", "time": tc.time, "event": map[string]any{}})
			out, rec := edxRendered(t, body, Meta{})
			if !sameQuirks(out.Quirks, tc.quirks) {
				t.Errorf("quirks = %q, want %q", out.Quirks, tc.quirks)
			}
			if rec["time_raw"] != tc.time {
				t.Errorf("time_raw = %v", rec["time_raw"])
			}
			got := ""
			if !out.ClientTime.IsZero() {
				got = out.ClientTime.Format(time.RFC3339Nano)
				if rec["time"] != got {
					t.Errorf("time field = %v, ClientTime %s", rec["time"], got)
				}
			} else if rec["time"] != nil {
				t.Errorf("time field = %v, want null", rec["time"])
			}
			if got != tc.want {
				t.Errorf("time = %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("absent", func(t *testing.T) {
		out, rec := edxRendered(t, []byte(`{"event_type":"play_video","time":null}`), Meta{})
		if !sameQuirks(out.Quirks, []string{"event_absent", "time_absent"}) || rec["time_raw"] != "" || rec["time"] != nil {
			t.Errorf("quirks %q time_raw %v time %v", out.Quirks, rec["time_raw"], rec["time"])
		}
	})
}

func TestEdXEventKinds(t *testing.T) {
	s512 := `{"POST": {"a": "` + strings.Repeat("x", 512-len(`{"POST": {"a": "`)) // 512 characters, cut
	s512u := `{"GET": {"q": "` + strings.Repeat("é", 512-len(`{"GET": {"q": "`))  // 512 runes, more bytes
	cases := []struct {
		name   string
		event  any // marshalled into the line; absentEvent for none
		kind   string
		json   any // event_json, nil for null
		quirks []string
	}{
		{"object", map[string]any{"a": 1}, "object", `{"a":1}`, nil},
		{"empty object", map[string]any{}, "object", `{}`, nil},
		{"list", []any{"a=1", "<p>"}, "list", `["a=1","\u003cp\u003e"]`, []string{"event_list"}}, // as escaped by encoding/json
		{"json string", `{"id": "x", "currentTime": 2.5}`, "json_string", `{"id":"x","currentTime":2.5}`, []string{"event_json_string"}},
		{"page_close {}", `{}`, "json_string", `{}`, []string{"event_json_string"}},
		{"json string list", `["a=1","b"]`, "json_string", `["a=1","b"]`, []string{"event_json_string"}},
		{"double encoded object", `"{\"a\":1}"`, "json_string", `{"a":1}`, []string{"event_json_string", "event_double_encoded"}},
		{"json string of url form", `"input_1=choice_0&input_2=x"`, "urlencoded", nil, []string{"event_json_string", "event_urlencoded"}},
		{"json string of empty", `""`, "empty", nil, []string{"event_json_string", "event_empty"}},
		{"urlencoded", "input_3fc5_2_1%5B%5D=choice_0&input_3fc5_2_1%5B%5D=choice_1", "urlencoded", nil, []string{"event_urlencoded"}},
		{"urlencoded plus", "input_a=4500&input_b=hello+world&c=", "urlencoded", nil, []string{"event_urlencoded"}},
		{"empty", "", "empty", nil, []string{"event_empty"}},
		{"null", nil, "null", nil, []string{"event_null"}},
		{"truncated 512", s512, "truncated_json", nil, []string{"event_truncated_512"}},
		{"truncated 512 runes", s512u, "truncated_json", nil, []string{"event_truncated_512"}},
		{"invalid json other length", `{"POST": {"a"`, "truncated_json", nil, []string{"event_invalid_json"}},
		{"plain", "hello world", "plain_string", nil, []string{"event_plain_string"}},
		{"plain number text", "123", "plain_string", nil, []string{"event_plain_string"}},
		{"bad percent", "a=%zz", "plain_string", nil, []string{"event_plain_string"}},
		{"no key", "=x", "plain_string", nil, []string{"event_plain_string"}},
		{"spaces", "   ", "plain_string", nil, []string{"event_plain_string"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			line := map[string]any{"username": "u", "event_type": "problem_check", "time": "2014-12-09T03:57:24.123456+00:00", "event": tc.event}
			body, err := json.Marshal(line)
			if err != nil {
				t.Fatal(err)
			}
			out, rec := edxRendered(t, body, Meta{})
			if rec["event_kind"] != tc.kind {
				t.Errorf("event_kind = %v, want %s", rec["event_kind"], tc.kind)
			}
			if !reflect.DeepEqual(rec["event_json"], tc.json) {
				t.Errorf("event_json = %#v, want %#v", rec["event_json"], tc.json)
			}
			if !sameQuirks(out.Quirks, tc.quirks) {
				t.Errorf("quirks = %q, want %q", out.Quirks, tc.quirks)
			}
			// event_raw: the string itself, or the exact JSON text.
			switch e := tc.event.(type) {
			case string:
				if rec["event_raw"] != e {
					t.Errorf("event_raw = %#v", rec["event_raw"])
				}
			case nil:
				if rec["event_raw"] != nil {
					t.Errorf("event_raw = %#v", rec["event_raw"])
				}
			}
		})
	}
}

func TestEdXRawSlicing(t *testing.T) {
	// Pretty-printed, escaped keys, duplicate keys (the decoder keeps the
	// last), HTML characters and \/ escapes are kept exactly in event_raw.
	body := "{\n  \"username\": \"u\",\n  \"event_type\": \"problem_check\",\n  \"time\": \"2014-12-09T03:57:24.123456+00:00\",\n" +
		"  \"event\": {\"a\": 1},\n  \"\\u0065vent\": { \"b\" : \"<a href=\\\"http:\\/\\/x\\/\\\">&</a>\" },\n" +
		"  \"label\": [1, 2.50, {\"k\": null}],\n  \"context\": {\"client\": {\"z\": 1, \"a\": [true]}, \"asides\": {}}\n}\n"
	out, rec := edxRendered(t, []byte(body), Meta{})
	if len(out.Quirks) != 0 {
		t.Errorf("quirks = %q", out.Quirks)
	}
	if want := `{ "b" : "<a href=\"http:\/\/x\/\">&</a>" }`; rec["event_raw"] != want {
		t.Errorf("event_raw = %s, want %s", rec["event_raw"], want)
	}
	if want := `{"b":"<a href=\"http:\/\/x\/\">&</a>"}`; rec["event_json"] != want {
		t.Errorf("event_json = %s, want %s", rec["event_json"], want)
	}
	if want := (map[string]any{"label": `[1,2.50,{"k":null}]`}); !reflect.DeepEqual(rec["extra"], want) {
		t.Errorf("extra = %v", rec["extra"])
	}
	if got := at(rec, "context.client"); got != `{"z":1,"a":[true]}` {
		t.Errorf("context.client = %v", got)
	}

	// Raw that is not exactly the object (e.g. a log prefix kept by the
	// caller) falls back to marshalling the decoded value.
	m := edxDecode([]byte(`{"username":"u","event_type":"x","time":"2014-12-09T03:57:24.123456+00:00","event":{"b":2,"a":"<"}}`))
	out, rej := EdX{}.Adapt(&Input{Raw: []byte(`prefix {"event":{}}`), Value: m})
	if rej != nil {
		t.Fatal(rej)
	}
	var rec2 map[string]any
	_ = json.Unmarshal([]byte(mustEncode(t, event.EdX, out)), &rec2)
	if rec2["event_json"] != `{"a":"<","b":2}` || rec2["event_raw"] != rec2["event_json"] {
		t.Errorf("fallback event_json = %v, event_raw = %v", rec2["event_json"], rec2["event_raw"])
	}
}

func TestEdXUserID(t *testing.T) {
	cases := []struct {
		ctx       string
		want      any
		quirks    []string
		partition string
	}{
		{`{"user_id": 42}`, float64(42), nil, "42"},
		{`{"user_id": 1e3}`, float64(1000), nil, "1000"},
		{`{"user_id": "6"}`, "6", []string{"user_id_string"}, "6"},
		{`{"user_id": "abc"}`, "abc", []string{"user_id_string"}, "abc"},
		{`{"user_id": ""}`, nil, []string{"user_id_empty"}, "anonymous"},
		{`{"user_id": null}`, nil, nil, "anonymous"},
		{`{}`, nil, nil, "anonymous"},
	}
	for _, tc := range cases {
		t.Run(tc.ctx, func(t *testing.T) {
			body := `{"username":"","event_type":"play_video","time":"2014-12-09T03:57:24.123456+00:00","event":{},"context":` + tc.ctx + `}`
			out, rec := edxRendered(t, []byte(body), Meta{})
			if got := at(rec, "context.user_id"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("user_id = %#v, want %#v", got, tc.want)
			}
			if !sameQuirks(out.Quirks, append(tc.quirks, "username_empty")) {
				t.Errorf("quirks = %q", out.Quirks)
			}
			if out.PartitionKey != tc.partition {
				t.Errorf("PartitionKey = %q, want %q", out.PartitionKey, tc.partition)
			}
		})
	}
}

func TestEdXPartitionKey(t *testing.T) {
	cases := []struct{ body, want string }{
		{`{"username":"alice","session":"s1","ip":"1.2.3.4","time":"2014-12-09T03:57:24+00:00"}`, "alice"},
		{`{"username":"","session":"s1","ip":"1.2.3.4","time":"2014-12-09T03:57:24+00:00"}`, "s1"},
		{`{"username":"","session":"","ip":"1.2.3.4","time":"2014-12-09T03:57:24+00:00","context":{"user_id":7}}`, "7"},
		{`{"username":"","ip":"1.2.3.4","time":"2014-12-09T03:57:24+00:00"}`, "1.2.3.4"},
		{`{"username":"","ip":"","time":"2014-12-09T03:57:24+00:00"}`, "anonymous"},
	}
	for _, tc := range cases {
		out, rej := edxAdaptBytes(t, []byte(tc.body), Meta{})
		if rej != nil {
			t.Fatal(rej)
		}
		if out.PartitionKey != tc.want {
			t.Errorf("%s: PartitionKey = %q, want %q", tc.body, out.PartitionKey, tc.want)
		}
	}
}

func TestEdXContextFields(t *testing.T) {
	t.Run("moved when missing at top, kept when different", func(t *testing.T) {
		body := `{"event_type":"x","time":"2014-12-09T03:57:24.123456+00:00","event":{},"ip":"1.1.1.1",` +
			`"context":{"username":"bob","ip":"2.2.2.2","host":"h","session":null,"client_id":"c","course_id":"","org_id":"","path":"/p"}}`
		out, rec := edxRendered(t, []byte(body), Meta{})
		if !sameQuirks(out.Quirks, []string{"context_fields_at_top"}) {
			t.Errorf("quirks = %q", out.Quirks)
		}
		for path, w := range map[string]any{
			"username": "bob", "ip": "1.1.1.1", "host": "h", "session": nil,
			"context.extra": map[string]any{"ip": `"2.2.2.2"`, "client_id": `"c"`},
		} {
			if g := at(rec, path); !reflect.DeepEqual(g, w) {
				t.Errorf("%s = %#v, want %#v", path, g, w)
			}
		}
	})
	t.Run("event-tracking context in envelope shape", func(t *testing.T) {
		body := `{"name":"edx.ui.lms.link_clicked","data":{"current_url":"u"},"context":{"event_type":"legacy","timestamp":"2014-12-09T03:57:24+00:00","username":"u"}}`
		out, rec := edxRendered(t, []byte(body), Meta{})
		if !sameQuirks(out.Quirks, []string{"envelope_shape", "time_no_fraction"}) {
			t.Errorf("quirks = %q", out.Quirks)
		}
		if out.EventType != "edx.ui.lms.link_clicked" || rec["event_type"] != "legacy" || rec["time_raw"] != "2014-12-09T03:57:24+00:00" ||
			!reflect.DeepEqual(at(rec, "context.extra"), map[string]any{}) {
			t.Errorf("EventType %q, record %v", out.EventType, rec)
		}
	})
	t.Run("module extra and JSON text members", func(t *testing.T) {
		body := `{"event_type":"x","time":"2014-12-09T03:57:24.123456+00:00","event":{},` +
			`"context":{"module":{"display_name":"D","original_usage_key":"k","original_usage_version":"v","position":3},` +
			`"application":{"name":"edx.mobileapp.iOS","version":"2.0"},"course_user_tags":{"xblock.partition_service.partition_0":"1"},` +
			`"label":"L","open_in_browser_url":"http://x","received_at":"soon","enterprise_uuid":""}}`
		out, rec := edxRendered(t, []byte(body), Meta{})
		if !sameQuirks(out.Quirks, []string{"received_at_unparseable"}) {
			t.Errorf("quirks = %q", out.Quirks)
		}
		for path, w := range map[string]any{
			"context.module.display_name": "D", "context.module.usage_key": nil, "context.module.original_usage_version": "v",
			"context.module.extra":     map[string]any{"position": "3"},
			"context.application":      `{"name":"edx.mobileapp.iOS","version":"2.0"}`,
			"context.course_user_tags": map[string]any{"xblock.partition_service.partition_0": "1"},
			"context.label":            "L", "context.open_in_browser_url": "http://x",
			"context.received_at_raw": "soon", "context.received_at": nil, "context.enterprise_uuid": "",
		} {
			if g := at(rec, path); !reflect.DeepEqual(g, w) {
				t.Errorf("%s = %#v, want %#v", path, g, w)
			}
		}
	})
	t.Run("context null", func(t *testing.T) {
		_, rec := edxRendered(t, []byte(`{"event_type":"x","time":"2014-12-09T03:57:24.123456+00:00","event":{},"context":null}`), Meta{})
		if rec["context"] != nil {
			t.Errorf("context = %v", rec["context"])
		}
	})
}

func TestEdXAgentMojibake(t *testing.T) {
	cases := []struct{ agent, want string }{
		{"Mozilla/5.0 (FBCR/OrangeEspa\u00c3\u00b1a)", "Mozilla/5.0 (FBCR/OrangeEspaña)"},
		{"Mozilla/5.0 (FBCR/OrangeEspa\u00f1a)", "Mozilla/5.0 (FBCR/OrangeEspa\u00f1a)"}, // real latin-1 ñ: not UTF-8 bytes
		{"Mozilla/5.0 中文", "Mozilla/5.0 中文"},
		{"Mozilla/5.0", "Mozilla/5.0"},
	}
	for _, tc := range cases {
		body, _ := json.Marshal(map[string]any{"username": "u", "event_type": "x", "time": "2014-12-09T03:57:24.123456+00:00", "event": map[string]any{}, "agent": tc.agent})
		out, rec := edxRendered(t, body, Meta{})
		if rec["agent"] != tc.want {
			t.Errorf("agent = %q, want %q", rec["agent"], tc.want)
		}
		fixed := tc.want != tc.agent
		if has := len(out.Quirks) == 1 && out.Quirks[0] == "agent_mojibake"; has != fixed {
			t.Errorf("%q: quirks = %q", tc.agent, out.Quirks)
		}
	}
}

func TestEdXMetaUsername(t *testing.T) {
	const line = `"event_type":"x","time":"2014-12-09T03:57:24.123456+00:00","event":{}`
	out, rec := edxRendered(t, []byte(`{`+line+`}`), Meta{Username: "vouched"})
	if rec["username"] != "vouched" || !sameQuirks(out.Quirks, []string{"username_from_request"}) || out.PartitionKey != "vouched" {
		t.Errorf("absent: username %v quirks %q", rec["username"], out.Quirks)
	}
	out, rec = edxRendered(t, []byte(`{"username":"claimed",`+line+`}`), Meta{Username: "vouched"})
	if rec["username"] != "vouched" || !sameQuirks(out.Quirks, []string{"username_overridden"}) ||
		!reflect.DeepEqual(rec["extra"], map[string]any{"username": `"claimed"`}) {
		t.Errorf("different: username %v quirks %q extra %v", rec["username"], out.Quirks, rec["extra"])
	}
	out, _ = edxRendered(t, []byte(`{"username":"vouched",`+line+`}`), Meta{Username: "vouched"})
	if len(out.Quirks) != 0 {
		t.Errorf("same: quirks %q", out.Quirks)
	}
}

func TestEdXEventID(t *testing.T) {
	out, rec := edxRendered(t, []byte(`{"event_id":"0190b3c6-aaaa-7bbb-8ccc-000000000001","id":"no","event_type":"x","time":"2014-12-09T03:57:24+00:00"}`), Meta{})
	if out.EventID != "0190b3c6-aaaa-7bbb-8ccc-000000000001" {
		t.Errorf("EventID = %q", out.EventID)
	}
	if !reflect.DeepEqual(rec["extra"], map[string]any{"event_id": `"0190b3c6-aaaa-7bbb-8ccc-000000000001"`, "id": `"no"`}) {
		t.Errorf("extra = %v", rec["extra"])
	}
}

// edxFuzzCodec is the composed edX codec, built once for the fuzzer.
var edxFuzzCodec = sync.OnceValues(func() (*avro.Codec, error) {
	text, err := schemas.Latest(string(event.EdX))
	if err != nil {
		return nil, err
	}
	return avro.NewCodec(text)
})

func FuzzEdXAdapt(f *testing.F) {
	for _, name := range []string{"minimal.json", "event_urlencoded_in_json_string.json", "erb_envelope_video_cc_shown.json", "docs_escaped_slashes.json", "event_truncated_512.json"} {
		f.Add(readEdX(f, name))
	}
	f.Add([]byte(`{"time":"2014-12-09 03:57:24,5","event":"\"\\\"x\\\"\"","context":{"user_id":"","module":{}}}`))
	f.Add([]byte(`{"name":"n","data":[1],"context":{"timestamp":"x","ip":null}}`))
	f.Add([]byte(`{"event_type":"a","event":"{\"a\":","\u0065vent":"","agent":"\u00c3\u00a9"}`))
	codec, err := edxFuzzCodec()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := edxDecode(raw)
		if m == nil {
			return
		}
		out, rej := EdX{}.Adapt(&Input{Raw: raw, Value: m})
		if rej != nil {
			if rej.Code == "" || rej.Message == "" {
				t.Fatalf("incomplete rejection %+v", rej)
			}
			return
		}
		rec := make(map[string]any, len(out.Fields)+2)
		for k, v := range out.Fields {
			rec[k] = v
		}
		rec["envelope"] = avro.EnvelopeNative(&event.Envelope{EventID: "x", Family: event.EdX, EventType: out.EventType,
			ClientTime: out.ClientTime, PartitionKey: out.PartitionKey, Quirks: out.Quirks, BatchIndex: -1})
		rec["enrichment"] = nil
		if _, err := codec.Encode(nil, rec); err != nil {
			t.Fatalf("encoding: %v\ninput: %q", err, raw)
		}
		if out.PartitionKey == "" {
			t.Fatal("empty partition key")
		}
	})
}

// BenchmarkEdXAdapt adapts and encodes a 1.4 KB implicit server event
// (512-char truncated event string) and a 3 KB pretty-printed server
// problem_check with an object event.
func BenchmarkEdXAdapt(b *testing.B) {
	codec, err := edxFuzzCodec()
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"event_truncated_512.json", "event_urlencoded_problem_check.json", "docs_problem_check_server.json"} {
		raw := readEdX(b, name)
		m := edxDecode(raw)
		env := avro.EnvelopeNative(&event.Envelope{EventID: "x", Family: event.EdX, BatchIndex: -1})
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			var buf []byte
			for b.Loop() {
				out, rej := EdX{}.Adapt(&Input{Raw: raw, Value: m})
				if rej != nil {
					b.Fatal(rej)
				}
				out.Fields["envelope"] = env
				out.Fields["enrichment"] = nil
				if buf, err = codec.Encode(buf[:0], out.Fields); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/adapt-only", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, rej := (EdX{}).Adapt(&Input{Raw: raw, Value: m}); rej != nil {
					b.Fatal(rej)
				}
			}
		})
	}
}

// TestEdXRawMembers checks the raw-span scanner the adapter slices JSON
// text with (jsonget.go).
func TestEdXRawMembers(t *testing.T) {
	cases := []struct {
		raw  string
		ok   bool
		want map[string]string
	}{
		{`{"a":"x\\","b":1}`, true, map[string]string{"a": `"x\\"`, "b": `1`}},
		{`{"a":"\"","b":[1,"]",{"c":"}"}]}`, true, map[string]string{"a": `"\""`, "b": `[1,"]",{"c":"}"}]`}},
		{" {\"k\\u0065y\" : {\"x\":\"}\"} ,\n\"n\":-1.5e3}\n", true, map[string]string{"key": `{"x":"}"}`, "n": `-1.5e3`}},
		{`{"a":1,"a":2}`, true, map[string]string{"a": `2`}},
		{`{}`, true, map[string]string{"a": ``}},
		{`[1]`, false, nil},
		{`{"a":1} x`, false, nil},
		{`{"a":1`, false, nil},
		{`{"a":"1}`, false, nil},
		{`prefix {"a":1}`, false, nil},
	}
	for _, tc := range cases {
		ms, ok := rawMembers([]byte(tc.raw), nil)
		if ok != tc.ok {
			t.Errorf("%q: ok = %v", tc.raw, ok)
			continue
		}
		for k, w := range tc.want {
			if got := string(rawLookup(ms, k)); got != w {
				t.Errorf("%q: %s = %q, want %q", tc.raw, k, got, w)
			}
		}
	}
}

// TestFastValid: fastValid refuses what the decoder refuses that
// sonic.Valid lets through (control characters, bad escapes), at every
// position of the eight-byte steps.
func TestFastValid(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{`{"a":"b"}`, true},
		{`{"a":"\"\\\/\b\f\n\r\t\u00e9"}`, true},
		{`{"a":"\x"}`, false},
		{`{"a":"\u00zz"}`, false},
		{`{"a":"\u00e"}`, false},
		{`{"a":"b\`, false},
		{"{\"a\":\t1}", false},
		{`{"a":01}`, false},
		{`{"a":1} x`, false},
	} {
		if got := fastValid([]byte(tc.in)); got != tc.want {
			t.Errorf("fastValid(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	base := []byte(`{"key":"` + strings.Repeat("x", 40) + `"}`)
	for i := 8; i < 8+40; i++ {
		b := bytes.Clone(base)
		b[i] = 0x1f
		if fastValid(b) {
			t.Fatalf("control character at %d not found", i)
		}
		b[i] = 0x20
		if !fastValid(b) {
			t.Fatalf("space at %d refused", i)
		}
	}
}

// stringStop finds what a byte loop finds: the first quote, backslash or
// control character, at every position of a word and past borrows from
// earlier matches (0x00 and 0x01 next to each other, bytes above 0x7f).
func TestStringStop(t *testing.T) {
	for _, stop := range []byte{'"', '\\', 0x00, 0x01, 0x1f} {
		for n := 0; n <= 24; n++ {
			for at := 0; at <= n; at++ {
				b := bytes.Repeat([]byte{'a'}, n)
				for k := range b {
					b[k] = []byte{'a', 0xc3, 0x21, 0x5d, 0x23, 0x7f, 0xff, 0x20}[k%8] // near-misses of each stop byte
				}
				if at < n {
					b[at] = stop
					if at+1 < n {
						b[at+1] = 0x01 // a borrow target after the match
					}
				}
				if got, want := stringStop(b, 0), naiveStringStop(b, 0); got != want {
					t.Fatalf("stringStop(%q) = %d, want %d", b, got, want)
				}
			}
		}
	}
}

func FuzzStringStop(f *testing.F) {
	f.Add([]byte("abcdefgh\\\x00"), 0)
	f.Add([]byte("\x01\x00\x22abcdefghij"), 3)
	f.Fuzz(func(t *testing.T, b []byte, j int) {
		if j < 0 || j > len(b) {
			return
		}
		if got, want := stringStop(b, j), naiveStringStop(b, j); got != want {
			t.Fatalf("stringStop(%q, %d) = %d, want %d", b, j, got, want)
		}
	})
}

func naiveStringStop(b []byte, j int) int {
	for ; j < len(b); j++ {
		if b[j] == '"' || b[j] == '\\' || b[j] < 0x20 {
			return j
		}
	}
	return j
}

// FuzzFastValid: whatever fastValid takes, the gateway's decoder (JSON)
// decodes; and fastObject
// agrees with fastValid on objects.
func FuzzFastValid(f *testing.F) {
	for _, s := range []string{`{"a":"b"}`, `{"a":[1,-2.5e3,true,null,{"b":"\u00e9\n"}]}`, `{"a":01}`, `{"a":"\x"}`, `[1,2]`, `"s"`, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8.Valid(b) {
			return
		}
		valid := fastValid(b)
		if valid {
			var v any
			if err := JSON.Unmarshal(b, &v); err != nil {
				t.Fatalf("fastValid took %q, which the decoder refuses: %v", b, err)
			}
		}
		top, ok := fastObject(b, nil, fastMaxDepth)
		if ok && !valid {
			t.Fatalf("fastObject took %q, which fastValid refuses", b)
		}
		// Listing a nested object's members in the same pass lists what a
		// pass over that object alone lists, and refuses the event when
		// that pass refuses the object (escaped or duplicate keys).
		for _, m := range top {
			if !ok {
				break
			}
			nested := fastNested{key: m.key}
			top2, ok2 := fastObjectWith(b, nil, fastMaxDepth, &nested)
			want, wantOK := fastObject(m.value, nil, fastMaxDepth-1)
			if m.value[0] != '{' {
				want, wantOK = nil, true
			}
			if ok2 != wantOK || ok2 && (!reflect.DeepEqual(top, top2) || nested.found != (m.value[0] == '{') || !reflect.DeepEqual(nested.dst, want)) {
				t.Fatalf("%q with %q listed: %v %v, members %v; alone: %v %v; without: %v", b, m.key, ok2, nested.found, nested.dst, want, wantOK, top)
			}
		}
	})
}

// FuzzValidJSONText: validJSONText's one-pass route gives what goccy's
// gives for the same text.
func FuzzValidJSONText(f *testing.F) {
	for _, s := range []string{`{"POST": {}, "GET": {"a": ["1"]}}`, `[1, 2 ,{"a b": "c \" d"}]`, `{"a":"\u00e9 x"}`, " {\t}", `{"a": 01}`, `"x"`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		got, gotOK := validJSONText(s)
		want, wantOK := validJSONTextGoccy(s)
		if got != want || gotOK != wantOK {
			t.Fatalf("validJSONText(%q) = %q, %v; goccy: %q, %v", s, got, gotOK, want, wantOK)
		}
	})
}

// BenchmarkFastObject measures the fast path's validating scan on the
// benchmark's 400 real edX lines.
func BenchmarkFastObject(b *testing.B) {
	data, err := os.ReadFile("../../../standalone/tools/sluice-bench/testdata/edx.ndjson")
	if err != nil {
		b.Skip(err)
	}
	lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	var buf [24]fastMember
	b.SetBytes(int64(len(data) / len(lines)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := fastObject(lines[i%len(lines)], buf[:0], fastMaxDepth); !ok {
			b.Fatalf("line %d refused", i%len(lines))
		}
	}
}

// fastString unescapes as the gateway's decoder does: the same string for
// every literal both take, and a refusal wherever the decoder refuses.
func TestFastStringMatchesTheDecoder(t *testing.T) {
	for _, lit := range []string{`"plain"`, `"a\"b\\c\/d"`, `"\b\f\n\r\t"`, `"\u00e9\u4e2d"`, `"\ud83d\ude00"`,
		`"\ud800"`, `"\udc00x"`, `"\ud800\u0041"`, `"\u0000"`, `"caf\u00E9"`, `"\x"`, `"\u12"`, `"\u12G4"`, `"a\"`} {
		checkFastString(t, []byte(lit))
	}
}

func FuzzFastString(f *testing.F) {
	for _, s := range []string{`"a\"b"`, `"\ud800"`, `"\ud83d\ude00"`, `"\u00e9"`, `"\x"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// What fastString is given: a string literal the fast scan took,
		// quote to quote.
		if !utf8.Valid(b) || len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' || !fastValid(append(append([]byte(`{"k":`), b...), '}')) {
			return
		}
		checkFastString(t, b)
	})
}

func checkFastString(t *testing.T, lit []byte) {
	t.Helper()
	var want string
	werr := JSON.Unmarshal(lit, &want)
	got, ok := fastString(lit)
	if werr != nil {
		if ok {
			t.Fatalf("fastString(%s) = %q; the decoder refuses it: %v", lit, got, werr)
		}
		return
	}
	if !ok || got != want {
		t.Fatalf("fastString(%s) = %q, %v; the decoder gives %q", lit, got, ok, want)
	}
}

// The switches that classify member keys say what the field arrays say.
func TestEdXFieldIndexes(t *testing.T) {
	seen := map[string]bool{}
	for i, k := range edxTopFields {
		if got := edxTopIndex(k); got != i {
			t.Errorf("edxTopIndex(%q) = %d, want %d", k, got, i)
		}
	}
	for i, k := range edxContextStrings {
		seen[k] = true
		if kind, got := edxContextMember(k); kind != edxCtxString || got != i {
			t.Errorf("edxContextMember(%q) = %d, %d; want a string at %d", k, kind, got, i)
		}
	}
	for i, k := range edxContextJSON {
		seen[k] = true
		if kind, got := edxContextMember(k); kind != edxCtxJSON || got != i {
			t.Errorf("edxContextMember(%q) = %d, %d; want JSON at %d", k, kind, got, i)
		}
	}
	for _, k := range edxContextTopFields {
		seen[k] = true
		if kind, _ := edxContextMember(k); kind != edxCtxTop {
			t.Errorf("edxContextMember(%q) = %d; want a top-level field", k, kind)
		}
	}
	for k, want := range map[string]int{"user_id": edxCtxUserID, "course_user_tags": edxCtxTags, "module": edxCtxModule, "received_at": edxCtxReceived} {
		seen[k] = true
		if kind, _ := edxContextMember(k); kind != want {
			t.Errorf("edxContextMember(%q) = %d, want %d", k, kind, want)
		}
	}
	for _, k := range []string{"", "Username", "user_id ", "extra", "course", "timestamp", "time"} {
		if edxTopIndex(k) != -1 && !slices.Contains(edxTopFields[:], k) {
			t.Errorf("edxTopIndex(%q) = %d, want -1", k, edxTopIndex(k))
		}
		if kind, _ := edxContextMember(k); kind != edxCtxExtra && !seen[k] {
			t.Errorf("edxContextMember(%q) = %d, want extra", k, kind)
		}
	}
}

func TestIsASCII(t *testing.T) {
	for n := 0; n <= 20; n++ {
		s := strings.Repeat("a", n)
		if !isASCII(s) {
			t.Fatalf("isASCII(%q) = false", s)
		}
		for i := range n {
			b := []byte(s)
			b[i] = 0x80
			if isASCII(string(b)) {
				t.Fatalf("byte 0x80 at %d of %d not found", i, n)
			}
			b[i] = 0x7f
			if !isASCII(string(b)) {
				t.Fatalf("byte 0x7f at %d of %d refused", i, n)
			}
		}
	}
}
