// Package resolve adds each family's resolved context to an event: edX
// course and org from the course key or the page, the Crowd Frame worker's
// session context, Weaklayer reference chains and Install metadata, the
// workstation manifest and code names, the click's page, session and
// target. State (what earlier events said) lives in a state.Store keyed by
// the event's partition key; a reference that is not in the state is marked
// unresolved, never waited for.
package resolve

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/enricher/internal/enrich"
	"github.com/sluicehq/sluice/services/enricher/internal/state"
)

// Sources of the IP and user agent, as sluice.Geo ip_source and
// sluice.UserAgent source name them.
const (
	SourceEnvelopeIP = "envelope.ip"
	SourceEnvelopeUA = "envelope.user_agent"
	SourceEdxIP      = "ip"
	SourceEdxAgent   = "agent"
	SourceCFContext  = "crowdframe.context"
	SourceWLInstall  = "weaklayer.install"
)

// Stateful lists the families whose resolution keeps state; only they have
// a changelog.
var Stateful = []event.Family{event.CrowdFrame, event.Weaklayer, event.Clicks}

// Resolver is the context-resolution Processor.
type Resolver struct {
	store *state.Store
}

var _ enrich.Processor = (*Resolver)(nil)

// New returns a resolver keeping its state in store.
func New(store *state.Store) *Resolver { return &Resolver{store: store} }

// Process implements enrich.Processor. It never fails on what an event
// lacks: missing members and unresolved references are marked.
func (r *Resolver) Process(_ context.Context, e *enrich.Event) error {
	env := enrich.Rec(e.Native["envelope"])
	e.IP, e.IPSource = "", ""
	e.UA, e.UASource = "", ""
	if ip := enrich.Str(env["ip"]); ip != "" {
		e.IP, e.IPSource = ip, SourceEnvelopeIP
	}
	if ua := enrich.Str(env["user_agent"]); ua != "" {
		e.UA, e.UASource = ua, SourceEnvelopeUA
	}
	switch e.Family {
	case event.EdX:
		r.edx(e, env)
	case event.CrowdFrame:
		r.crowdframe(e)
	case event.Weaklayer:
		r.weaklayer(e)
	case event.Workstation:
		workstation(e)
	case event.Clicks:
		r.clicks(e)
	}
	return nil
}

// Decode turns a changelog value back into its state value; it is the
// state.Decoder of the resolver's keys.
func Decode(key string, data []byte) (state.Value, error) {
	_, rest, _ := strings.Cut(key, "/")
	_, item, _ := strings.Cut(rest, "/")
	var v state.Value
	switch {
	case item == itemContext || strings.HasPrefix(item, itemContext+"/"):
		v = &cfContext{}
	case item == itemSection:
		v = &cfSection{}
	case item == itemInstall:
		v = &wlInstall{}
	case strings.HasPrefix(item, itemWindow):
		v = &wlWindow{}
	case strings.HasPrefix(item, itemLocation):
		v = &wlLocation{}
	case item == itemPage:
		v = &clPage{}
	default:
		return nil, fmt.Errorf("unknown state item %q", item)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return nil, err
	}
	return v, nil
}

// State items, the last part of <family>/<partition key>/<item>.
const (
	itemContext  = "ctx"     // crowdframe: latest context; ctx/<task>/<batch>: per task and batch
	itemSection  = "section" // crowdframe: the worker's last section
	itemInstall  = "install" // weaklayer: the sensor's latest Install
	itemWindow   = "w/"      // weaklayer: w/<time> a Window
	itemLocation = "l/"      // weaklayer: l/<time> a WindowLocation
	itemPage     = "page"    // clicks: the session's last page
)

// State values. Field names are short: they are written to the changelog
// for every change.
type (
	cfContext struct {
		UA    string `json:"ua,omitempty"`
		IP    string `json:"ip,omitempty"`
		Time  int64  `json:"t,omitempty"` // client_time, epoch ms
		Task  string `json:"task,omitempty"`
		Batch string `json:"batch,omitempty"`
	}
	cfSection struct {
		Section string `json:"s"`
	}
	wlInstall struct {
		Label string `json:"label,omitempty"`
		UA    string `json:"ua,omitempty"`
		Time  int64  `json:"t"`
	}
	wlWindow struct {
		Top    *bool `json:"top,omitempty"`
		TopRef int64 `json:"ref,omitempty"`
	}
	wlLocation struct {
		URL       string `json:"url"`
		Host      string `json:"host,omitempty"`
		WindowRef int64  `json:"w,omitempty"`
	}
	clPage struct {
		Page string `json:"p"`
	}
)

func (r *Resolver) tp(e *enrich.Event) state.TP {
	return state.TP{Family: string(e.Family), Partition: e.Partition}
}

// ---- edX

func (r *Resolver) edx(e *enrich.Event, env map[string]any) {
	n := e.Native
	if ip := enrich.Str(n["ip"]); ip != "" {
		e.IP, e.IPSource = ip, SourceEdxIP
	}
	if ua := enrich.Str(n["agent"]); ua != "" {
		e.UA, e.UASource = ua, SourceEdxAgent
	}
	shape := "tracking_log"
	for _, q := range enrich.Arr(env["quirks"]) {
		if q == "envelope_shape" {
			shape = "envelope"
		}
	}
	eventType, name := enrich.Str(n["event_type"]), enrich.Str(n["name"])
	out := &enrich.EdxContext{
		Shape:     shape,
		EventType: firstNonEmpty(eventType, name),
		EventName: firstNonEmpty(name, eventType),
	}
	ctx := enrich.Rec(n["context"])
	key, source := "", ""
	if c := enrich.Str(ctx["course_id"]); c != "" {
		key, source = c, "context"
	} else if c := CourseKeyInURL(enrich.Str(n["page"])); c != "" {
		key, source = c, "page"
	} else if c := CourseKeyInURL(enrich.Str(n["referer"])); c != "" {
		key, source = c, "referer"
	} else if strings.HasPrefix(eventType, "/courses/") || strings.HasPrefix(eventType, "/course/") {
		if c := CourseKeyInURL(eventType); c != "" {
			key, source = c, "event_type"
		}
	}
	if key == "" {
		if c := courseIDInJSON(enrich.Str(n["event_json"])); c != "" {
			key, source = c, "event"
		}
	}
	if key != "" {
		out.CourseID, out.CourseIDSource = key, source
		out.CourseKeyForm, out.OrgID = ParseCourseKey(key)
	}
	if out.OrgID == "" {
		out.OrgID = enrich.Str(ctx["org_id"])
	}
	e.Enr.EdX = out
}

// ParseCourseKey returns the form of an edX course key and its
// organisation: course-v1:Org+Course+Run, ccx-v1:Org+Course+Run+ccx@N,
// library-v1:Org+Library, or the old Org/Course/Run. An unknown form
// returns "", "".
func ParseCourseKey(key string) (form, org string) {
	for _, f := range []string{"course-v1", "ccx-v1", "library-v1"} {
		if rest, ok := strings.CutPrefix(key, f+":"); ok {
			o, _, _ := strings.Cut(rest, "+")
			return f, o
		}
	}
	parts := strings.Split(key, "/")
	if len(parts) == 3 && parts[0] != "" && parts[1] != "" && parts[2] != "" && !strings.Contains(key, ":") {
		return "slash", parts[0]
	}
	return "", ""
}

// CourseKeyInURL finds a course key in an LMS or MFE URL (or path):
// /courses/course-v1:Org+Course+Run/..., /course/course-v1:..., the
// URL-encoded forms, and the old /courses/Org/Course/Run/.... It returns ""
// when there is none.
func CourseKeyInURL(u string) string {
	if u == "" {
		return ""
	}
	if strings.Contains(u, "%") {
		u = strings.NewReplacer("%3A", ":", "%3a", ":", "%2B", "+", "%2b", "+", "%40", "@").Replace(u)
	}
	for _, prefix := range []string{"course-v1:", "ccx-v1:"} {
		i := strings.Index(u, prefix)
		if i < 0 {
			continue
		}
		end := i + len(prefix)
		for end < len(u) && !strings.ContainsRune("/?#& \"'", rune(u[end])) {
			end++
		}
		key := u[i:end]
		if strings.Count(key, "+") >= 2 {
			return key
		}
	}
	// Old slash form: /courses/Org/Course/Run/...
	i := strings.Index(u, "/courses/")
	if i < 0 {
		return ""
	}
	rest := u[i+len("/courses/"):]
	if j := strings.IndexAny(rest, "?#"); j >= 0 {
		rest = rest[:j]
	}
	parts := strings.SplitN(rest, "/", 4)
	if len(parts) < 3 || strings.Contains(parts[0], ":") {
		return ""
	}
	for _, p := range parts[:3] {
		if p == "" {
			return ""
		}
	}
	return parts[0] + "/" + parts[1] + "/" + parts[2]
}

// courseIDInJSON returns a top-level "course_id" string of a JSON object
// text (enrollment, grade and certificate events carry one in the event).
func courseIDInJSON(s string) string {
	if s == "" || s[0] != '{' || !strings.Contains(s, `"course_id"`) {
		return ""
	}
	var v struct {
		CourseID string `json:"course_id"`
	}
	if json.Unmarshal([]byte(s), &v) != nil {
		return ""
	}
	return v.CourseID
}

// ---- Crowd Frame

func (r *Resolver) crowdframe(e *enrich.Event) {
	n := e.Native
	tp := r.tp(e)
	task, batch := enrich.Str(n["task"]), enrich.Str(n["batch"])
	latestKey := state.Key(string(e.Family), e.Key, itemContext)
	batchKey := state.Key(string(e.Family), e.Key, itemContext+"/"+pathPart(task)+"/"+pathPart(batch))
	out := &enrich.CrowdframeContext{}

	var ctx *cfContext
	match := ""
	if enrich.Str(n["type"]) == "context" {
		if d := enrich.RecBranch(n["details"], "sluice.crowdframe.Context"); d != nil {
			c := &cfContext{UA: enrich.Str(d["ua"]), IP: enrich.Str(d["ip"]), Task: task, Batch: batch}
			if t := enrich.Time(n["client_time"]); !t.IsZero() {
				c.Time = t.UnixMilli()
			}
			if c.UA != "" || c.IP != "" {
				r.store.Put(tp, batchKey, c, e.Now)
				old, ok := r.store.Get(tp, latestKey, e.Now)
				if o, _ := old.(*cfContext); !ok || o == nil || c.Time == 0 || c.Time >= o.Time {
					r.store.Put(tp, latestKey, c, e.Now)
				}
				ctx, match = c, "task_batch"
			}
		}
	}
	if ctx == nil {
		if v, ok := r.store.Get(tp, batchKey, e.Now); ok {
			ctx, match = v.(*cfContext), "task_batch"
		} else if v, ok := r.store.Get(tp, latestKey, e.Now); ok {
			ctx, match = v.(*cfContext), "worker"
		}
	}
	if ctx != nil {
		out.Resolved, out.Match, out.UA, out.IP = true, match, ctx.UA, ctx.IP
		if ctx.Time != 0 {
			out.ContextTime = time.UnixMilli(ctx.Time).UTC()
		}
		if ctx.IP != "" {
			e.IP, e.IPSource = ctx.IP, SourceCFContext
		}
		if ctx.UA != "" {
			e.UA, e.UASource = ctx.UA, SourceCFContext
		}
	}

	// The section is in every details record but the context's; an event
	// without one carries the worker's last.
	sectionKey := state.Key(string(e.Family), e.Key, itemSection)
	if s := enrich.Str(enrich.Rec(n["details"])["section"]); s != "" {
		out.Section, out.SectionSource = s, "event"
		if v, ok := r.store.Get(tp, sectionKey, e.Now); !ok || v.(*cfSection).Section != s {
			r.store.Put(tp, sectionKey, &cfSection{Section: s}, e.Now)
		}
	} else if v, ok := r.store.Get(tp, sectionKey, e.Now); ok {
		out.Section, out.SectionSource = v.(*cfSection).Section, "carried"
	}
	e.Enr.CrowdFrame = out
}

// pathPart keeps a task or batch name from adding separators to a key.
func pathPart(s string) string { return strings.ReplaceAll(s, "/", "%2F") }

// ---- Weaklayer

func (r *Resolver) weaklayer(e *enrich.Event) {
	n := e.Native
	tp := r.tp(e)
	f := string(e.Family)
	t, _ := enrich.Int(n["time"])
	out := &enrich.WeaklayerContext{Resolution: "not_applicable"}

	switch enrich.Str(n["type"]) {
	case "Install":
		in := enrich.Rec(n["install"])
		v := &wlInstall{Label: enrich.Str(in["label"]), UA: enrich.Str(in["userAgent"]), Time: t}
		key := state.Key(f, e.Key, itemInstall)
		old, ok := r.store.Get(tp, key, e.Now)
		if o, _ := old.(*wlInstall); !ok || o == nil || t >= o.Time {
			r.store.Put(tp, key, v, e.Now) // the latest Install by time wins
		}
	case "Window":
		w := enrich.Rec(n["window"])
		v := &wlWindow{}
		if b, ok := enrich.Bool(w["isTopLevelWindow"]); ok {
			v.Top = &b
		}
		v.TopRef, _ = enrich.Int(w["topLevelWindowReference"])
		r.store.Put(tp, state.Key(f, e.Key, itemWindow+strconv.FormatInt(t, 10)), v, e.Now)
		out.WindowReference = enrich.Some(t)
		putWindow(out, v)
	case "WindowLocation":
		l := enrich.Rec(n["window_location"])
		v := &wlLocation{URL: locationURL(l), Host: enrich.Str(l["hostname"])}
		v.WindowRef, _ = enrich.Int(l["windowReference"])
		r.store.Put(tp, state.Key(f, e.Key, itemLocation+strconv.FormatInt(t, 10)), v, e.Now)
		out.URL, out.Hostname = v.URL, v.Host
		out.WindowLocationReference = enrich.Some(t)
		r.resolveWindow(e, tp, v.WindowRef, out)
	case "TextInput":
		ti := enrich.Rec(n["text_input"])
		ref, ok := enrich.Int(ti["windowLocationReference"])
		if !ok {
			break
		}
		out.WindowLocationReference = enrich.Some(ref)
		lv, found := r.store.Get(tp, state.Key(f, e.Key, itemLocation+strconv.FormatInt(ref, 10)), e.Now)
		if !found {
			out.Resolution = "location_unresolved"
			break
		}
		loc := lv.(*wlLocation)
		out.URL, out.Hostname = loc.URL, loc.Host
		r.resolveWindow(e, tp, loc.WindowRef, out)
	}

	if v, ok := r.store.Get(tp, state.Key(f, e.Key, itemInstall), e.Now); ok {
		in := v.(*wlInstall)
		out.InstallResolved, out.InstallLabel, out.InstallUserAgent = true, in.Label, in.UA
		out.InstallTime = enrich.Some(in.Time)
		if in.UA != "" {
			e.UA, e.UASource = in.UA, SourceWLInstall
		}
	}
	e.Enr.Weaklayer = out
}

func (r *Resolver) resolveWindow(e *enrich.Event, tp state.TP, ref int64, out *enrich.WeaklayerContext) {
	out.WindowReference = enrich.Some(ref)
	wv, ok := r.store.Get(tp, state.Key(string(e.Family), e.Key, itemWindow+strconv.FormatInt(ref, 10)), e.Now)
	if !ok {
		out.Resolution = "window_unresolved"
		return
	}
	out.Resolution = "resolved"
	putWindow(out, wv.(*wlWindow))
}

func putWindow(out *enrich.WeaklayerContext, w *wlWindow) {
	if w.Top != nil {
		out.TopLevel = enrich.OptBool{V: *w.Top, Set: true}
	}
	if w.TopRef != 0 {
		out.TopLevelWindowReference = enrich.Some(w.TopRef)
	}
}

// locationURL rebuilds the URL of a WindowLocation:
// protocol://hostname[:port]path search hash.
func locationURL(l map[string]any) string {
	proto, host := enrich.Str(l["protocol"]), enrich.Str(l["hostname"])
	if proto == "" && host == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString(proto)
	b.WriteString("://")
	b.WriteString(host)
	if p, ok := enrich.Int(l["port"]); ok {
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(p, 10))
	}
	b.WriteString(enrich.Str(l["path"]))
	b.WriteString(enrich.Str(l["search"]))
	b.WriteString(enrich.Str(l["hash"]))
	return b.String()
}

// ---- clicks

func (r *Resolver) clicks(e *enrich.Event) {
	n := e.Native
	tp := r.tp(e)
	out := &enrich.ClicksContext{}
	if s := enrich.Str(n["session"]); s != "" {
		out.Session, out.SessionSource = s, "event"
	} else if e.Key != "" {
		out.Session, out.SessionSource = e.Key, "partition_key"
	}
	pageKey := state.Key(string(e.Family), e.Key, itemPage)
	if p := enrich.Str(n["page"]); p != "" {
		out.Page, out.PageSource = p, "event"
		if v, ok := r.store.Get(tp, pageKey, e.Now); !ok || v.(*clPage).Page != p {
			r.store.Put(tp, pageKey, &clPage{Page: p}, e.Now)
		}
	} else if v, ok := r.store.Get(tp, pageKey, e.Now); ok {
		out.Page, out.PageSource = v.(*clPage).Page, "session"
	}
	if t := enrich.Rec(enrich.Rec(n["info"])["target"]); t != nil {
		id, name, class := enrich.Str(t["id"]), enrich.Str(t["name"]), enrich.Str(t["class"])
		classes := strings.Fields(class)
		var sel strings.Builder
		if id != "" {
			sel.WriteString("#" + id)
		}
		for _, c := range classes {
			sel.WriteString("." + c)
		}
		if name != "" {
			sel.WriteString(`[name="` + name + `"]`)
		}
		out.Target, out.TargetID, out.TargetName, out.TargetClasses = sel.String(), id, name, classes
	}
	e.Enr.Clicks = out
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
