package adapter

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/event"
)

func TestClicksAdapt(t *testing.T) {
	readme := strings.TrimSpace(famRead(t, "clicks/readme_example_mousedown.json"))
	for _, tc := range []struct {
		name, raw, ip string
		typ, key      string
		quirks        []string
		unknown       bool
		want          map[string]string
	}{
		{"dejavu_readme", readme, "192.0.2.10", "mousedown", "192.0.2.10", nil, false, map[string]string{
			"type": `"mousedown"`, "info": `{"button":null,"target":{"class":"class: (1,1)","id":"(1,1)","name":null},"x":138,"y":136}`,
			"session": "null", "page": "null", "client_time": "null", "event_id": "null", "sequence": "null", "extra_json": "null",
			"envelope.event_type": `"mousedown"`, "envelope.partition_key": `"192.0.2.10"`,
		}},
		{"php_proxy_wrapper", `{"event":` + readme + `}`, "192.0.2.10", "mousedown", "192.0.2.10", []string{"event_wrapper"}, false, map[string]string{
			"info.target.id": `"(1,1)"`,
		}},
		// Synthetic below: shapes from agent/dejavu.js and the README.
		{"svg_class_object", `{"event":{"type":"mouseup","info":{"x":12.5,"y":40.25,"target":{"id":"","class":{}}}}}`, "", "mouseup", "anonymous",
			[]string{"event_wrapper", "class_svg_object"}, false, map[string]string{
				"info": `{"button":null,"target":{"class":"","id":"","name":null},"x":12.5,"y":40.25}`,
			}},
		{"form_control_name", `{"type":"mousedown","info":{"x":1,"y":2,"target":{"id":"email","name":"email","class":"input"}}}`, "192.0.2.10", "mousedown", "192.0.2.10", nil, false, map[string]string{
			"info.target.name": `"email"`,
		}},
		{"readme_mousemove", `{"type":"mousemove","info":{"x":300,"y":200,"button":1}}`, "192.0.2.10", "mousemove", "192.0.2.10", nil, false, map[string]string{
			"info.button": "1", "info.target": "null",
		}},
		{"sluice_agent_fields", `{"type":"click","info":{"x":1,"y":2,"target":{"id":"(0,2)","class":"cell"}},"session":"s-123","page":"https://demo.example/ttt","client_time":1700000000123,"event_id":"0190b6c4-1111-7000-8000-000000000001","sequence":7}`,
			"192.0.2.10", "click", "s-123", nil, false, map[string]string{
				"session": `"s-123"`, "page": `"https://demo.example/ttt"`, "client_time": `"2023-11-14T22:13:20.123Z"`,
				"event_id": `"0190b6c4-1111-7000-8000-000000000001"`, "sequence": "7",
				"envelope.client_time": `"2023-11-14T22:13:20.123Z"`,
			}},
		{"unknown_type_and_members", `{"type":"touchstart","info":{"x":1,"y":2,"pressure":0.5},"viewport":[1024,768]}`, "192.0.2.10", "touchstart", "192.0.2.10", nil, true, map[string]string{
			"extra_json": `"{\"info\":{\"pressure\":0.5},\"viewport\":[1024,768]}"`,
		}},
		{"empty_session_falls_back", `{"type":"click","info":{},"session":""}`, "192.0.2.10", "click", "192.0.2.10", nil, false, map[string]string{
			"session": `""`, "info": `{"button":null,"target":null,"x":null,"y":null}`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := famInput(t, tc.raw)
			in.Meta.IP = tc.ip
			out, js := famAdapt(t, event.Clicks, Clicks{}.Adapt, in)
			if out.EventType != tc.typ || out.PartitionKey != tc.key || out.Unknown != tc.unknown || !slices.Equal(out.Quirks, tc.quirks) {
				t.Errorf("EventType %q PartitionKey %q Unknown %v Quirks %q; want %q %q %v %q",
					out.EventType, out.PartitionKey, out.Unknown, out.Quirks, tc.typ, tc.key, tc.unknown, tc.quirks)
			}
			famExpect(t, js, tc.want)
		})
	}
	t.Run("event_id_and_time", func(t *testing.T) {
		out, _ := famAdapt(t, event.Clicks, Clicks{}.Adapt, famInput(t, `{"type":"click","info":{},"event_id":"e1","client_time":1700000000123}`))
		if out.EventID != "e1" || !out.ClientTime.Equal(time.UnixMilli(1700000000123)) {
			t.Errorf("EventID %q ClientTime %v", out.EventID, out.ClientTime)
		}
	})
}

func TestClicksReject(t *testing.T) {
	for _, tc := range []struct {
		name, raw, code, field string
		strict                 bool
	}{
		{"missing_type", `{"info":{"x":1,"y":2}}`, event.ReasonMissingField, "type", false},
		{"missing_info", `{"type":"mousedown"}`, event.ReasonMissingField, "info", false},
		{"wrapper_not_object", `{"event":"mousedown"}`, event.ReasonInvalidField, "event", false},
		{"x_string", `{"type":"mousedown","info":{"x":"138","y":136}}`, event.ReasonInvalidField, "info.x", false},
		{"class_number", `{"type":"mousedown","info":{"target":{"class":3}}}`, event.ReasonInvalidField, "info.target.class", false},
		{"target_string", `{"type":"mousedown","info":{"target":"cell"}}`, event.ReasonInvalidField, "info.target", false},
		{"client_time_float", `{"type":"mousedown","info":{},"client_time":1.5}`, event.ReasonInvalidField, "client_time", false},
		{"unknown_strict", `{"type":"touchstart","info":{}}`, event.ReasonUnknownType, "type", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := famInput(t, tc.raw)
			in.Meta.Strict = tc.strict
			famReject(t, Clicks{}.Adapt, in, tc.code, tc.field)
		})
	}
}

func FuzzClicksAdapt(f *testing.F) {
	readme := strings.TrimSpace(famRead(f, "clicks/readme_example_mousedown.json"))
	famFuzz(f, event.Clicks, Clicks{}.Adapt, []string{
		readme,
		`{"event":` + readme + `}`,
		`{"event":{"type":"mouseup","info":{"x":12.5,"y":40.25,"target":{"id":"","class":{}}}}}`,
		`{"type":"click","info":{"x":1,"y":2},"session":"s","page":"p","client_time":1700000000123,"event_id":"e","sequence":7,"more":1}`,
	})
}

func BenchmarkClicksAdapt(b *testing.B) {
	readme := strings.TrimSpace(famRead(b, "clicks/readme_example_mousedown.json"))
	b.Run("dejavu_wrapped", func(b *testing.B) { famBench(b, event.Clicks, Clicks{}.Adapt, `{"event":`+readme+`}`) })
}
