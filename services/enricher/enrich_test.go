package enricher

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/avro/avrotest"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka/kafkatest"
	"github.com/sluicehq/sluice/services/enricher/internal/enrich"
	"github.com/sluicehq/sluice/services/enricher/internal/eventtest"
	"github.com/sluicehq/sluice/services/enricher/internal/geo/geotest"
)

// rawRecord encodes native as the gateway does: Confluent-framed Avro on the
// family's raw topic, keyed by the partition key.
func rawRecord(t testing.TB, serde *avro.Serde, f event.Family, native map[string]any) *kgo.Record {
	t.Helper()
	topic := event.RawTopic(f)
	v, err := serde.Encode(avro.ValueSubject(topic), native)
	if err != nil {
		t.Fatalf("encoding %s event: %v", f, err)
	}
	key := enrich.Str(enrich.Rec(native["envelope"])["partition_key"])
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: v,
		Headers: []kgo.RecordHeader{{Key: event.HeaderFamily, Value: []byte(f)}}}
}

// testDatabases writes a city and an ASN database and returns the config
// naming them.
func testDatabases(t testing.TB) GeoIPConfig {
	t.Helper()
	dir := t.TempDir()
	city, err := geotest.WriteCity(dir, "city.mmdb", geotest.London, geotest.Zurich)
	if err != nil {
		t.Fatal(err)
	}
	asn, err := geotest.WriteASN(dir, "asn.mmdb", geotest.LondonASN, geotest.ZurichASN)
	if err != nil {
		t.Fatal(err)
	}
	return GeoIPConfig{City: []string{city}, ASN: []string{asn}, ReloadInterval: time.Second}
}

// decodeAll decodes enriched records, keyed by event id.
func decodeAll(ctx context.Context, t testing.TB, serde *avro.Serde, recs []*kgo.Record) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, r := range recs {
		native, _, err := serde.Decode(ctx, r.Value)
		if err != nil {
			t.Fatalf("decoding enriched record: %v", err)
		}
		rec := native.(map[string]any)
		out[eventID(rec)] = rec
	}
	return out
}

func enrichmentOf(rec map[string]any) map[string]any { return enrich.Rec(rec["enrichment"]) }

const chromeUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"

// TestEnrichedEdXEventCarriesGeo runs the real enrichment chain with small
// test databases: an edX event from a public IP comes out with country,
// city and ASN, its user agent parsed and its course resolved; one from a
// private IP is marked, not failed. It also runs a privacy policy on
// another family, so both the copying and the re-encoding path are read
// back.
func TestEnrichedEdXEventCarriesGeo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kcfg := kafkatest.Cluster(t)
	_, serde := avrotest.Registry(t)
	cfg := Defaults()
	cfg.Kafka = kcfg
	cfg.Group = kafkatest.UniqueName(t, "enricher")
	cfg.Instance = "geo-test"
	cfg.GeoIP = testDatabases(t)
	cfg.Privacy.HMACKeyID, cfg.Privacy.HMACKey = "k1", "0123456789abcdef0123456789abcdef"
	cfg.Privacy.Clicks = FamilyPrivacy{IP: "truncate", HMAC: []string{"session"}}
	svc, err := New(cfg, Deps{Log: zaptest.NewLogger(t), Serde: serde})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := svc.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()

	run := fmt.Sprintf("%d", time.Now().UnixNano())
	edx := func(id, ip string) map[string]any {
		return eventtest.EdX(eventtest.Env{ID: run + id, IP: "10.0.0.5", Key: "learner-" + run}, map[string]any{
			"username": "learner", "ip": ip, "agent": chromeUA, "event_type": "play_video",
			"page": "https://courses.example.org/courses/course-v1:edX+DemoX+Demo_2014/courseware/"})
	}
	cl := newClient(t, kcfg)
	in := []*kgo.Record{
		rawRecord(t, serde, event.EdX, edx("-public", "81.2.69.142")),
		rawRecord(t, serde, event.EdX, edx("-private", "192.168.1.20")),
		rawRecord(t, serde, event.Clicks, eventtest.Clicks(eventtest.Env{ID: run + "-click", IP: "2a02:168:9::1", UA: chromeUA}, "mousedown", "sess-"+run, "https://x.example/", "b", "")),
	}
	if err := cl.ProduceSync(ctx, in...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	recs = append(recs, consume(ctx, t, kcfg, event.EnrichedTopic(event.EdX), 2, func(r *kgo.Record) bool { return string(r.Key) == "learner-"+run })...)
	recs = append(recs, consume(ctx, t, kcfg, event.EnrichedTopic(event.Clicks), 1, func(r *kgo.Record) bool { return string(r.Key) == "sess-"+run })...)
	got := decodeAll(ctx, t, serde, recs)

	pub := enrichmentOf(got[run+"-public"])
	g := enrich.Rec(pub["geo"])
	if g["ip_kind"] != "public" || enrich.Str(g["ip_source"]) != "ip" || enrich.Str(g["country_code"]) != "GB" ||
		enrich.Str(g["country_name"]) != "United Kingdom" || enrich.Str(g["city"]) != "London" ||
		enrich.Str(g["as_org"]) != "Andrews & Arnold Ltd" || enrich.Str(g["time_zone"]) != "Europe/London" {
		t.Errorf("public edX geo = %v", g)
	}
	if asn, _ := enrich.Int(g["asn"]); asn != 20712 {
		t.Errorf("asn %d", asn)
	}
	ua := enrich.Rec(pub["user_agent"])
	if enrich.Str(ua["browser"]) != "Chrome" || enrich.Str(ua["os"]) != "Windows" || ua["device_type"] != "desktop" || ua["bot"] != false || ua["source"] != "agent" {
		t.Errorf("user agent = %v", ua)
	}
	if c := enrich.Rec(pub["edx"]); enrich.Str(c["course_id"]) != "course-v1:edX+DemoX+Demo_2014" || enrich.Str(c["org_id"]) != "edX" {
		t.Errorf("edx context = %v", c)
	}
	if p := enrich.Rec(pub["privacy"]); p["ip"] != "keep" {
		t.Errorf("privacy = %v", p)
	}
	if pub["enricher_instance"] != "geo-test" || pub["raw_topic"] != event.RawTopic(event.EdX) {
		t.Errorf("provenance = %v", pub)
	}
	// The raw bytes were copied, not re-encoded: the record body is intact.
	if got[run+"-public"]["username"].(map[string]any)["string"] != "learner" {
		t.Errorf("username %v", got[run+"-public"]["username"])
	}

	if g := enrich.Rec(enrichmentOf(got[run+"-private"])["geo"]); g["ip_kind"] != "private" || g["country_code"] != nil {
		t.Errorf("private edX geo = %v", g)
	}

	click := got[run+"-click"]
	ce := enrichmentOf(click)
	if g := enrich.Rec(ce["geo"]); enrich.Str(g["city"]) != "Zurich" || enrich.Str(g["ip_source"]) != "envelope.ip" {
		t.Errorf("click geo = %v (looked up before the IP was truncated)", g)
	}
	if ip := enrich.Str(enrich.Rec(click["envelope"])["ip"]); ip != "2a02:168:9::" {
		t.Errorf("click ip %q, want the /48", ip)
	}
	if s := enrich.Str(click["session"]); len(s) < 10 || s[:3] != "k1:" {
		t.Errorf("click session %q, want it hashed with key k1", s)
	}
	if p := enrich.Rec(ce["privacy"]); p["ip"] != "truncate" || enrich.Str(p["key_id"]) != "k1" {
		t.Errorf("click privacy = %v", p)
	}
}

// TestStateRestoredAfterRestart stops one instance after it has seen the
// context-giving events and starts another in the same group: the second
// restores the state from the changelog and resolves the later events.
func TestStateRestoredAfterRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	kcfg := kafkatest.Cluster(t)
	_, serde := avrotest.Registry(t)
	cfg := Defaults()
	cfg.Kafka = kcfg
	cfg.Group = kafkatest.UniqueName(t, "enricher")
	start := func(instance string) *Service {
		c := cfg
		c.Instance = instance
		svc, err := New(c, Deps{Log: zaptest.NewLogger(t).Named(instance), Serde: serde})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return svc
	}
	run := fmt.Sprintf("%d", time.Now().UnixNano())
	worker, sensor := "W-"+run, "S-"+run
	cl := newClient(t, kcfg)
	produce := func(recs ...*kgo.Record) {
		t.Helper()
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	first := start("first")
	produce(
		rawRecord(t, serde, event.CrowdFrame, eventtest.CrowdFrame(eventtest.Env{ID: run + "-ctx"}, "context", worker, "t", "b", 0,
			eventtest.CFContext(chromeUA, "81.2.69.142"))),
		rawRecord(t, serde, event.Weaklayer, eventtest.Weaklayer(eventtest.Env{ID: run + "-install"}, "Install", sensor, 100, eventtest.WLInstall("desk", chromeUA))),
		rawRecord(t, serde, event.Weaklayer, eventtest.Weaklayer(eventtest.Env{ID: run + "-win"}, "Window", sensor, 200, eventtest.WLWindow(true, 0))),
		rawRecord(t, serde, event.Weaklayer, eventtest.Weaklayer(eventtest.Env{ID: run + "-loc"}, "WindowLocation", sensor, 300,
			eventtest.WLLocation("https", "docs.example.org", 0, "/d", "", "", 200))),
	)
	consume(ctx, t, kcfg, event.EnrichedTopic(event.Weaklayer), 3, func(r *kgo.Record) bool { return string(r.Key) == sensor })
	consume(ctx, t, kcfg, event.EnrichedTopic(event.CrowdFrame), 1, func(r *kgo.Record) bool { return string(r.Key) == worker })
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	second := start("second")
	defer func() {
		if err := second.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	produce(
		rawRecord(t, serde, event.CrowdFrame, eventtest.CrowdFrame(eventtest.Env{ID: run + "-q"}, "query", worker, "t", "b", 1, eventtest.CFQuery("s1", "q"))),
		rawRecord(t, serde, event.Weaklayer, eventtest.Weaklayer(eventtest.Env{ID: run + "-text"}, "TextInput", sensor, 400, eventtest.WLTextInput(300, 5))),
	)
	wl := decodeAll(ctx, t, serde, consume(ctx, t, kcfg, event.EnrichedTopic(event.Weaklayer), 4, func(r *kgo.Record) bool { return string(r.Key) == sensor }))
	cf := decodeAll(ctx, t, serde, consume(ctx, t, kcfg, event.EnrichedTopic(event.CrowdFrame), 2, func(r *kgo.Record) bool { return string(r.Key) == worker }))

	text := enrichmentOf(wl[run+"-text"])
	if text["enricher_instance"] != "second" {
		t.Fatalf("TextInput enriched by %v", text["enricher_instance"])
	}
	if c := enrich.Rec(text["weaklayer"]); c["resolution"] != "resolved" || enrich.Str(c["url"]) != "https://docs.example.org/d" ||
		enrich.Str(c["install_label"]) != "desk" {
		t.Errorf("TextInput after restart: %v", c)
	}
	q := enrichmentOf(cf[run+"-q"])
	if c := enrich.Rec(q["crowdframe"]); c["context_resolved"] != true || enrich.Str(c["ip"]) != "81.2.69.142" {
		t.Errorf("query after restart: %v", c)
	}
	if u := enrich.Rec(q["user_agent"]); enrich.Str(u["source"]) != "crowdframe.context" || enrich.Str(u["browser"]) != "Chrome" {
		t.Errorf("query user agent after restart: %v", u)
	}
	if err := second.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := second.store.Stats().Restored; n == 0 {
		t.Error("the second instance restored nothing")
	}
}

// TestEnrichedEdXEventWithInstalledDatabases is the test above with the
// real databases `make geoip` installs (skipped when they are not there):
// an edX event from a public IP gets country, city and ASN from them.
func TestEnrichedEdXEventWithInstalledDatabases(t *testing.T) {
	city, asn, ok := InstalledGeoIP("../../data/geoip")
	if !ok {
		t.Skip("no databases in data/geoip: run make geoip")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kcfg := kafkatest.Cluster(t)
	_, serde := avrotest.Registry(t)
	cfg := Defaults()
	cfg.Kafka = kcfg
	cfg.Group = kafkatest.UniqueName(t, "enricher")
	cfg.GeoIP = GeoIPConfig{City: city, ASN: asn}
	svc, err := New(cfg, Deps{Log: zaptest.NewLogger(t), Serde: serde})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop(context.Background()) }()
	run := fmt.Sprintf("%d", time.Now().UnixNano())
	// 8.8.8.8 is Google's public resolver: AS15169 in the United States.
	native := eventtest.EdX(eventtest.Env{ID: run, IP: "10.0.0.5", Key: "real-" + run}, map[string]any{
		"username": "learner", "ip": "8.8.8.8", "agent": chromeUA, "event_type": "play_video"})
	if err := newClient(t, kcfg).ProduceSync(ctx, rawRecord(t, serde, event.EdX, native)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := decodeAll(ctx, t, serde, consume(ctx, t, kcfg, event.EnrichedTopic(event.EdX), 1,
		func(r *kgo.Record) bool { return string(r.Key) == "real-"+run }))
	g := enrich.Rec(enrichmentOf(got[run])["geo"])
	asnNo, _ := enrich.Int(g["asn"])
	if enrich.Str(g["country_code"]) != "US" || enrich.Str(g["country_name"]) != "United States" || enrich.Str(g["city"]) == "" || asnNo != 15169 {
		t.Errorf("geo from the installed databases = %v", g)
	}
	t.Logf("8.8.8.8: %s, %s, %s; AS%d %s (%s, %s)", enrich.Str(g["city"]), enrich.Str(g["region"]), enrich.Str(g["country_name"]),
		asnNo, enrich.Str(g["as_org"]), enrich.Str(g["city_db"]), enrich.Str(g["asn_db"]))
}
