package enrich

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/schemas"
)

func TestChain(t *testing.T) {
	add := func(k string) Processor {
		return ProcessorFunc(func(_ context.Context, e *Event) error {
			e.Native["order"] = e.Native["order"].(string) + k
			return nil
		})
	}
	e := &Event{Family: event.EdX, Native: map[string]any{"order": ""}}
	if err := (Chain{add("a"), add("b")}).Process(context.Background(), e); err != nil || e.Native["order"] != "ab" {
		t.Fatalf("chain = %v, %v; want order ab", e.Native, err)
	}

	boom := errors.New("boom")
	fail := ProcessorFunc(func(context.Context, *Event) error { return boom })
	e = &Event{Native: map[string]any{"order": ""}}
	if err := (Chain{fail, add("c")}).Process(context.Background(), e); !errors.Is(err, boom) || e.Native["order"] != "" {
		t.Fatalf("failing chain: err = %v, order %q; want boom before c ran", err, e.Native["order"])
	}

	e = &Event{Native: map[string]any{"x": 1}}
	if err := (Chain{}).Process(context.Background(), e); err != nil || e.Native["x"] != 1 {
		t.Fatalf("empty chain = %v, %v", e.Native, err)
	}
}

// TestStampEncodes checks a stamped record against the current
// sluice.Enrichment schema.
func TestStampEncodes(t *testing.T) {
	text, err := schemas.Compose(`{"type":"record","name":"T","namespace":"test","fields":[
		{"name":"enrichment","type":["null","sluice.Enrichment"],"default":null}]}`)
	if err != nil {
		t.Fatal(err)
	}
	c, err := avro.NewCodec(text)
	if err != nil {
		t.Fatal(err)
	}
	e := &Event{Native: map[string]any{"enrichment": nil}}
	Stamp(e, Provenance{EnrichedAt: time.Unix(1, 0), Version: "v", Instance: "i", Topic: "sluice.raw.edx", Partition: 2, Offset: 9})
	e.SetNative()
	if err := c.Validate(e.Native); err != nil {
		t.Fatalf("stamped record does not encode: %v", err)
	}
	e.Enr.Geo = &Geo{IPKind: "absent"}
	e.SetNative()
	if err := c.Validate(e.Native); err != nil {
		t.Fatalf("stamped record with geo does not encode: %v", err)
	}
}

// TestEnrichmentBinaryMatchesGoavro checks the hand-written encoder (the
// fast path) byte for byte against goavro encoding the native values with
// the schema, for sparse and full records: a schema change that the
// encoder does not follow fails here.
func TestEnrichmentBinaryMatchesGoavro(t *testing.T) {
	text, err := schemas.Latest("enrichment")
	if err != nil {
		t.Fatal(err)
	}
	c, err := avro.NewCodec(text)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)
	base := Enrichment{EnrichedAt: at, Version: "v1.2.3", Instance: "host-1", RawTopic: "sluice.raw.edx", RawPartition: 5, RawOffset: 1 << 40}
	full := base
	full.Geo = &Geo{IPSource: "ip", IPKind: "public", CountryCode: "GB", CountryName: "United Kingdom", Region: "England",
		RegionCode: "ENG", City: "London", PostalCode: "EC1A", HasLocation: true, Latitude: 51.5142, Longitude: -0.0931,
		AccuracyRadius: 10, TimeZone: "Europe/London", ASN: 20712, ASOrg: "Andrews & Arnold Ltd", CityDB: "c@2026", ASNDB: "a@2026"}
	full.UserAgent = &UserAgent{Source: "agent", Browser: "Chrome", BrowserVersion: "124.0", OS: "Windows", OSVersion: "10", DeviceType: "desktop", Bot: true}
	full.EdX = &EdxContext{CourseID: "course-v1:a+b+c", CourseIDSource: "page", CourseKeyForm: "course-v1", OrgID: "a", EventType: "x", EventName: "y", Shape: "envelope"}
	full.CrowdFrame = &CrowdframeContext{Resolved: true, Match: "worker", UA: "ua", IP: "1.2.3.4", ContextTime: at.Truncate(time.Millisecond), Section: "s", SectionSource: "carried"}
	full.Weaklayer = &WeaklayerContext{Resolution: "resolved", URL: "https://x/", Hostname: "x", WindowLocationReference: Some(-7),
		WindowReference: Some(1_700_000_000_000_123), TopLevel: OptBool{false, true}, TopLevelWindowReference: Some(3),
		InstallResolved: true, InstallLabel: "", InstallUserAgent: "ua", InstallTime: Some(9)}
	full.Workstation = &WorkstationContext{UserName: "n", UserLogin: "l", UserDomain: "d", ComputerName: "c", ComputerDomain: "cd",
		AgentVersion: "2", TimeZone: "Europe/Moscow", TimeZoneOffsetSec: -10800, HasTimeZoneOffset: true, EventTypeName: "Invoke",
		EventTypeGroup: "UI Elements", ElementTypeName: "Button", LocationTypeNames: []string{"Window", ""}, ParameterTypeNames: []string{"Edit"},
		LocalTime: "2023-08-22T11:48:32.469+03:00"}
	full.Clicks = &ClicksContext{Session: "s", SessionSource: "event", Page: "p", PageSource: "session", Target: "#a.b", TargetID: "a", TargetName: "n", TargetClasses: []string{"b", "c"}}
	full.Privacy = &Privacy{IP: "hmac", KeyID: "k1", Dropped: []string{"agent"}, Hashed: []string{"username", "ip"}}
	full.DerivedTime = &DerivedTime{Created: at.Add(-time.Hour), Sent: at, Received: at.Add(time.Second), Corrected: at, SkewMicros: -1_000_000, Implausible: true}
	sparse := base
	sparse.Geo = &Geo{IPKind: "absent"}
	sparse.UserAgent = &UserAgent{Source: "s", DeviceType: "unknown"}
	sparse.EdX = &EdxContext{Shape: "tracking_log"}
	sparse.CrowdFrame = &CrowdframeContext{}
	sparse.Weaklayer = &WeaklayerContext{Resolution: "not_applicable"}
	sparse.Workstation = &WorkstationContext{}
	sparse.Clicks = &ClicksContext{}
	sparse.Privacy = &Privacy{IP: "keep"}

	for name, e := range map[string]*Enrichment{"provenance only": &base, "full": &full, "sparse": &sparse} {
		want, err := c.Encode(nil, e.Native())
		if err != nil {
			t.Fatalf("%s: goavro: %v", name, err)
		}
		got := e.AppendBinary(nil)
		if string(got) != string(want[5:]) {
			t.Errorf("%s: AppendBinary\n%x\ngoavro\n%x", name, got, want[5:])
		}
	}
}

func TestNativeReaders(t *testing.T) {
	if Str(avro.String("x")) != "x" || Str("y") != "y" || Str(nil) != "" || Str(avro.Long(1)) != "" {
		t.Error("Str")
	}
	if v, ok := Int(avro.Long(7)); !ok || v != 7 {
		t.Error("Int long union")
	}
	if v, ok := Int(int32(3)); !ok || v != 3 {
		t.Error("Int int32")
	}
	if _, ok := Int(avro.String("7")); ok {
		t.Error("Int of a string")
	}
	if b, ok := Bool(avro.Boolean(true)); !ok || !b {
		t.Error("Bool")
	}
	inner := map[string]any{"a": 1, "b": 2}
	if Rec(map[string]any{"sluice.x.R": inner})["a"] != 1 || Rec(inner)["b"] != 2 || Rec(nil) != nil {
		t.Error("Rec")
	}
	// A record of one field is not mistaken for a union branch.
	one := map[string]any{"section": avro.String("s")}
	if Rec(one)["section"] == nil {
		t.Error("Rec of a one-field record")
	}
	if RecBranch(map[string]any{"sluice.x.R": inner}, "sluice.x.Other") != nil {
		t.Error("RecBranch of another branch")
	}
	now := time.Unix(5, 0)
	if !Time(map[string]any{"long.timestamp-micros": now}).Equal(now) || !Time(now).Equal(now) {
		t.Error("Time")
	}
}
