package adapter

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/event"
)

const (
	wlTestSensor = "f5d4650e-5c73-4384-bfeb-90153fe65e0c"
	wlTestGroup  = "68886d61-572b-41a5-8edd-93a564fb5ba3"
)

// wlElements splits a testdata file holding one JSON object or an array of
// them into the objects' JSON texts.
func wlElements(tb testing.TB, name string) []string {
	tb.Helper()
	text := famRead(tb, name)
	var arr []json.RawMessage
	if err := json.Unmarshal([]byte(text), &arr); err != nil {
		return []string{text}
	}
	out := make([]string, len(arr))
	for i, a := range arr {
		out[i] = string(a)
	}
	return out
}

func TestWeaklayerAdapt(t *testing.T) {
	// Seed 002's documentation examples carry sensor and group, as the
	// gateway writes them out: the generic endpoint's form.
	docs := wlElements(t, "weaklayer/seed002_doc_examples.json")
	for _, tc := range []struct {
		name, raw, typ string
		want           map[string]string
	}{
		{"seed002/Install", docs[0], "Install", map[string]string{
			"time": "1594209020167364", "sensor": `"` + wlTestSensor + `"`, "group": `"` + wlTestGroup + `"`,
			"install": `{"isNewInstall":true,"label":"Mitch's Laptop","userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:82.0) Gecko/20100101 Firefox/82.0"}`,
			"window":  "null", "window_location": "null", "text_input": "null", "extra_json": "null",
			"envelope.client_time": `"2020-07-08T11:50:20.167364Z"`,
		}},
		{"seed002/Window", docs[1], "Window", map[string]string{
			"window": `{"isTopLevelWindow":true,"topLevelWindowReference":1601950136204842}`, "install": "null",
		}},
		{"seed002/WindowLocation", docs[2], "WindowLocation", map[string]string{
			"window_location": `{"hash":"","hostname":"www.youtube.com","path":"/","port":8443,"protocol":"https","search":"","windowReference":1594209078132495}`,
		}},
		{"seed002/TextInput", docs[3], "TextInput", map[string]string{
			"text_input": `{"inputType":"password","textHash":"kR8mTB/hc85+gKnpGXG6UuRlPFCLyyLmEt30hKoNhqM=","textLength":17,"windowLocationReference":1601950622368245}`,
		}},
		{"WindowLocation_without_port", `{"type":"WindowLocation","time":5,"sensor":"s","group":"g","protocol":"file","hostname":"","path":"/tmp/x.html","search":"","hash":"","windowReference":4}`,
			"WindowLocation", map[string]string{"window_location.port": "null", "window_location.hostname": `""`}},
		{"Window_extra_member", `{"type":"Window","time":5,"sensor":"s","group":"g","isTopLevelWindow":false,"topLevelWindowReference":0,"frameDepth":2}`,
			"Window", map[string]string{"extra_json": `"{\"frameDepth\":2}"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, js := famAdapt(t, event.Weaklayer, Weaklayer{}.Adapt, famInput(t, tc.raw))
			if out.EventType != tc.typ || out.Unknown || len(out.Quirks) != 0 {
				t.Errorf("EventType %q Unknown %v Quirks %q, want %q, false, none", out.EventType, out.Unknown, out.Quirks, tc.typ)
			}
			if famAt(t, js, "sensor") != `"`+out.PartitionKey+`"` {
				t.Errorf("PartitionKey = %q, want the sensor", out.PartitionKey)
			}
			famExpect(t, js, tc.want)
		})
	}
}

func TestWeaklayerAdaptFromSensor(t *testing.T) {
	// The Weaklayer gateway's own test events carry no sensor or group:
	// the native endpoint takes them from the token.
	pageLoads := wlElements(t, "weaklayer/gateway_sensor_test_legacy_PageLoad_batch.json")
	docs := wlElements(t, "weaklayer/seed002_doc_examples.json")
	for _, tc := range []struct {
		name, raw, typ string
		quirks         []string
		unknown        bool
		want           map[string]string
	}{
		{"gateway_test/WindowLocation", famRead(t, "weaklayer/gateway_events_test_WindowLocation.json"), "WindowLocation", nil, false, map[string]string{
			"time": "45678", "sensor": `"tok-sensor"`, "group": `"tok-group"`,
			"window_location": `{"hash":"","hostname":"weaklayer.com","path":"","port":443,"protocol":"https","search":"","windowReference":1}`,
		}},
		{"gateway_test/validWindowEvent", famRead(t, "weaklayer/gateway_events_test_validWindowEvent.json"), "Window", nil, false, map[string]string{
			"window": `{"isTopLevelWindow":null,"topLevelWindowReference":null}`,
		}},
		{"gateway_test/validUnknownEvent", famRead(t, "weaklayer/gateway_events_test_validUnknownEvent.json"), "SuperAwesomeFutureEvent", nil, true, map[string]string{
			"type": `"SuperAwesomeFutureEvent"`, "time": "45678452345", "window": "null",
			"extra_json": `"{\"beans\":[1,2,3,4,5,6,7,8],\"cooooool\":{\"asdfas\":\"adfgsdfgsdfg\"},\"yo\":\"yo\"}"`,
		}},
		{"gateway_test/PageLoad_0", pageLoads[0], "WindowLocation", []string{"type_pageload"}, false, map[string]string{
			"type": `"WindowLocation"`, "time": "1", "window_location.port": "99", "window_location.path": "null",
		}},
		{"gateway_test/PageLoad_1", pageLoads[1], "WindowLocation", []string{"type_pageload"}, false, map[string]string{"window_location.port": "443"}},
		{"gateway_test/PageLoad_2", pageLoads[2], "WindowLocation", []string{"type_pageload"}, false, map[string]string{
			"window_location.protocol": `"http"`, "window_location.port": "80",
		}},
		{"body_sensor_overridden", docs[3], "TextInput", []string{"body_sensor_overridden"}, false, map[string]string{
			"sensor": `"tok-sensor"`, "group": `"tok-group"`, "text_input.textLength": "17",
		}},
		{"body_sensor_same", `{"type":"Window","time":7,"sensor":"tok-sensor","group":"tok-group"}`, "Window", nil, false, nil},
		{"type_missing", `{"time":7,"whatever":1}`, "", []string{"type_missing"}, true, map[string]string{
			"type": `""`, "extra_json": `"{\"whatever\":1}"`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			adapt := func(in *Input) (*Output, *event.Rejection) {
				return Weaklayer{}.AdaptFromSensor(in, "tok-sensor", "tok-group")
			}
			out, js := famAdapt(t, event.Weaklayer, adapt, famInput(t, tc.raw))
			if out.EventType != tc.typ || out.Unknown != tc.unknown || !slices.Equal(out.Quirks, tc.quirks) {
				t.Errorf("EventType %q Unknown %v Quirks %q, want %q %v %q", out.EventType, out.Unknown, out.Quirks, tc.typ, tc.unknown, tc.quirks)
			}
			if out.PartitionKey != "tok-sensor" {
				t.Errorf("PartitionKey = %q", out.PartitionKey)
			}
			famExpect(t, js, tc.want)
		})
	}
}

func TestWeaklayerClientTime(t *testing.T) {
	out, rej := Weaklayer{}.AdaptFromSensor(famInput(t, `{"type":"Window","time":1594209078132495}`), "s", "g")
	if rej != nil {
		t.Fatal(rej)
	}
	if want := time.UnixMicro(1594209078132495); !out.ClientTime.Equal(want) {
		t.Errorf("ClientTime = %v, want %v", out.ClientTime, want)
	}
}

func TestWeaklayerReject(t *testing.T) {
	generic := Weaklayer{}.Adapt
	native := func(in *Input) (*Output, *event.Rejection) {
		return Weaklayer{}.AdaptFromSensor(in, "tok-sensor", "tok-group")
	}
	for _, tc := range []struct {
		name        string
		adapt       func(*Input) (*Output, *event.Rejection)
		raw         string
		strict      bool
		code, field string
	}{
		{"TextCapture", native, `{"type":"TextCapture","time":9,"text":"hunter2","inputType":"password"}`, false, event.ReasonForbiddenType, "type"},
		{"TextCapture_generic", generic, `{"type":"TextCapture","time":9,"sensor":"s","group":"g","text":"hunter2"}`, false, event.ReasonForbiddenType, "type"},
		{"Install_from_sensor", native, `{"type":"Install","time":9,"label":"x","isNewInstall":true,"userAgent":""}`, false, event.ReasonForbiddenType, "type"},
		{"time_zero", native, `{"type":"Window","time":0}`, false, event.ReasonInvalidField, "time"},
		{"time_negative", native, `{"type":"Window","time":-5}`, false, event.ReasonInvalidField, "time"},
		{"time_missing", native, `{"type":"Window"}`, false, event.ReasonMissingField, "time"},
		{"time_string", native, `{"type":"Window","time":"5"}`, false, event.ReasonInvalidField, "time"},
		{"time_fraction", native, `{"type":"Window","time":5.5}`, false, event.ReasonInvalidField, "time"},
		{"generic_no_sensor", generic, `{"type":"Window","time":5,"group":"g"}`, false, event.ReasonMissingField, "sensor"},
		{"generic_no_group", generic, `{"type":"Window","time":5,"sensor":"s"}`, false, event.ReasonMissingField, "group"},
		{"generic_sensor_number", generic, `{"type":"Window","time":5,"sensor":1,"group":"g"}`, false, event.ReasonInvalidField, "sensor"},
		{"type_number", native, `{"type":3,"time":5}`, false, event.ReasonInvalidField, "type"},
		{"unknown_strict", native, `{"type":"SuperAwesomeFutureEvent","time":5}`, true, event.ReasonUnknownType, "type"},
		{"port_out_of_range", native, `{"type":"WindowLocation","time":5,"port":70000}`, false, event.ReasonInvalidField, "port"},
		{"port_string", native, `{"type":"WindowLocation","time":5,"port":"443"}`, false, event.ReasonInvalidField, "port"},
		{"isTopLevelWindow_string", native, `{"type":"Window","time":5,"isTopLevelWindow":"true"}`, false, event.ReasonInvalidField, "isTopLevelWindow"},
		{"textLength_fraction", native, `{"type":"TextInput","time":5,"textLength":1.5}`, false, event.ReasonInvalidField, "textLength"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := famInput(t, tc.raw)
			in.Meta.Strict = tc.strict
			famReject(t, tc.adapt, in, tc.code, tc.field)
		})
	}
	t.Run("Install_generic_accepted", func(t *testing.T) {
		famAdapt(t, event.Weaklayer, generic, famInput(t, wlElements(t, "weaklayer/seed002_doc_examples.json")[0]))
	})
}

func wlSeeds(tb testing.TB) []string {
	seeds := wlElements(tb, "weaklayer/seed002_doc_examples.json")
	seeds = append(seeds, wlElements(tb, "weaklayer/gateway_sensor_test_legacy_PageLoad_batch.json")...)
	for _, f := range []string{"gateway_events_test_WindowLocation.json", "gateway_events_test_validUnknownEvent.json", "gateway_events_test_validWindowEvent.json"} {
		seeds = append(seeds, famRead(tb, "weaklayer/"+f))
	}
	return seeds
}

func FuzzWeaklayerAdapt(f *testing.F) {
	// Both entry points: the generic one, and the native one for bodies
	// of odd length.
	famFuzz(f, event.Weaklayer, func(in *Input) (*Output, *event.Rejection) {
		if len(in.Raw)%2 == 1 {
			return Weaklayer{}.AdaptFromSensor(in, "tok-sensor", "tok-group")
		}
		return Weaklayer{}.Adapt(in)
	}, wlSeeds(f))
}

func BenchmarkWeaklayerAdapt(b *testing.B) {
	docs := wlElements(b, "weaklayer/seed002_doc_examples.json")
	b.Run("WindowLocation", func(b *testing.B) { famBench(b, event.Weaklayer, Weaklayer{}.Adapt, docs[2]) })
	b.Run("TextInput", func(b *testing.B) { famBench(b, event.Weaklayer, Weaklayer{}.Adapt, docs[3]) })
}
