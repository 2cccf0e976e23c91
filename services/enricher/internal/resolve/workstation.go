package resolve

import (
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
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
	out := map[string]any{
		"user_name":            avro.OptString(enrich.Str(user["name"])),
		"user_login":           avro.OptString(enrich.Str(user["login"])),
		"user_domain":          avro.OptString(enrich.Str(user["domain"])),
		"computer_name":        avro.OptString(enrich.Str(computer["name"])),
		"computer_domain":      avro.OptString(enrich.Str(computer["domain"])),
		"agent_version":        avro.OptString(enrich.Str(agent["version"])),
		"time_zone":            avro.OptString(enrich.Str(user["timezone"])),
		"location_type_names":  []any{},
		"parameter_type_names": []any{},
	}
	offset, hasOffset := enrich.Int(user["timezone_sec"])
	if hasOffset {
		out["time_zone_offset_sec"] = avro.Int(int32(offset))
	}
	act := enrich.Rec(n["activity"])
	if act != nil {
		if sec, ok := enrich.Int(act["time"]); ok {
			ms, _ := enrich.Int(act["time_ms"])
			t := time.Unix(sec, ms*int64(time.Millisecond)).UTC()
			if hasOffset && offset > -24*3600 && offset < 24*3600 {
				t = t.In(time.FixedZone("", int(offset)))
			}
			out["local_time"] = avro.String(t.Format("2006-01-02T15:04:05.000Z07:00"))
		}
		wa := enrich.Rec(act["window_activity"])
		if code, ok := enrich.Int(wa["type"]); ok {
			if et, ok := pws.LookupEventType(int(code)); ok {
				out["event_type_name"], out["event_type_group"] = avro.String(et.Name), avro.String(et.Group)
			}
		}
		if el := enrich.Rec(wa["element"]); el != nil {
			if code, ok := enrich.Int(el["type"]); ok {
				out["element_type_name"] = avro.OptString(pws.ControlElementName(int(code)))
			}
		}
		out["location_type_names"] = codeNames(enrich.Arr(wa["location"]))
		out["parameter_type_names"] = codeNames(enrich.Arr(wa["parameters"]))
	}
	e.Out["workstation"] = avro.Record(enrich.WorkstationContextName, out)
}

// codeNames names the control element code in each record's type.
func codeNames(items []any) []any {
	out := make([]any, len(items))
	for i, it := range items {
		name := ""
		if code, ok := enrich.Int(enrich.Rec(it)["type"]); ok {
			name = pws.ControlElementName(int(code))
		}
		out[i] = name
	}
	return out
}
