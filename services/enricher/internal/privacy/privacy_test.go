package privacy

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/services/enricher/internal/enrich"
	"github.com/sluicehq/sluice/services/enricher/internal/eventtest"
	"github.com/sluicehq/sluice/services/enricher/internal/resolve"
	"github.com/sluicehq/sluice/services/enricher/internal/state"
)

var key = Key{ID: "k2026", Secret: []byte("0123456789abcdef0123456789abcdef")}

func compile(t *testing.T, f event.Family, r Rules) *Policy {
	t.Helper()
	text, err := schemas.Latest(string(f))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(f, text, r, key)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// enriched decodes native as the enricher receives it and runs context
// resolution, so the enrichment copies exist for the policy to reach; it
// returns the event and its enrichment as native values, set on the record.
func enriched(t *testing.T, f event.Family, native map[string]any) (*enrich.Event, map[string]any) {
	t.Helper()
	d, err := eventtest.Decoded(f, native)
	if err != nil {
		t.Fatal(err)
	}
	e := &enrich.Event{Family: f, Key: enrich.Str(enrich.Rec(d["envelope"])["partition_key"]), Native: d, Now: eventtest.Base}
	enrich.Stamp(e, enrich.Provenance{})
	st := state.New(10, 0)
	st.Begin()
	if err := resolve.New(st).Process(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	st.Commit()
	return e, e.SetNative()
}

func mac(v string) string {
	m := hmac.New(sha256.New, key.Secret)
	m.Write([]byte(v))
	return "k2026:" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func TestTruncateIP(t *testing.T) {
	for in, want := range map[string]string{
		"81.2.69.142":             "81.2.69.0",
		"81.2.69.142:5678":        "81.2.69.0",
		"::ffff:81.2.69.142":      "81.2.69.0",
		"2a02:168:1234:5678::9":   "2a02:168:1234::",
		"[2a02:168:1234::9]:8080": "2a02:168:1234::",
		"garbage":                 "",
	} {
		if got := TruncateIP(in); got != want {
			t.Errorf("TruncateIP(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEdXPolicy(t *testing.T) {
	p := compile(t, event.EdX, Rules{IP: IPTruncate, Drop: []string{"agent", "referer"}, HMAC: []string{"username", "context.user_id"}})
	e, enr := enriched(t, event.EdX, eventtest.EdX(eventtest.Env{IP: "10.0.0.5", Key: "alice", UA: "ua"}, map[string]any{
		"username": "alice", "ip": "81.2.69.142", "agent": "Mozilla/5.0", "event_type": "play_video",
		"context": eventtest.EdXContext("course-v1:a+b+c", "a", 42),
	}))
	enr["privacy"] = p.Apply(e.Native)
	n := e.Native
	if got := enrich.Str(n["ip"]); got != "81.2.69.0" {
		t.Errorf("ip %q", got)
	}
	if got := enrich.Str(enrich.Rec(n["envelope"])["ip"]); got != "10.0.0.0" {
		t.Errorf("envelope.ip %q", got)
	}
	if n["agent"] != nil {
		t.Errorf("agent kept: %v", n["agent"])
	}
	if got := enrich.Str(n["username"]); got != mac("alice") {
		t.Errorf("username %q, want %q", got, mac("alice"))
	}
	// user_id is a long; the union's string branch takes its hash.
	if got := enrich.Str(enrich.Rec(n["context"])["user_id"]); got != mac("42") {
		t.Errorf("user_id %q", got)
	}
	if enrich.Rec(n["envelope"])["raw"] != nil {
		t.Error("envelope.raw kept: it would undo the policy")
	}
	pr := enrich.Rec(enr["privacy"])
	if pr["ip"] != IPTruncate || enrich.Str(pr["key_id"]) != "k2026" {
		t.Errorf("privacy record %v", pr)
	}
	dropped, hashed := strs(pr["dropped"]), strs(pr["hashed"])
	if dropped != "agent,envelope.raw" || hashed != "username,context.user_id" {
		t.Errorf("dropped %q hashed %q", dropped, hashed)
	}
	if _, err := eventtest.Decoded(event.EdX, n); err != nil {
		t.Fatalf("record no longer encodes: %v", err)
	}
}

func strs(v any) string {
	var out []string
	for _, s := range enrich.Arr(v) {
		out = append(out, s.(string))
	}
	return strings.Join(out, ",")
}

// TestCrowdFramePolicyReachesCopies checks that the context message's IP
// and its copy in the enrichment are both hashed with the same key.
func TestCrowdFramePolicyReachesCopies(t *testing.T) {
	p := compile(t, event.CrowdFrame, Rules{IP: IPHMAC, HMAC: []string{"details.ua"}})
	e, enr := enriched(t, event.CrowdFrame, eventtest.CrowdFrame(eventtest.Env{IP: "81.2.69.142"}, "context", "W1", "t", "b", 0,
		eventtest.CFContext("Mozilla/5.0 test", "81.2.69.142")))
	enr["privacy"] = p.Apply(e.Native)
	d := enrich.Rec(e.Native["details"])
	cf := enrich.Rec(enr["crowdframe"])
	if enrich.Str(d["ip"]) != mac("81.2.69.142") || enrich.Str(cf["ip"]) != mac("81.2.69.142") ||
		enrich.Str(enrich.Rec(e.Native["envelope"])["ip"]) != mac("81.2.69.142") {
		t.Errorf("ips: details %v enrichment %v", d["ip"], cf["ip"])
	}
	if enrich.Str(d["ua"]) != mac("Mozilla/5.0 test") || enrich.Str(cf["ua"]) != mac("Mozilla/5.0 test") {
		t.Errorf("ua: details %v enrichment %v", d["ua"], cf["ua"])
	}
	if _, err := eventtest.Decoded(event.CrowdFrame, e.Native); err != nil {
		t.Fatal(err)
	}
}

// TestDerivedCopiesAreDropped: hashing a part of a URL or selector drops
// the enrichment field built from it.
func TestDerivedCopiesAreDropped(t *testing.T) {
	p := compile(t, event.Clicks, Rules{HMAC: []string{"info.target.id"}, Drop: []string{"page"}})
	e, enr := enriched(t, event.Clicks, eventtest.Clicks(eventtest.Env{}, "mousedown", "s-1", "https://x.example/p", "secret-id", "c"))
	enr["privacy"] = p.Apply(e.Native)
	c := enrich.Rec(enr["clicks"])
	if c["target"] != nil || enrich.Str(c["target_id"]) != mac("secret-id") || c["page"] != nil || e.Native["page"] != nil {
		t.Errorf("clicks context after policy: %v", c)
	}
	if _, err := eventtest.Decoded(event.Clicks, e.Native); err != nil {
		t.Fatal(err)
	}
}

func TestKeepPolicyChangesNothing(t *testing.T) {
	p := compile(t, event.Weaklayer, Rules{IP: IPKeep})
	if p.Changes() {
		t.Fatal("keep policy reports changes")
	}
	e, _ := enriched(t, event.Weaklayer, eventtest.Weaklayer(eventtest.Env{IP: "81.2.69.142"}, "Install", "s", 5, eventtest.WLInstall("l", "ua")))
	pr := enrich.Rec(p.Apply(e.Native))
	if pr["ip"] != IPKeep || pr["key_id"] != nil || len(enrich.Arr(pr["dropped"])) != 0 {
		t.Errorf("privacy %v", pr)
	}
	if enrich.Str(enrich.Rec(e.Native["envelope"])["ip"]) != "81.2.69.142" || enrich.Rec(e.Native["envelope"])["raw"] == nil {
		t.Error("keep changed the record")
	}
}

func TestCompileRejectsBadRules(t *testing.T) {
	text, err := schemas.Latest("workstation")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		rules Rules
		key   Key
		want  string
	}{
		{"unknown field", Rules{Drop: []string{"manifest.usr"}}, key, `no field "usr"`},
		{"hash a number", Rules{HMAC: []string{"activity.time"}}, key, "only string fields"},
		{"drop a required long", Rules{Drop: []string{"activity.time"}}, key, "cannot be dropped"},
		{"drop a record", Rules{Drop: []string{"manifest"}}, key, "names a record"},
		{"empty part", Rules{Drop: []string{"manifest..user"}}, key, "empty part"},
		{"hash without key", Rules{HMAC: []string{"manifest.user.login"}}, Key{}, "needs a key"},
		{"bad ip action", Rules{IP: "mask"}, key, "not keep, truncate or hmac"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(event.Workstation, text, tc.rules, tc.key)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Compile = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// Valid: nullable record, nested strings, an enrichment field.
	if _, err := Compile(event.Workstation, text, Rules{Drop: []string{"manifest.user", "enrichment.geo.postal_code"},
		HMAC: []string{"manifest.computer.name"}}, key); err != nil {
		t.Fatal(err)
	}
}

func TestWorkstationHashReachesTheManifestCopy(t *testing.T) {
	p := compile(t, event.Workstation, Rules{HMAC: []string{"manifest.user.login"}, Drop: []string{"manifest.user.name"}})
	man := eventtest.Manifest("g", "johndoe", 0)
	e, enr := enriched(t, event.Workstation, eventtest.WorkstationActivity(eventtest.Env{}, man, 1, 0, 40, 0))
	enr["privacy"] = p.Apply(e.Native)
	ws := enrich.Rec(enr["workstation"])
	u := enrich.Rec(enrich.Rec(e.Native["manifest"])["user"])
	if enrich.Str(u["login"]) != mac("johndoe") || enrich.Str(ws["user_login"]) != mac("johndoe") || u["name"] != nil || ws["user_name"] != nil {
		t.Errorf("manifest user %v; enrichment %v", u, ws)
	}
	if _, err := eventtest.Decoded(event.Workstation, e.Native); err != nil {
		t.Fatal(err)
	}
}
