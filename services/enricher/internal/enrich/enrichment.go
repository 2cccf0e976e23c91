package enrich

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
)

// Enrichment is the sluice.Enrichment record (schemas/enrichment/v2.avsc)
// as Go values. Processors fill it; the encoder writes it either straight
// to Avro binary (AppendBinary, the fast path: no per-field maps) or, when
// the record itself must be re-encoded, as goavro native values (Native).
//
// In optional string fields "" is written as null; the few fields where an
// empty string means something say so.
type Enrichment struct {
	EnrichedAt   time.Time
	Version      string
	Instance     string
	RawTopic     string
	RawPartition int32
	RawOffset    int64

	Geo         *Geo
	UserAgent   *UserAgent
	EdX         *EdxContext
	CrowdFrame  *CrowdframeContext
	Weaklayer   *WeaklayerContext
	Workstation *WorkstationContext
	Clicks      *ClicksContext
	Privacy     *Privacy
	DerivedTime *DerivedTime
}

// Geo is sluice.Geo.
type Geo struct {
	IPSource       string
	IPKind         string
	CountryCode    string
	CountryName    string
	Region         string
	RegionCode     string
	City           string
	PostalCode     string
	HasLocation    bool
	Latitude       float64
	Longitude      float64
	AccuracyRadius int32 // 0: null
	TimeZone       string
	ASN            int64 // 0: null
	ASOrg          string
	CityDB         string
	ASNDB          string
}

// UserAgent is sluice.UserAgent.
type UserAgent struct {
	Source         string
	Browser        string
	BrowserVersion string
	OS             string
	OSVersion      string
	DeviceType     string
	Bot            bool
}

// EdxContext is sluice.EdxContext.
type EdxContext struct {
	CourseID       string
	CourseIDSource string
	CourseKeyForm  string
	OrgID          string
	EventType      string
	EventName      string
	Shape          string
}

// CrowdframeContext is sluice.CrowdframeContext.
type CrowdframeContext struct {
	Resolved      bool
	Match         string
	UA            string
	IP            string
	ContextTime   time.Time // zero: null
	Section       string
	SectionSource string
}

// OptInt64 is an optional long.
type OptInt64 struct {
	V   int64
	Set bool
}

// Some returns a set OptInt64.
func Some(v int64) OptInt64 { return OptInt64{v, true} }

// OptBool is an optional boolean.
type OptBool struct {
	V   bool
	Set bool
}

// WeaklayerContext is sluice.WeaklayerContext.
type WeaklayerContext struct {
	Resolution              string
	URL                     string
	Hostname                string
	WindowLocationReference OptInt64
	WindowReference         OptInt64
	TopLevel                OptBool
	TopLevelWindowReference OptInt64
	InstallResolved         bool
	InstallLabel            string // written (even "") when InstallResolved
	InstallUserAgent        string
	InstallTime             OptInt64
}

// WorkstationContext is sluice.WorkstationContext.
type WorkstationContext struct {
	UserName           string
	UserLogin          string
	UserDomain         string
	ComputerName       string
	ComputerDomain     string
	AgentVersion       string
	TimeZone           string
	TimeZoneOffsetSec  int32
	HasTimeZoneOffset  bool
	EventTypeName      string
	EventTypeGroup     string
	ElementTypeName    string
	LocationTypeNames  []string
	ParameterTypeNames []string
	LocalTime          string
}

// ClicksContext is sluice.ClicksContext.
type ClicksContext struct {
	Session       string
	SessionSource string
	Page          string
	PageSource    string
	Target        string
	TargetID      string
	TargetName    string
	TargetClasses []string
}

// Privacy is sluice.Privacy.
type Privacy struct {
	IP      string
	KeyID   string
	Dropped []string
	Hashed  []string
}

// DerivedTime is sluice.DerivedTime.
type DerivedTime struct {
	Created     time.Time
	Sent        time.Time
	Received    time.Time
	Corrected   time.Time
	SkewMicros  int64
	Implausible bool
}

// ---- goavro native values

func optStr(s string) any { return avro.OptString(s) }

func optLong(v int64) any {
	if v == 0 {
		return nil
	}
	return avro.Long(v)
}

func (o OptInt64) native() any {
	if !o.Set {
		return nil
	}
	return avro.Long(o.V)
}

func strs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// Native returns the record as goavro native values (the fields of the
// sluice.Enrichment record; wrap it with avro.Record(avro.EnrichmentName, …)
// for the union).
func (e *Enrichment) Native() map[string]any {
	m := map[string]any{
		"enriched_at":       e.EnrichedAt,
		"enricher_version":  e.Version,
		"enricher_instance": e.Instance,
		"raw_topic":         e.RawTopic,
		"raw_partition":     e.RawPartition,
		"raw_offset":        e.RawOffset,
		"geo":               nil, "user_agent": nil, "edx": nil, "crowdframe": nil, "weaklayer": nil,
		"workstation": nil, "clicks": nil, "privacy": nil, "derived_time": nil,
	}
	if g := e.Geo; g != nil {
		r := map[string]any{
			"ip_source": optStr(g.IPSource), "ip_kind": g.IPKind, "country_code": optStr(g.CountryCode),
			"country_name": optStr(g.CountryName), "region": optStr(g.Region), "region_code": optStr(g.RegionCode),
			"city": optStr(g.City), "postal_code": optStr(g.PostalCode), "latitude": nil, "longitude": nil,
			"accuracy_radius": nil, "time_zone": optStr(g.TimeZone), "asn": optLong(g.ASN), "as_org": optStr(g.ASOrg),
			"city_db": optStr(g.CityDB), "asn_db": optStr(g.ASNDB),
		}
		if g.HasLocation {
			r["latitude"], r["longitude"] = avro.Double(g.Latitude), avro.Double(g.Longitude)
		}
		if g.AccuracyRadius != 0 {
			r["accuracy_radius"] = avro.Int(g.AccuracyRadius)
		}
		m["geo"] = avro.Record(GeoName, r)
	}
	if u := e.UserAgent; u != nil {
		m["user_agent"] = avro.Record(UserAgentName, map[string]any{
			"source": u.Source, "browser": optStr(u.Browser), "browser_version": optStr(u.BrowserVersion),
			"os": optStr(u.OS), "os_version": optStr(u.OSVersion), "device_type": u.DeviceType, "bot": u.Bot,
		})
	}
	if x := e.EdX; x != nil {
		m["edx"] = avro.Record(EdxContextName, map[string]any{
			"course_id": optStr(x.CourseID), "course_id_source": optStr(x.CourseIDSource),
			"course_key_form": optStr(x.CourseKeyForm), "org_id": optStr(x.OrgID),
			"event_type": optStr(x.EventType), "event_name": optStr(x.EventName), "shape": x.Shape,
		})
	}
	if c := e.CrowdFrame; c != nil {
		r := map[string]any{
			"context_resolved": c.Resolved, "context_match": optStr(c.Match), "ua": optStr(c.UA), "ip": optStr(c.IP),
			"context_time": nil, "section": optStr(c.Section), "section_source": optStr(c.SectionSource),
		}
		if !c.ContextTime.IsZero() {
			r["context_time"] = map[string]any{"long.timestamp-millis": c.ContextTime}
		}
		m["crowdframe"] = avro.Record(CrowdframeContextName, r)
	}
	if w := e.Weaklayer; w != nil {
		r := map[string]any{
			"resolution": w.Resolution, "url": optStr(w.URL), "hostname": optStr(w.Hostname),
			"window_location_reference": w.WindowLocationReference.native(), "window_reference": w.WindowReference.native(),
			"top_level": nil, "top_level_window_reference": w.TopLevelWindowReference.native(),
			"install_resolved": w.InstallResolved, "install_label": nil,
			"install_user_agent": optStr(w.InstallUserAgent), "install_time": w.InstallTime.native(),
		}
		if w.TopLevel.Set {
			r["top_level"] = avro.Boolean(w.TopLevel.V)
		}
		if w.InstallResolved {
			r["install_label"] = avro.String(w.InstallLabel)
		}
		m["weaklayer"] = avro.Record(WeaklayerContextName, r)
	}
	if w := e.Workstation; w != nil {
		r := map[string]any{
			"user_name": optStr(w.UserName), "user_login": optStr(w.UserLogin), "user_domain": optStr(w.UserDomain),
			"computer_name": optStr(w.ComputerName), "computer_domain": optStr(w.ComputerDomain),
			"agent_version": optStr(w.AgentVersion), "time_zone": optStr(w.TimeZone), "time_zone_offset_sec": nil,
			"event_type_name": optStr(w.EventTypeName), "event_type_group": optStr(w.EventTypeGroup),
			"element_type_name": optStr(w.ElementTypeName), "location_type_names": strs(w.LocationTypeNames),
			"parameter_type_names": strs(w.ParameterTypeNames), "local_time": optStr(w.LocalTime),
		}
		if w.HasTimeZoneOffset {
			r["time_zone_offset_sec"] = avro.Int(w.TimeZoneOffsetSec)
		}
		m["workstation"] = avro.Record(WorkstationContextName, r)
	}
	if c := e.Clicks; c != nil {
		m["clicks"] = avro.Record(ClicksContextName, map[string]any{
			"session": optStr(c.Session), "session_source": optStr(c.SessionSource), "page": optStr(c.Page),
			"page_source": optStr(c.PageSource), "target": optStr(c.Target), "target_id": optStr(c.TargetID),
			"target_name": optStr(c.TargetName), "target_classes": strs(c.TargetClasses),
		})
	}
	if p := e.Privacy; p != nil {
		m["privacy"] = avro.Record(PrivacyName, map[string]any{
			"ip": p.IP, "key_id": optStr(p.KeyID), "dropped": strs(p.Dropped), "hashed": strs(p.Hashed),
		})
	}
	if d := e.DerivedTime; d != nil {
		m["derived_time"] = avro.Record(DerivedTimeName, map[string]any{
			"created": d.Created, "sent": d.Sent, "received": d.Received, "corrected": d.Corrected,
			"skew_micros": d.SkewMicros, "implausible": d.Implausible,
		})
	}
	return m
}

// ---- Avro binary

// AppendBinary appends the Avro binary encoding of the record (not of the
// union around it) to buf, field by field in the order of
// schemas/enrichment/v2.avsc. TestEnrichmentBinaryMatchesGoavro keeps the
// two in step.
func (e *Enrichment) AppendBinary(buf []byte) []byte {
	buf = appendLong(buf, e.EnrichedAt.UnixMicro())
	buf = appendString(buf, e.Version)
	buf = appendString(buf, e.Instance)
	buf = appendString(buf, e.RawTopic)
	buf = appendLong(buf, int64(e.RawPartition))
	buf = appendLong(buf, e.RawOffset)

	if g := e.Geo; g == nil {
		buf = append(buf, 0)
	} else {
		buf = append(buf, 2)
		buf = appendOptString(buf, g.IPSource)
		buf = appendString(buf, g.IPKind)
		buf = appendOptString(buf, g.CountryCode)
		buf = appendOptString(buf, g.CountryName)
		buf = appendOptString(buf, g.Region)
		buf = appendOptString(buf, g.RegionCode)
		buf = appendOptString(buf, g.City)
		buf = appendOptString(buf, g.PostalCode)
		if g.HasLocation {
			buf = appendOptDouble(buf, g.Latitude)
			buf = appendOptDouble(buf, g.Longitude)
		} else {
			buf = append(buf, 0, 0)
		}
		if g.AccuracyRadius != 0 {
			buf = appendLong(append(buf, 2), int64(g.AccuracyRadius))
		} else {
			buf = append(buf, 0)
		}
		buf = appendOptString(buf, g.TimeZone)
		buf = appendOptLong(buf, OptInt64{g.ASN, g.ASN != 0})
		buf = appendOptString(buf, g.ASOrg)
		buf = appendOptString(buf, g.CityDB)
		buf = appendOptString(buf, g.ASNDB)
	}

	if u := e.UserAgent; u == nil {
		buf = append(buf, 0)
	} else {
		buf = append(buf, 2)
		buf = appendString(buf, u.Source)
		buf = appendOptString(buf, u.Browser)
		buf = appendOptString(buf, u.BrowserVersion)
		buf = appendOptString(buf, u.OS)
		buf = appendOptString(buf, u.OSVersion)
		buf = appendString(buf, u.DeviceType)
		buf = appendBool(buf, u.Bot)
	}

	if x := e.EdX; x == nil {
		buf = append(buf, 0)
	} else {
		buf = append(buf, 2)
		buf = appendOptString(buf, x.CourseID)
		buf = appendOptString(buf, x.CourseIDSource)
		buf = appendOptString(buf, x.CourseKeyForm)
		buf = appendOptString(buf, x.OrgID)
		buf = appendOptString(buf, x.EventType)
		buf = appendOptString(buf, x.EventName)
		buf = appendString(buf, x.Shape)
	}

	if c := e.CrowdFrame; c == nil {
		buf = append(buf, 0)
	} else {
		buf = append(buf, 2)
		buf = appendBool(buf, c.Resolved)
		buf = appendOptString(buf, c.Match)
		buf = appendOptString(buf, c.UA)
		buf = appendOptString(buf, c.IP)
		buf = appendOptLong(buf, OptInt64{c.ContextTime.UnixMilli(), !c.ContextTime.IsZero()})
		buf = appendOptString(buf, c.Section)
		buf = appendOptString(buf, c.SectionSource)
	}

	if w := e.Weaklayer; w == nil {
		buf = append(buf, 0)
	} else {
		buf = append(buf, 2)
		buf = appendString(buf, w.Resolution)
		buf = appendOptString(buf, w.URL)
		buf = appendOptString(buf, w.Hostname)
		buf = appendOptLong(buf, w.WindowLocationReference)
		buf = appendOptLong(buf, w.WindowReference)
		if w.TopLevel.Set {
			buf = appendBool(append(buf, 2), w.TopLevel.V)
		} else {
			buf = append(buf, 0)
		}
		buf = appendOptLong(buf, w.TopLevelWindowReference)
		buf = appendBool(buf, w.InstallResolved)
		if w.InstallResolved {
			buf = appendString(append(buf, 2), w.InstallLabel)
		} else {
			buf = append(buf, 0)
		}
		buf = appendOptString(buf, w.InstallUserAgent)
		buf = appendOptLong(buf, w.InstallTime)
	}

	if w := e.Workstation; w == nil {
		buf = append(buf, 0)
	} else {
		buf = append(buf, 2)
		buf = appendOptString(buf, w.UserName)
		buf = appendOptString(buf, w.UserLogin)
		buf = appendOptString(buf, w.UserDomain)
		buf = appendOptString(buf, w.ComputerName)
		buf = appendOptString(buf, w.ComputerDomain)
		buf = appendOptString(buf, w.AgentVersion)
		buf = appendOptString(buf, w.TimeZone)
		if w.HasTimeZoneOffset {
			buf = appendLong(append(buf, 2), int64(w.TimeZoneOffsetSec))
		} else {
			buf = append(buf, 0)
		}
		buf = appendOptString(buf, w.EventTypeName)
		buf = appendOptString(buf, w.EventTypeGroup)
		buf = appendOptString(buf, w.ElementTypeName)
		buf = appendStrings(buf, w.LocationTypeNames)
		buf = appendStrings(buf, w.ParameterTypeNames)
		buf = appendOptString(buf, w.LocalTime)
	}

	if c := e.Clicks; c == nil {
		buf = append(buf, 0)
	} else {
		buf = append(buf, 2)
		buf = appendOptString(buf, c.Session)
		buf = appendOptString(buf, c.SessionSource)
		buf = appendOptString(buf, c.Page)
		buf = appendOptString(buf, c.PageSource)
		buf = appendOptString(buf, c.Target)
		buf = appendOptString(buf, c.TargetID)
		buf = appendOptString(buf, c.TargetName)
		buf = appendStrings(buf, c.TargetClasses)
	}

	if p := e.Privacy; p == nil {
		buf = append(buf, 0)
	} else {
		buf = append(buf, 2)
		buf = appendString(buf, p.IP)
		buf = appendOptString(buf, p.KeyID)
		buf = appendStrings(buf, p.Dropped)
		buf = appendStrings(buf, p.Hashed)
	}

	if d := e.DerivedTime; d == nil {
		buf = append(buf, 0)
	} else {
		buf = append(buf, 2)
		buf = appendLong(buf, d.Created.UnixMicro())
		buf = appendLong(buf, d.Sent.UnixMicro())
		buf = appendLong(buf, d.Received.UnixMicro())
		buf = appendLong(buf, d.Corrected.UnixMicro())
		buf = appendLong(buf, d.SkewMicros)
		buf = appendBool(buf, d.Implausible)
	}
	return buf
}

// appendLong writes a zigzag varint (Avro int and long).
func appendLong(buf []byte, v int64) []byte {
	return binary.AppendUvarint(buf, uint64((v<<1)^(v>>63)))
}

func appendString(buf []byte, s string) []byte {
	buf = appendLong(buf, int64(len(s)))
	return append(buf, s...)
}

// appendOptString writes ["null","string"]: null for "".
func appendOptString(buf []byte, s string) []byte {
	if s == "" {
		return append(buf, 0)
	}
	return appendString(append(buf, 2), s)
}

func appendOptLong(buf []byte, o OptInt64) []byte {
	if !o.Set {
		return append(buf, 0)
	}
	return appendLong(append(buf, 2), o.V)
}

func appendOptDouble(buf []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(append(buf, 2), math.Float64bits(f))
}

func appendBool(buf []byte, b bool) []byte {
	if b {
		return append(buf, 1)
	}
	return append(buf, 0)
}

// appendStrings writes an array of strings: one block, then the end.
func appendStrings(buf []byte, ss []string) []byte {
	if len(ss) > 0 {
		buf = appendLong(buf, int64(len(ss)))
		for _, s := range ss {
			buf = appendString(buf, s)
		}
	}
	return append(buf, 0)
}
