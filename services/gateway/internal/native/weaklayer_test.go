package native

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/event"
)

const (
	signingA = "signing-secret-A-0123456789abcdef0123456789"
	signingB = "signing-secret-B-0123456789abcdef0123456789"
)

// wlKey is a group install key for the tests and its verifier.
var wlKey, wlVerifier = func() (DevInstallKey, WeaklayerInstallKey) {
	k, v, err := NewInstallKey()
	if err != nil {
		panic(err)
	}
	return k, v
}()

func wlEnv(t *testing.T, secrets ...config.Secret) *env {
	return newEnv(t, func(c *Config) {
		c.Weaklayer.InstallKeys = []WeaklayerInstallKey{wlVerifier}
		c.Weaklayer.SigningSecrets = secrets
		c.Weaklayer.TokenTTL = time.Hour
	})
}

type installReply struct {
	Token     string `json:"token"`
	Sensor    string `json:"sensor"`
	ExpiresAt int64  `json:"expiresAt"`
	IssuedAt  int64  `json:"issuedAt"`
}

// install runs POST /install as the Weaklayer sensor does.
func (e *env) install(key DevInstallKey, label, token string) (response, installReply) {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"key": key, "label": label})
	hdr := map[string]string{"Content-Type": "application/json", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:82.0) Gecko/20100101 Firefox/82.0"}
	if token != "" {
		hdr["Authorization"] = "Bearer " + token
	}
	r := e.post("/install", body, hdr)
	var ir installReply
	if r.status == 200 {
		r.json(e.t, &ir)
	}
	return r, ir
}

// events runs POST /events with a gzipped JSON array.
func (e *env) wlEvents(token string, array []byte) response {
	e.t.Helper()
	return e.post("/events", gz(e.t, array), map[string]string{
		"Content-Type": "application/json", "Content-Encoding": "gzip", "Authorization": "Bearer " + token,
	})
}

// TestWeaklayerExchange runs the sensor's exchange with the gateway on the
// Weaklayer gateway-test events: install with the group key, send gzipped
// batches with the token, renew.
func TestWeaklayerExchange(t *testing.T) {
	e := wlEnv(t, signingA)
	r, ir := e.install(wlKey, "Mitch's Laptop", "")
	if r.status != 200 || ir.Token == "" || ir.Sensor == "" || ir.ExpiresAt-ir.IssuedAt != time.Hour.Microseconds() {
		t.Fatalf("install: %d %s", r.status, r.body)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("install reply may be cached: %v", r.header)
	}
	if now := time.Now().UnixMicro(); ir.IssuedAt > now || ir.IssuedAt < now-5e6 {
		t.Errorf("issuedAt %d is not epoch microseconds of now", ir.IssuedAt)
	}

	// The three single events as one batch, the legacy PageLoad batch as is.
	var batch []json.RawMessage
	for _, f := range []string{"gateway_events_test_WindowLocation.json", "gateway_events_test_validUnknownEvent.json", "gateway_events_test_validWindowEvent.json"} {
		batch = append(batch, json.RawMessage(readFile(t, "testdata/weaklayer/"+f)))
	}
	b, _ := json.Marshal(batch)
	r = e.wlEvents(ir.Token, b)
	if res := r.result(t); r.status != 200 || res.Accepted != 3 {
		t.Fatalf("events: %d %s", r.status, r.body)
	}
	r = e.wlEvents(ir.Token, readFile(t, "testdata/weaklayer/gateway_sensor_test_legacy_PageLoad_batch.json"))
	if res := r.result(t); r.status != 200 || res.Accepted != 3 {
		t.Fatalf("PageLoad batch: %d %s", r.status, r.body)
	}
	// Sensor and group in the body are overridden; Install and TextCapture
	// from a sensor and a zero time are refused, each on its own.
	mixed := fmt.Sprintf(`[{"type":"TextInput","time":1601950623362548,"sensor":"f5d4650e-5c73-4384-bfeb-90153fe65e0c","group":"68886d61-572b-41a5-8edd-93a564fb5ba3","inputType":"password","textHash":"kR8mTB/hc85+gKnpGXG6UuRlPFCLyyLmEt30hKoNhqM=","textLength":17,"windowLocationReference":1601950622368245},
{"type":"Install","time":1594209020167364,"label":"forged"},
{"type":"TextCapture","time":1594209020167365,"text":"hunter2"},
{"type":"Window","time":0}]`)
	r = e.wlEvents(ir.Token, []byte(mixed))
	res := r.result(t)
	if r.status != 207 || res.Accepted != 1 || res.Rejected != 3 {
		t.Fatalf("mixed: %d %s", r.status, r.body)
	}
	for i, want := range map[int]string{1: event.ReasonForbiddenType, 2: event.ReasonForbiddenType, 3: event.ReasonInvalidField} {
		if res.Errors[i-1].Index != i || res.Errors[i-1].Code != want {
			t.Errorf("error %d: %+v, want %s", i, res.Errors[i-1], want)
		}
	}

	// Renewal keeps the sensor.
	r, renewed := e.install(wlKey, "Mitch's Laptop", ir.Token)
	if r.status != 200 || renewed.Sensor != ir.Sensor {
		t.Fatalf("renewal: %d %s (sensor %s, was %s)", r.status, r.body, renewed.Sensor, ir.Sensor)
	}

	recs := e.raw(event.Weaklayer, 9) // 2 installs, 3 + 3 + 1 events
	types := map[string]int{}
	for _, rec := range recs {
		typ, _ := field(rec.native, "type").(string)
		types[typ]++
		if field(rec.native, "sensor") != ir.Sensor || field(rec.native, "group") != wlKey.Group {
			t.Errorf("%s: sensor/group %v/%v, want the token's", typ, field(rec.native, "sensor"), field(rec.native, "group"))
		}
		if rec.key != ir.Sensor {
			t.Errorf("%s: partition key %q", typ, rec.key)
		}
		if typ == "Install" {
			isNew, _ := field(rec.native, "install.isNewInstall").(bool)
			if field(rec.native, "install.label") != "Mitch's Laptop" || !strings.HasPrefix(field(rec.native, "install.userAgent").(string), "Mozilla/5.0") {
				t.Errorf("install %s", rec.json)
			}
			types[fmt.Sprintf("Install new=%v", isNew)]++
			if field(rec.native, "envelope.endpoint") != "/install" {
				t.Errorf("install endpoint %v", field(rec.native, "envelope.endpoint"))
			}
		}
		if typ == "TextInput" {
			if q, _ := field(rec.native, "envelope.quirks").([]any); fmt.Sprint(q) != "[body_sensor_overridden]" {
				t.Errorf("TextInput quirks %v", q)
			}
		}
	}
	want := map[string]int{"Install": 2, "Install new=true": 1, "Install new=false": 1, "WindowLocation": 4, "SuperAwesomeFutureEvent": 1, "Window": 1, "TextInput": 1}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Errorf("types %v, want %v", types, want)
	}
	dl := e.dlq(3)
	for _, d := range dl {
		if raw, _ := d.native["raw"].([]byte); bytes.Contains(raw, []byte("hunter2")) && field(d.native, "reason") != event.ReasonForbiddenType {
			t.Errorf("TextCapture dead letter %s", d.json)
		}
	}
}

// TestWeaklayerRefusals covers bad keys, tokens and bodies.
func TestWeaklayerRefusals(t *testing.T) {
	e := wlEnv(t, signingA)
	bad := wlKey
	bad.Secret = strings.Repeat("A", 86) + "=="
	if r, _ := e.install(bad, "x", ""); r.status != 401 || !bytes.Contains(r.body, []byte("invalid_install_key")) {
		t.Errorf("wrong secret: %d %s", r.status, r.body)
	}
	other, _, _ := NewInstallKey()
	if r, _ := e.install(other, "x", ""); r.status != 401 {
		t.Errorf("unknown group: %d %s", r.status, r.body)
	}
	if r := e.post("/install", []byte(`{"key":{"group":"nope"}}`), map[string]string{"Content-Type": "application/json"}); r.status != 400 {
		t.Errorf("malformed install: %d %s", r.status, r.body)
	}
	if r := e.post("/install", []byte(`{}`), map[string]string{"Content-Type": "text/plain"}); r.status != 415 {
		t.Errorf("text/plain install: %d", r.status)
	}
	_, ir := e.install(wlKey, "", "")
	arr := []byte(`[{"type":"Window","time":45678}]`)
	// Without gzip: 415, as the Weaklayer gateway answers.
	r := e.post("/events", arr, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + ir.Token})
	if r.status != 415 || !bytes.Contains(r.body, []byte("gzip_required")) {
		t.Errorf("plain body: %d %s", r.status, r.body)
	}
	if r := e.post("/events", gz(t, arr), map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip"}); r.status != 401 {
		t.Errorf("no token: %d %s", r.status, r.body)
	}
	if r := e.wlEvents(ir.Token[:len(ir.Token)-2]+"xx", arr); r.status != 401 || !bytes.Contains(r.body, []byte("invalid_token")) {
		t.Errorf("forged token: %d %s", r.status, r.body)
	}
	// A token signed with "none" or another secret.
	if r := e.wlEvents("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJncm91cCI6IngiLCJzZW5zb3IiOiJ5In0.", arr); r.status != 401 {
		t.Errorf("alg none: %d %s", r.status, r.body)
	}
	// Not an array: 400, dead-lettered.
	if r := e.wlEvents(ir.Token, []byte(`{"type":"Window","time":1}`)); r.status != 400 {
		t.Errorf("object body: %d %s", r.status, r.body)
	}
	if r := e.wlEvents(ir.Token, []byte(`[{"type":"Window","time":1},`)); r.status != 400 {
		t.Errorf("broken array: %d %s", r.status, r.body)
	}
	if r := e.wlEvents(ir.Token, []byte(`[]`)); r.status != 200 {
		t.Errorf("empty array: %d %s", r.status, r.body)
	}
	e.dlq(2)
	e.raw(event.Weaklayer, 1) // the one install
}

// TestWeaklayerTokenRotation rotates the signing secret: tokens signed
// with the previous secret keep working, and are renewed with the new one;
// once the previous secret is dropped they are refused.
func TestWeaklayerTokenRotation(t *testing.T) {
	old := wlEnv(t, signingA)
	_, ir := old.install(wlKey, "laptop", "")
	arr := []byte(`[{"type":"Window","time":1594209078132495,"isTopLevelWindow":true,"topLevelWindowReference":1594209078132495}]`)

	rotated := wlEnv(t, signingB, signingA)
	if r := rotated.wlEvents(ir.Token, arr); r.status != 200 {
		t.Fatalf("previous secret's token after rotation: %d %s", r.status, r.body)
	}
	r, renewed := rotated.install(wlKey, "laptop", ir.Token)
	if r.status != 200 || renewed.Sensor != ir.Sensor || renewed.Token == ir.Token {
		t.Fatalf("renewal after rotation: %d %s", r.status, r.body)
	}

	done := wlEnv(t, signingB)
	if r := done.wlEvents(ir.Token, arr); r.status != 401 {
		t.Fatalf("token of a dropped secret: %d %s", r.status, r.body)
	}
	if r := done.wlEvents(renewed.Token, arr); r.status != 200 {
		t.Fatalf("renewed token: %d %s", r.status, r.body)
	}
	// Renewing with a token the gateway no longer accepts makes a new install.
	_, fresh := done.install(wlKey, "laptop", ir.Token)
	if fresh.Sensor == ir.Sensor {
		t.Fatalf("a token of a dropped secret renewed the same sensor")
	}
	recs := done.raw(event.Weaklayer, 2)
	for _, rec := range recs {
		if field(rec.native, "type") == "Install" && field(rec.native, "install.isNewInstall") != true {
			t.Errorf("install with an unaccepted token is not new: %s", rec.json)
		}
	}
}

// TestWeaklayerExpiredToken lets a token expire: /events refuses it with
// token_expired, and /install with it makes a new install, as the
// Weaklayer gateway does.
func TestWeaklayerExpiredToken(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Weaklayer.InstallKeys = []WeaklayerInstallKey{wlVerifier}
		c.Weaklayer.SigningSecrets = []config.Secret{signingA}
		c.Weaklayer.TokenTTL = time.Minute
	})
	_, ir := e.install(wlKey, "laptop", "")
	arr := []byte(`[{"type":"Window","time":1594209078132495}]`)
	if r := e.wlEvents(ir.Token, arr); r.status != 200 {
		t.Fatalf("fresh token: %d %s", r.status, r.body)
	}
	e.skew.Store(int64(2 * time.Minute))
	r := e.wlEvents(ir.Token, arr)
	if r.status != 401 || !bytes.Contains(r.body, []byte("token_expired")) {
		t.Fatalf("expired token: %d %s", r.status, r.body)
	}
	r, again := e.install(wlKey, "laptop", ir.Token)
	if r.status != 200 || again.Sensor == ir.Sensor {
		t.Fatalf("install with an expired token: %d %s", r.status, r.body)
	}
	if r := e.wlEvents(again.Token, arr); r.status != 200 {
		t.Fatalf("new token: %d %s", r.status, r.body)
	}
}

func TestWeaklayerConfig(t *testing.T) {
	c := WeaklayerDefaults()
	c.InstallKeys = []WeaklayerInstallKey{{Group: "x", Salt: "!", SecretHash: "AAAA"}, wlVerifier}
	c.SigningSecrets = []config.Secret{"short", "base64:%%"}
	c.TokenTTL = time.Second
	err := c.Validate()
	for _, want := range []string{"install_keys[0]: group", "signing_secrets[0]: must be at least 32 bytes", "signing_secrets[1]: base64", "token_ttl"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validation %v lacks %q", err, want)
		}
	}
	v := wlVerifier
	v.Checksum = "AAAA" + v.Checksum[4:]
	c = WeaklayerDefaults()
	c.InstallKeys = []WeaklayerInstallKey{v}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "checksum") || !strings.Contains(err.Error(), "signing_secrets: required") {
		t.Errorf("bad checksum and no secret: %v", err)
	}
}

// TestDevInstallKey: the standalone key file is created once and reused.
func TestDevInstallKey(t *testing.T) {
	path := t.TempDir() + "/dev-weaklayer-install-key.json"
	var c1, c2 WeaklayerConfig
	if err := EnableDevInstallKey(&c1, path); err != nil {
		t.Fatal(err)
	}
	if err := EnableDevInstallKey(&c2, path); err != nil {
		t.Fatal(err)
	}
	if c1.InstallKeys[0] != c2.InstallKeys[0] || c1.SigningSecrets[0] != c2.SigningSecrets[0] {
		t.Fatal("the dev key changed between runs")
	}
	c1.TokenTTL = time.Hour
	if err := c1.Validate(); err != nil {
		t.Fatal(err)
	}
	var key DevInstallKey
	if err := json.Unmarshal(readFile(t, path), &key); err != nil || key.Group != c1.InstallKeys[0].Group || len(key.Secret) != 88 || len(key.Checksum) != 44 {
		t.Fatalf("key file %+v %v", key, err)
	}
	k, _, err := parseInstallRequest([]byte(fmt.Sprintf(`{"key":%s,"label":""}`, readFile(t, path))))
	if err != nil {
		t.Fatal(err)
	}
	vs := []installVerifier{}
	for _, ik := range c1.InstallKeys {
		v, _ := ik.parse()
		vs = append(vs, v)
	}
	if !k.verify(vs) {
		t.Fatal("the dev key does not verify")
	}
}
