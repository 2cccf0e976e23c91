package resolve

import (
	"time"

	pws "github.com/sluicehq/sluice/pkg/workstation"
	"github.com/sluicehq/sluice/services/enricher/internal/enrich"
)

// workstation flattens the manifest every record carries (the gateway puts
// the archive's manifest on each), names the codes from the vendor tables
// and puts the activity time on the user's wall clock. It needs no state.
func workstation(e *enrich.Event) {
	n := e.Native
	man := enrich.Rec(n["manifest"])
	user, computer, agent := enrich.Rec(man["user"]), enrich.Rec(man["computer"]), enrich.Rec(man["agent"])
	out := &enrich.WorkstationContext{
		UserName:           enrich.Str(user["name"]),
		UserLogin:          enrich.Str(user["login"]),
		UserDomain:         enrich.Str(user["domain"]),
		ComputerName:       enrich.Str(computer["name"]),
		ComputerDomain:     enrich.Str(computer["domain"]),
		AgentVersion:       enrich.Str(agent["version"]),
		TimeZone:           enrich.Str(user["timezone"]),
		LocationTypeNames:  []string{},
		ParameterTypeNames: []string{},
	}
	offset, hasOffset := enrich.Int(user["timezone_sec"])
	if hasOffset {
		out.TimeZoneOffsetSec, out.HasTimeZoneOffset = int32(offset), true
	}
	act := enrich.Rec(n["activity"])
	if act != nil {
		if sec, ok := enrich.Int(act["time"]); ok {
			ms, _ := enrich.Int(act["time_ms"])
			t := time.Unix(sec, ms*int64(time.Millisecond)).UTC()
			if hasOffset && offset > -24*3600 && offset < 24*3600 {
				t = t.In(time.FixedZone("", int(offset)))
			}
			out.LocalTime = t.Format("2006-01-02T15:04:05.000Z07:00")
		}
		wa := enrich.Rec(act["window_activity"])
		if code, ok := enrich.Int(wa["type"]); ok {
			if et, ok := pws.LookupEventType(int(code)); ok {
				out.EventTypeName, out.EventTypeGroup = et.Name, et.Group
			}
		}
		if el := enrich.Rec(wa["element"]); el != nil {
			if code, ok := enrich.Int(el["type"]); ok {
				out.ElementTypeName = pws.ControlElementName(int(code))
			}
		}
		out.LocationTypeNames = codeNames(enrich.Arr(wa["location"]))
		out.ParameterTypeNames = codeNames(enrich.Arr(wa["parameters"]))
	}
	e.Enr.Workstation = out
}

// codeNames names the control element code in each record's type.
func codeNames(items []any) []string {
	out := make([]string, len(items))
	for i, it := range items {
		name := ""
		if code, ok := enrich.Int(enrich.Rec(it)["type"]); ok {
			name = pws.ControlElementName(int(code))
		}
		out[i] = name
	}
	return out
}
