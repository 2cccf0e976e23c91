package resolve

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/enricher/internal/enrich"
	"github.com/sluicehq/sluice/services/enricher/internal/eventtest"
	"github.com/sluicehq/sluice/services/enricher/internal/state"
)

// harness runs events through a Resolver the way the enricher does: each
// call is one committed batch.
type harness struct {
	t     *testing.T
	store *state.Store
	r     *Resolver
	now   time.Time
}

func newHarness(t *testing.T) *harness {
	s := state.New(1000, time.Hour)
	return &harness{t: t, store: s, r: New(s), now: eventtest.Base}
}

// run resolves natives (in order, one batch) and returns each event.
func (h *harness) run(f event.Family, natives ...map[string]any) []*enrich.Event {
	h.t.Helper()
	h.store.Begin()
	defer h.store.Commit()
	var out []*enrich.Event
	for _, n := range natives {
		d, err := eventtest.Decoded(f, n)
		if err != nil {
			h.t.Fatal(err)
		}
		env := enrich.Rec(d["envelope"])
		e := &enrich.Event{Family: f, Key: enrich.Str(env["partition_key"]), Partition: 3, Native: d, Now: h.now}
		enrich.Stamp(e, enrich.Provenance{EnrichedAt: h.now, Topic: event.RawTopic(f)})
		if err := h.r.Process(context.Background(), e); err != nil {
			h.t.Fatal(err)
		}
		// The enrichment must encode with the family schema.
		e.SetNative()
		if _, err := eventtest.Decoded(f, d); err != nil {
			h.t.Fatalf("enriched record does not encode: %v", err)
		}
		out = append(out, e)
	}
	return out
}

// ctxOf returns the family context record of an event.
func ctxOf(e *enrich.Event, field string) map[string]any {
	return enrich.Rec(e.Enr.Native()[field])
}

func str(m map[string]any, k string) string { return enrich.Str(m[k]) }

func TestEdXCourseAndOrg(t *testing.T) {
	h := newHarness(t)
	ev := func(fields map[string]any) map[string]any {
		if _, ok := fields["ip"]; !ok {
			fields["ip"] = "81.2.69.142" // the learner; the envelope's is the LMS shipping the log
		}
		return eventtest.EdX(eventtest.Env{IP: "10.0.0.5", Key: "alice"}, fields)
	}
	events := h.run(event.EdX,
		// 1. course from the context, new key form.
		ev(map[string]any{"event_type": "play_video", "context": eventtest.EdXContext("course-v1:edX+DemoX+Demo_2014", "", 5)}),
		// 2. old slash form in the context, org from the key over the context's.
		ev(map[string]any{"event_type": "seq_goto", "context": eventtest.EdXContext("BerkeleyX/Stat_2.1x/1T2014", "Other", 0)}),
		// 3. context course empty (outside a course): from the page URL.
		ev(map[string]any{"event_type": "page_close", "context": eventtest.EdXContext("", "", 0),
			"page": "https://courses.example.org/courses/course-v1:MITx+6.002x+2026_T1/courseware/ch1/seq2/?x=1"}),
		// 4. from the referer, URL-encoded, MFE form.
		ev(map[string]any{"event_type": "edx.ui.lms.link_clicked",
			"referer": "https://learning.example.org/course/course-v1%3AHarvardX%2BCS50%2B2026/home"}),
		// 5. implicit server event: the URL path is the event type.
		ev(map[string]any{"event_type": "/courses/UCSD/Bio101/Fall2013/courseware/intro/"}),
		// 6. CCX key from the page.
		ev(map[string]any{"event_type": "problem_check", "page": "https://lms.example.org/courses/ccx-v1:OrgX+C1+R1+ccx@3/courseware"}),
		// 7. only the payload names the course (enrollment event).
		ev(map[string]any{"event_type": "edx.course.enrollment.activated", "event_kind": "object",
			"event_json": `{"course_id":"course-v1:OrgY+Bio+R2","mode":"audit","user_id":4}`}),
		// 8. no course anywhere.
		ev(map[string]any{"event_type": "edx.user.settings.changed"}),
		// 9. event-tracking envelope shape: name only.
		eventtest.EdX(eventtest.Env{Key: "alice", Quirks: []string{"envelope_shape"}},
			map[string]any{"name": "edx.video.played", "context": eventtest.EdXContext("course-v1:edX+DemoX+Demo_2014", "edX", 0)}),
	)
	want := []struct{ course, source, form, org string }{
		{"course-v1:edX+DemoX+Demo_2014", "context", "course-v1", "edX"},
		{"BerkeleyX/Stat_2.1x/1T2014", "context", "slash", "BerkeleyX"},
		{"course-v1:MITx+6.002x+2026_T1", "page", "course-v1", "MITx"},
		{"course-v1:HarvardX+CS50+2026", "referer", "course-v1", "HarvardX"},
		{"UCSD/Bio101/Fall2013", "event_type", "slash", "UCSD"},
		{"ccx-v1:OrgX+C1+R1+ccx@3", "page", "ccx-v1", "OrgX"},
		{"course-v1:OrgY+Bio+R2", "event", "course-v1", "OrgY"},
		{"", "", "", ""},
		{"course-v1:edX+DemoX+Demo_2014", "context", "course-v1", "edX"},
	}
	for i, w := range want {
		c := ctxOf(events[i], "edx")
		if str(c, "course_id") != w.course || str(c, "course_id_source") != w.source ||
			str(c, "course_key_form") != w.form || str(c, "org_id") != w.org {
			t.Errorf("event %d: course %q source %q form %q org %q; want %+v", i+1,
				str(c, "course_id"), str(c, "course_id_source"), str(c, "course_key_form"), str(c, "org_id"), w)
		}
	}
	if c := ctxOf(events[8], "edx"); c["shape"] != "envelope" || str(c, "event_type") != "edx.video.played" || str(c, "event_name") != "edx.video.played" {
		t.Errorf("envelope shape: %v", c)
	}
	if c := ctxOf(events[0], "edx"); c["shape"] != "tracking_log" || str(c, "event_type") != "play_video" {
		t.Errorf("tracking log shape: %v", c)
	}
	// The edX record's own ip is the client's (the envelope's is the shipper's).
	if events[0].IP != "81.2.69.142" || events[0].IPSource != SourceEdxIP {
		t.Errorf("edX ip %q from %q", events[0].IP, events[0].IPSource)
	}
}

func TestCourseKeyInURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                                       "",
		"https://x.org/dashboard":                "",
		"/courses/course-v1:A+B+C":               "course-v1:A+B+C",
		"/courses/course-v1:A+B":                 "", // not a full key
		"/courses/A/B/C/about":                   "A/B/C",
		"/courses/A/B":                           "",
		"https://x.org/courses/A/B/C?next=/d":    "A/B/C",
		"https://x.org/c/course-v1:A+B+C#frag":   "course-v1:A+B+C",
		"https://x.org/c/course-v1%3Aa%2Bb%2Bc/": "course-v1:a+b+c",
	} {
		if got := CourseKeyInURL(in); got != want {
			t.Errorf("CourseKeyInURL(%q) = %q, want %q", in, got, want)
		}
	}
}

const (
	chromeUA  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	firefoxUA = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
)

// TestCrowdFrameSessionContext replays a worker's session: events before
// the context message (it is sent only once the IP lookup answered), the
// context, later events of the same task and batch, an event of another
// task, and another worker who never sent a context.
func TestCrowdFrameSessionContext(t *testing.T) {
	h := newHarness(t)
	cf := func(worker, typ, task string, seq int64, d any) map[string]any {
		return eventtest.CrowdFrame(eventtest.Env{IP: "198.51.100.7", UA: firefoxUA, Client: eventtest.Base.Add(time.Duration(seq) * time.Second)},
			typ, worker, task, "batch-1", seq, d)
	}
	events := h.run(event.CrowdFrame,
		cf("W1", "init", "task-a", 1, nil),                                    // 0: before the context
		cf("W1", "window_focus", "task-a", 2, eventtest.CFMoment("q1", 12.5)), // 1: before, with a section
		cf("W1", "context", "task-a", 0, eventtest.CFContext(chromeUA, "81.2.69.142")),
		cf("W1", "query", "task-a", 3, eventtest.CFQuery("q2", "weather")), // 3
		cf("W1", "unload", "task-a", 4, nil),                               // 4: no details: section carried
		cf("W1", "query", "task-b", 1, eventtest.CFQuery("q1", "news")),    // 5: another task: worker match
		cf("W2", "query", "task-a", 1, eventtest.CFQuery("q1", "x")),       // 6: no context ever
	)
	check := func(i int, resolved bool, match, ip, section, sectionSource string) {
		t.Helper()
		c := ctxOf(events[i], "crowdframe")
		if c["context_resolved"] != resolved || str(c, "context_match") != match || str(c, "ip") != ip ||
			str(c, "section") != section || str(c, "section_source") != sectionSource {
			t.Errorf("event %d: %v", i, c)
		}
	}
	check(0, false, "", "", "", "")
	check(1, false, "", "", "q1", "event")
	check(2, true, "task_batch", "81.2.69.142", "q1", "carried")
	check(3, true, "task_batch", "81.2.69.142", "q2", "event")
	check(4, true, "task_batch", "81.2.69.142", "q2", "carried")
	check(5, true, "worker", "81.2.69.142", "q1", "event")
	check(6, false, "", "", "q1", "event")

	// Resolved events describe the client by the context's IP and agent;
	// unresolved ones fall back to the envelope's.
	if e := events[3]; e.IP != "81.2.69.142" || e.IPSource != SourceCFContext || e.UA != chromeUA || e.UASource != SourceCFContext {
		t.Errorf("resolved event client: %s %s %q %s", e.IP, e.IPSource, e.UA, e.UASource)
	}
	if e := events[0]; e.IP != "198.51.100.7" || e.IPSource != SourceEnvelopeIP || e.UA != firefoxUA {
		t.Errorf("unresolved event client: %s %s %q", e.IP, e.IPSource, e.UA)
	}
	if ct := enrich.Time(ctxOf(events[4], "crowdframe")["context_time"]); !ct.Equal(eventtest.Base) {
		t.Errorf("context_time %v", ct)
	}

	// A context arriving out of order (an older client_time than the one
	// held) does not replace the worker's latest, but still serves its own
	// task and batch.
	old := eventtest.CrowdFrame(eventtest.Env{Client: eventtest.Base.Add(-time.Hour)}, "context", "W1", "task-c", "batch-1", 0,
		eventtest.CFContext(firefoxUA, "2a02:168::1"))
	later := h.run(event.CrowdFrame, old,
		cf("W1", "query", "task-z", 9, eventtest.CFQuery("q9", "y")),
		eventtest.CrowdFrame(eventtest.Env{}, "query", "W1", "task-c", "batch-1", 1, eventtest.CFQuery("q1", "z")))
	if c := ctxOf(later[1], "crowdframe"); str(c, "ip") != "81.2.69.142" || str(c, "context_match") != "worker" {
		t.Errorf("older context replaced the latest: %v", c)
	}
	if c := ctxOf(later[2], "crowdframe"); str(c, "ip") != "2a02:168::1" || str(c, "context_match") != "task_batch" {
		t.Errorf("older context not kept for its task: %v", c)
	}
}

// TestWeaklayerReferences replays a sensor: Install, a top-level Window, a
// WindowLocation in it, TextInputs on it; then out of order (a TextInput
// whose WindowLocation comes later; a WindowLocation whose Window comes
// later); a reference never seen; a newer Install replacing the label.
func TestWeaklayerReferences(t *testing.T) {
	h := newHarness(t)
	const s = "4f3a1c2e-8d3b-4e5f-9a6b-7c8d9e0f1a2b"
	wl := func(typ string, tm int64, body any) map[string]any {
		return eventtest.Weaklayer(eventtest.Env{IP: "81.2.69.142", UA: firefoxUA}, typ, s, tm, body)
	}
	const (
		tInstall = 1_700_000_000_000_100
		tWin     = 1_700_000_001_000_200
		tLoc     = 1_700_000_001_500_300
		tText    = 1_700_000_002_000_400
	)
	ev := h.run(event.Weaklayer,
		wl("TextInput", tInstall-5, eventtest.WLTextInput(1, 3)), // 0: before Install, unknown location
		wl("Install", tInstall, eventtest.WLInstall("laptop-7", chromeUA)),
		wl("Window", tWin, eventtest.WLWindow(true, 0)),
		wl("WindowLocation", tLoc, eventtest.WLLocation("https", "docs.example.org", 0, "/edit", "?id=4", "#h2", tWin)),
		wl("TextInput", tText, eventtest.WLTextInput(tLoc, 12)),                                             // 4: resolved
		wl("TextInput", tText+1, eventtest.WLTextInput(tLoc+999, 1)),                                        // 5: location comes later
		wl("WindowLocation", tLoc+999, eventtest.WLLocation("http", "intranet", 8080, "/", "", "", tWin+7)), // 6: window comes later
		wl("TextInput", tText+2, eventtest.WLTextInput(tLoc+999, 2)),                                        // 7: location known, window not
		wl("Window", tWin+7, eventtest.WLWindow(false, tWin)),
		wl("TextInput", tText+3, eventtest.WLTextInput(tLoc+999, 4)),   // 9: now resolved
		wl("Install", tInstall-1000, eventtest.WLInstall("stale", "")), // 10: an older Install arriving late
	)
	check := func(i int, resolution, url string, installed bool, label string) {
		t.Helper()
		c := ctxOf(ev[i], "weaklayer")
		if c["resolution"] != resolution || str(c, "url") != url || c["install_resolved"] != installed || str(c, "install_label") != label {
			t.Errorf("event %d: %v", i, c)
		}
	}
	check(0, "location_unresolved", "", false, "")
	check(1, "not_applicable", "", true, "laptop-7")
	check(3, "resolved", "https://docs.example.org/edit?id=4#h2", true, "laptop-7")
	check(4, "resolved", "https://docs.example.org/edit?id=4#h2", true, "laptop-7")
	check(5, "location_unresolved", "", true, "laptop-7")
	check(6, "window_unresolved", "http://intranet:8080/", true, "laptop-7")
	check(7, "window_unresolved", "http://intranet:8080/", true, "laptop-7")
	check(9, "resolved", "http://intranet:8080/", true, "laptop-7")
	check(10, "not_applicable", "", true, "laptop-7")

	c := ctxOf(ev[4], "weaklayer")
	if b, _ := enrich.Bool(c["top_level"]); !b || must(enrich.Int(c["window_reference"])) != tWin ||
		must(enrich.Int(c["window_location_reference"])) != tLoc || str(c, "install_user_agent") != chromeUA {
		t.Errorf("resolved TextInput: %v", c)
	}
	c = ctxOf(ev[9], "weaklayer")
	if b, ok := enrich.Bool(c["top_level"]); !ok || b || must(enrich.Int(c["top_level_window_reference"])) != tWin {
		t.Errorf("child window: %v", c)
	}
	// The Install's user agent describes the sensor's browser.
	if ev[4].UA != chromeUA || ev[4].UASource != SourceWLInstall {
		t.Errorf("UA %q from %s", ev[4].UA, ev[4].UASource)
	}
	if ev[0].UA != firefoxUA || ev[0].UASource != SourceEnvelopeUA {
		t.Errorf("UA before Install %q from %s", ev[0].UA, ev[0].UASource)
	}

	// Another sensor shares nothing.
	other := h.run(event.Weaklayer, eventtest.Weaklayer(eventtest.Env{}, "TextInput", "other-sensor", tText, eventtest.WLTextInput(tLoc, 1)))
	if c := ctxOf(other[0], "weaklayer"); c["resolution"] != "location_unresolved" || c["install_resolved"] != false {
		t.Errorf("other sensor: %v", c)
	}
}

func must(v int64, _ bool) int64 { return v }

func TestWorkstationManifestAndCodes(t *testing.T) {
	h := newHarness(t)
	man := eventtest.Manifest("3c830f47-9fcd-4a48-a568-750d8b179987", "johndoe", 10800)
	ev := h.run(event.Workstation,
		eventtest.WorkstationActivity(eventtest.Env{}, man, 1692694112, 469, 52, 10, 1, 29),
		eventtest.WorkstationActivity(eventtest.Env{}, man, 1692694113, 0, 77, 0), // undocumented code
		eventtest.WorkstationLog(eventtest.Env{}, man, "Inspector started"),
	)
	c := ctxOf(ev[0], "workstation")
	if str(c, "user_login") != "johndoe" || str(c, "user_name") != "John Doe" || str(c, "computer_name") != "c-066.corp.example.com" ||
		str(c, "agent_version") != "2.14.3" || str(c, "time_zone") != "Europe/Moscow" ||
		str(c, "event_type_name") != "Invoke" || str(c, "event_type_group") != "UI Elements" ||
		str(c, "element_type_name") != "Button" || str(c, "local_time") != "2023-08-22T11:48:32.469+03:00" {
		t.Errorf("activity: %v", c)
	}
	if off, _ := enrich.Int(c["time_zone_offset_sec"]); off != 10800 {
		t.Errorf("offset %d", off)
	}
	if l := enrich.Arr(c["location_type_names"]); len(l) != 2 || l[0] != "Window" || l[1] != "TabItem" {
		t.Errorf("location names %v", l)
	}
	if p := enrich.Arr(c["parameter_type_names"]); len(p) != 1 || p[0] != "Edit" {
		t.Errorf("parameter names %v", p)
	}
	if c := ctxOf(ev[1], "workstation"); c["event_type_name"] != nil || str(c, "local_time") != "2023-08-22T11:48:33.000+03:00" {
		t.Errorf("undocumented code: %v", c)
	}
	if c := ctxOf(ev[2], "workstation"); str(c, "user_login") != "johndoe" || c["local_time"] != nil || c["event_type_name"] != nil {
		t.Errorf("log line: %v", c)
	}
}

func TestClicksPageSessionTarget(t *testing.T) {
	h := newHarness(t)
	ev := h.run(event.Clicks,
		eventtest.Clicks(eventtest.Env{}, "mousedown", "s-1", "", "(1,1)", "cell x"),                       // 0: page not yet known
		eventtest.Clicks(eventtest.Env{}, "mousedown", "s-1", "https://demo.example.org/game", "", "cell"), // 1
		eventtest.Clicks(eventtest.Env{}, "mouseup", "s-1", "", "(2,2)", ""),                               // 2: page from the session
		eventtest.Clicks(eventtest.Env{Key: "203.0.113.9"}, "mousedown", "", "", "b", ""),                  // 3: no session
	)
	check := func(i int, session, sessionSrc, page, pageSrc, target string) {
		t.Helper()
		c := ctxOf(ev[i], "clicks")
		if str(c, "session") != session || str(c, "session_source") != sessionSrc || str(c, "page") != page ||
			str(c, "page_source") != pageSrc || str(c, "target") != target {
			t.Errorf("click %d: %v", i, c)
		}
	}
	check(0, "s-1", "event", "", "", "#(1,1).cell.x")
	check(1, "s-1", "event", "https://demo.example.org/game", "event", ".cell")
	check(2, "s-1", "event", "https://demo.example.org/game", "session", "#(2,2)")
	check(3, "203.0.113.9", "partition_key", "", "", "#b")
	if cl := enrich.Arr(ctxOf(ev[0], "clicks")["target_classes"]); len(cl) != 2 || cl[1] != "x" {
		t.Errorf("classes %v", cl)
	}
}

// TestStateSurvivesRestore writes a session's state, restores the
// changelog into a fresh resolver (a restart, or another instance after a
// rebalance) and checks the next events resolve the same.
func TestStateSurvivesRestore(t *testing.T) {
	h := newHarness(t)
	h.store.Begin()
	for _, n := range []map[string]any{
		eventtest.CrowdFrame(eventtest.Env{}, "context", "W9", "t", "b", 0, eventtest.CFContext(chromeUA, "81.2.69.142")),
		eventtest.Weaklayer(eventtest.Env{}, "Install", "S9", 10, eventtest.WLInstall("desk", chromeUA)),
		eventtest.Weaklayer(eventtest.Env{}, "Window", "S9", 20, eventtest.WLWindow(true, 0)),
		eventtest.Weaklayer(eventtest.Env{}, "WindowLocation", "S9", 30, eventtest.WLLocation("https", "a.example", 0, "/p", "", "", 20)),
		eventtest.Clicks(eventtest.Env{}, "mousedown", "C9", "https://p.example/", "x", ""),
	} {
		f := event.Family(enrich.Str(enrich.Rec(n["envelope"])["family"]))
		d, err := eventtest.Decoded(f, n)
		if err != nil {
			t.Fatal(err)
		}
		e := &enrich.Event{Family: f, Key: enrich.Str(enrich.Rec(d["envelope"])["partition_key"]), Partition: 3, Native: d, Now: h.now}
		enrich.Stamp(e, enrich.Provenance{})
		if err := h.r.Process(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	changes, err := h.store.Changes()
	if err != nil {
		t.Fatal(err)
	}
	h.store.Commit()

	fresh := newHarness(t)
	for _, c := range changes {
		if !strings.Contains(c.Key, "/") || c.Partition != 3 {
			t.Fatalf("change %+v", c)
		}
		tp := state.TP{Family: state.FamilyOf(c.Key), Partition: c.Partition}
		if err := fresh.store.Restore(tp, c.Key, c.Value, Decode, fresh.now); err != nil {
			t.Fatal(err)
		}
	}
	cf := fresh.run(event.CrowdFrame, eventtest.CrowdFrame(eventtest.Env{}, "query", "W9", "t", "b", 1, eventtest.CFQuery("s", "q")))
	if c := ctxOf(cf[0], "crowdframe"); str(c, "ip") != "81.2.69.142" || str(c, "ua") != chromeUA {
		t.Errorf("crowdframe after restore: %v", c)
	}
	wl := fresh.run(event.Weaklayer, eventtest.Weaklayer(eventtest.Env{}, "TextInput", "S9", 40, eventtest.WLTextInput(30, 1)))
	if c := ctxOf(wl[0], "weaklayer"); c["resolution"] != "resolved" || str(c, "url") != "https://a.example/p" || str(c, "install_label") != "desk" {
		t.Errorf("weaklayer after restore: %v", c)
	}
	cl := fresh.run(event.Clicks, eventtest.Clicks(eventtest.Env{}, "mouseup", "C9", "", "y", ""))
	if c := ctxOf(cl[0], "clicks"); str(c, "page") != "https://p.example/" || str(c, "page_source") != "session" {
		t.Errorf("clicks after restore: %v", c)
	}
}

func TestDerivedTime(t *testing.T) {
	created := eventtest.Base.Add(-10 * time.Minute) // device clock
	for _, tc := range []struct {
		name        string
		sent        time.Duration // after created, device clock
		skew        time.Duration // device clock minus gateway clock
		implausible bool
	}{
		{"small skew", 2 * time.Second, 30 * time.Second, false},
		{"offline queue, clock behind", 8 * time.Minute, -20 * time.Minute, false},
		{"clock days ahead", time.Second, 72 * time.Hour, true},
		{"sent before created", -time.Second, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent := created.Add(tc.sent)
			received := sent.Add(-tc.skew)
			n := eventtest.Clicks(eventtest.Env{Client: created, Sent: sent, Received: received}, "click", "s", "", "", "")
			d, err := eventtest.Decoded(event.Clicks, n)
			if err != nil {
				t.Fatal(err)
			}
			e := &enrich.Event{Family: event.Clicks, Native: d}
			enrich.Stamp(e, enrich.Provenance{})
			if err := (DerivedTime{MaxSkew: time.Hour}).Process(context.Background(), e); err != nil {
				t.Fatal(err)
			}
			dt := ctxOf(e, "derived_time")
			if dt == nil {
				t.Fatal("no derived_time")
			}
			if got := dt["corrected"].(time.Time); !got.Equal(received.Add(-tc.sent)) {
				t.Errorf("corrected %v, want received - (sent - created) = %v", got, received.Add(-tc.sent))
			}
			if dt["skew_micros"] != tc.skew.Microseconds() || dt["implausible"] != tc.implausible {
				t.Errorf("skew %v implausible %v; want %v %v", dt["skew_micros"], dt["implausible"], tc.skew.Microseconds(), tc.implausible)
			}
			e.SetNative()
			if _, err := eventtest.Decoded(event.Clicks, d); err != nil {
				t.Fatalf("does not encode: %v", err)
			}
		})
	}
	// Only a created time: nothing derived.
	n := eventtest.Clicks(eventtest.Env{Client: created}, "click", "s", "", "", "")
	d, _ := eventtest.Decoded(event.Clicks, n)
	e := &enrich.Event{Family: event.Clicks, Native: d}
	enrich.Stamp(e, enrich.Provenance{})
	_ = DerivedTime{MaxSkew: time.Hour}.Process(context.Background(), e)
	if e.Enr.DerivedTime != nil {
		t.Error("derived time without a sent time")
	}
}
