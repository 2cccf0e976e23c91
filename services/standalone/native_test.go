package standalone

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// nativeDir holds the native endpoints' fixtures (see its README).
const nativeDir = "../gateway/internal/native/testdata"

// send posts body to the standalone gateway and returns the status and body.
func send(t *testing.T, url string, body []byte, hdr map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(nativeDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b)
}

// TestNativeEndpointsReachTheFileSink sends through every native endpoint
// of an out-of-the-box standalone (dev key as segment.io secret and HEC
// token, the generated Weaklayer install key) and finds one file-sink line
// per accepted event.
func TestNativeEndpointsReachTheFileSink(t *testing.T) {
	dir := t.TempDir()
	p := startPipeline(t, dir)
	gw := p.gateway
	want := map[string]int{}
	expect := func(what string, status int, body []byte, wantStatus int, fam string, events int) {
		t.Helper()
		if status != wantStatus {
			t.Fatalf("%s: %d %s, want %d", what, status, body, wantStatus)
		}
		want[fam] += events
	}

	// edX browser user_track, anonymous, form-encoded.
	form := url.Values{"event_type": {"play_video"}, "event": {`{"id":"v","currentTime":1}`},
		"page": {"https://lms.example.org/courses/course-v1:edX+DemoX+Demo_2014/courseware/"}}
	st, b := send(t, gw+"/event", []byte(form.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	expect("/event", st, b, 200, "edx", 1)

	// segment.io webhook with the dev key: a mobile Track event is stored,
	// a fixture payload on the "server" channel is acknowledged, not stored.
	seg := []byte(`{"userId":"10","channel":"mobile","action":"Track","type":"track","timestamp":"2014-08-27T16:33:39.215Z","receivedAt":"2014-08-27T16:33:39.100Z","context":{"library":{"name":"analytics-android","version":"3.4.0"}},"properties":{"event_type":"edx.video.loaded","event":{"code":"mobile"},"context":{"course_id":"course-v1:edX+DemoX+2T2016"}}}`)
	st, b = send(t, gw+"/segmentio/event?key=dev", seg, map[string]string{"Content-Type": "application/json"})
	expect("/segmentio/event", st, b, 200, "edx", 1)
	sample, err := os.ReadFile(filepath.Join(nativeDir, "segment/load_events_acceptance_segment_20150414.log"))
	if err != nil {
		t.Fatal(err)
	}
	st, b = send(t, gw+"/segmentio/event?key=dev", bytes.SplitN(sample, []byte("\n"), 2)[0], map[string]string{"Content-Type": "application/json"})
	expect("/segmentio/event (server channel)", st, b, 200, "edx", 0)
	if !bytes.Contains(b, []byte(`"committed":false`)) {
		t.Fatalf("server-channel payload: %s", b)
	}

	// Crowd Frame: the current client's form, and raw JSON.
	msg := `{"type":"click","worker":"W1","task":"t","batch":"b","client_time":1690000000100,"sequence":8,"details":{"section":"s","mouseButton":"left","startTime":1.5,"endTime":2.5,"x":10,"y":20,"target":{"elementName":"BUTTON","className":"c"},"clicks":1}}`
	st, b = send(t, gw+"/v1/crowdframe", []byte(url.Values{"MessageBody": {msg}}.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	expect("/v1/crowdframe form", st, b, 200, "crowdframe", 1)
	st, b = send(t, gw+"/v1/crowdframe", []byte(`{"type":"query","worker":"W1","task":"t","batch":"b","client_time":1690000000200,"sequence":9,"details":{"section":"s","query":"a=b"}}`), map[string]string{"Content-Type": "text/plain"})
	expect("/v1/crowdframe JSON", st, b, 200, "crowdframe", 1)

	// Weaklayer: install with the generated group key, then a gzipped batch.
	key, err := os.ReadFile(filepath.Join(dir, DevWeaklayerKeyFile))
	if err != nil {
		t.Fatalf("the dev Weaklayer install key was not written: %v", err)
	}
	st, b = send(t, gw+"/install", []byte(fmt.Sprintf(`{"key":%s,"label":"dev laptop"}`, key)), map[string]string{"Content-Type": "application/json"})
	expect("/install", st, b, 200, "weaklayer", 1)
	var ir struct{ Token string }
	if err := json.Unmarshal(b, &ir); err != nil || ir.Token == "" {
		t.Fatalf("install reply %s", b)
	}
	batch := fmt.Sprintf("[%s,%s,%s]", fixture(t, "weaklayer/gateway_events_test_WindowLocation.json"),
		fixture(t, "weaklayer/gateway_events_test_validUnknownEvent.json"), fixture(t, "weaklayer/gateway_events_test_validWindowEvent.json"))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(batch))
	_ = zw.Close()
	st, b = send(t, gw+"/events", gz.Bytes(), map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip", "Authorization": "Bearer " + ir.Token})
	expect("/events", st, b, 200, "weaklayer", 3)

	// Workstation: a service archive built from the vendor's examples.
	var zb bytes.Buffer
	zz := zip.NewWriter(&zb)
	for _, name := range []string{"docs_manifest_example.json", "service_log.json"} {
		data := fixture(t, "workstation/"+name)
		if name == "docs_manifest_example.json" {
			name, data = "manifest.json", bytes.Replace(data, []byte(`"inspector"`), []byte(`"service"`), 1)
		}
		w, _ := zz.Create(name)
		_, _ = w.Write(data)
	}
	_ = zz.Close()
	st, b = send(t, gw+"/v1/workstation/archives", zb.Bytes(), map[string]string{"Content-Type": "application/zip", "Authorization": "Bearer dev"})
	expect("/v1/workstation/archives", st, b, 200, "workstation", 6)

	// Clicks: the dejavu agent's body.
	st, b = send(t, gw+"/v1/clicks", []byte(fmt.Sprintf(`{"event": %s}`, fixture(t, "dejavu/readme_example_mousedown.json"))), map[string]string{"Content-Type": "text/plain;charset=UTF-8"})
	expect("/v1/clicks", st, b, 200, "clicks", 1)

	// Splunk HEC with the dev token.
	st, b = send(t, gw+"/services/collector/event", fixture(t, "hec/edge_processor_batch.txt"), map[string]string{"Authorization": "Splunk dev"})
	expect("/services/collector/event", st, b, 200, "hec", 2)
	if string(bytes.TrimSpace(b)) != `{"text":"Success","code":0}` {
		t.Fatalf("HEC reply %s", b)
	}

	for fam, n := range want {
		waitForLines(t, dir, fam, n, 15*time.Second)
	}
}
