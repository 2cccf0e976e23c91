package native

import (
	"bytes"
	"testing"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/event"
)

// TestEveryEndpointRefuses sends an oversized, a malformed and an
// unauthenticated request to every native endpoint: each gets a clear
// refusal, and the malformed ones, which carry an identifiable event, are
// dead-lettered.
func TestEveryEndpointRefuses(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Weaklayer.InstallKeys = []WeaklayerInstallKey{wlVerifier}
		c.Weaklayer.SigningSecrets = []config.Secret{signingA}
	})
	_, ir := e.install(wlKey, "", "")
	huge := bytes.Repeat([]byte("x"), 2<<20)
	type req struct {
		path string
		body []byte
		hdr  map[string]string
	}
	wl := func() map[string]string {
		return map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip", "Authorization": "Bearer " + ir.Token}
	}
	for _, tc := range []struct {
		name     string
		oversize req
		bad      req
		badCode  int
		dlq      bool
		unauth   req
		unCode   int
	}{
		{"edx user_track",
			req{"/event", huge, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
			req{"/event", []byte("event=%7B%7D"), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 400, true,
			req{"/event", []byte("event_type=x"), map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Bearer wrong-wrong-wrong-wrong"}}, 401},
		{"segment.io",
			req{"/segmentio/event?key=" + segSecret, huge, nil},
			req{"/segmentio/event?key=" + segSecret, []byte(`{"channel":"mobile","action":"Track",`), nil}, 400, true,
			req{"/segmentio/event?key=wrong", segEvent(nil), nil}, 401},
		{"crowd frame",
			req{"/v1/crowdframe", huge, nil},
			req{"/v1/crowdframe", []byte("MessageBody=%7Bbroken"), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 400, true,
			req{"/v1/crowdframe", []byte(cfQuery), map[string]string{"X-Sluice-Key": "wrong-wrong-wrong-wrong"}}, 401},
		{"weaklayer install",
			req{"/install", huge, map[string]string{"Content-Type": "application/json"}},
			req{"/install", []byte(`{"key":`), map[string]string{"Content-Type": "application/json"}}, 400, false,
			req{"/install", []byte(`{"key":{"group":"68886d61-572b-41a5-8edd-93a564fb5ba3","secret":"` + wlKey.Secret + `","checksum":"` + wlKey.Checksum + `"}}`), map[string]string{"Content-Type": "application/json"}}, 401},
		{"weaklayer events",
			req{"/events", gz(t, append([]byte("["), bytes.Repeat([]byte(`{"type":"Window","time":1},`), 200_000)...)), wl()},
			req{"/events", gz(t, []byte(`[{"type":"Window","time":1}`)), wl()}, 400, true,
			req{"/events", gz(t, []byte(`[]`)), map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip", "Authorization": "Bearer x.y.z"}}, 401},
		{"workstation",
			req{"/v1/workstation/archives", huge, map[string]string{"Authorization": "Bearer " + serverKey, "Content-Type": "application/zip"}},
			req{"/v1/workstation/archives", []byte("not a zip"), map[string]string{"Authorization": "Bearer " + serverKey, "Content-Type": "application/zip"}}, 400, false,
			req{"/v1/workstation/archives", []byte("PK"), map[string]string{"Content-Type": "application/zip"}}, 401},
		{"clicks",
			req{"/v1/clicks", huge, nil},
			req{"/v1/clicks", []byte(`{"event":{"type":"mousedown"}}`), nil}, 400, true,
			req{"/v1/clicks", []byte(`{}`), map[string]string{"Authorization": "Bearer wrong-wrong-wrong-wrong"}}, 401},
		{"hec",
			req{"/services/collector/event", huge, map[string]string{"Authorization": "Splunk " + hecTokenA}},
			req{"/services/collector/event", []byte(`{"event":`), map[string]string{"Authorization": "Splunk " + hecTokenA}}, 400, true,
			req{"/services/collector/event", []byte(`{"event":"x"}`), nil}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := e.post(tc.oversize.path, tc.oversize.body, tc.oversize.hdr); r.status != 413 || len(r.body) == 0 {
				t.Errorf("oversized: %d %s", r.status, r.body)
			}
			if r := e.post(tc.bad.path, tc.bad.body, tc.bad.hdr); r.status != tc.badCode || len(r.body) == 0 {
				t.Errorf("malformed: %d %s", r.status, r.body)
			}
			if r := e.post(tc.unauth.path, tc.unauth.body, tc.unauth.hdr); r.status != tc.unCode || len(r.body) == 0 {
				t.Errorf("unauthenticated: %d %s", r.status, r.body)
			}
		})
	}
	// One dead letter per malformed request with an identifiable event.
	dl := e.dlq(6)
	endpoints := map[string]bool{}
	for _, d := range dl {
		endpoints[field(d.native, "endpoint").(string)] = true
		if raw, _ := d.native["raw"].([]byte); len(raw) == 0 && field(d.native, "endpoint") != "/event" {
			t.Errorf("dead letter without its bytes: %s", d.json)
		}
	}
	if len(endpoints) != 6 {
		t.Errorf("dead letters from %v", endpoints)
	}
	e.noMore(event.RawTopic(event.EdX), 0)
}
