package enricher

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/avro/avrotest"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/enricher/internal/enrich"
	"github.com/sluicehq/sluice/services/enricher/internal/eventtest"
	"github.com/sluicehq/sluice/services/enricher/internal/resolve"
	"github.com/sluicehq/sluice/services/enricher/internal/state"
)

var benchUAs = []string{
	chromeUA,
	"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"edX/org.edx.mobile (2.26.1; OS Version 11 (Build RP1A.200720.011))",
}

// benchGeo returns the databases named by SLUICE_GEOIP_CITY and
// SLUICE_GEOIP_ASN, else those `make geoip` installed in data/geoip, else
// small test databases.
func benchGeo(b testing.TB) (GeoIPConfig, string) {
	if c := os.Getenv("SLUICE_GEOIP_CITY"); c != "" {
		g := GeoIPConfig{City: strings.Split(c, ",")}
		if a := os.Getenv("SLUICE_GEOIP_ASN"); a != "" {
			g.ASN = strings.Split(a, ",")
		}
		return g, "databases of SLUICE_GEOIP_*"
	}
	if g, ok := installedGeo(); ok {
		return g, "data/geoip databases (make geoip)"
	}
	return testDatabases(b), "test databases (run make geoip for the real ones)"
}

// installedGeo returns the databases `make geoip` installs, if present.
func installedGeo() (GeoIPConfig, bool) {
	city, asn, ok := InstalledGeoIP(filepath.Join("..", "..", "data", "geoip"))
	return GeoIPConfig{City: city, ASN: asn}, ok
}

// mixedRaw builds n raw records of every family in the proportions of a
// busy deployment (edX most), with keys, agents and public IPs varied.
func mixedRaw(b testing.TB, serde *avro.Serde, n, keys int) []*kgo.Record {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]*kgo.Record, 0, n)
	man := eventtest.Manifest("bench-machine", "jdoe", 10800)
	for i := range n {
		k := rng.IntN(keys)
		ip := fmt.Sprintf("%d.%d.%d.%d", 1+rng.IntN(222), rng.IntN(256), rng.IntN(256), 1+rng.IntN(254))
		if rng.IntN(10) == 0 {
			ip = fmt.Sprintf("81.2.69.%d", rng.IntN(256)) // in the test databases too
		}
		env := eventtest.Env{ID: fmt.Sprintf("bench-%d", i), IP: ip, UA: benchUAs[rng.IntN(len(benchUAs))],
			Client: eventtest.Base.Add(-time.Second), Sent: eventtest.Base.Add(-500 * time.Millisecond)}
		var f event.Family
		var native map[string]any
		switch r := rng.IntN(100); {
		case r < 40:
			f = event.EdX
			env.Key = fmt.Sprintf("user%d", k)
			native = eventtest.EdX(env, map[string]any{"username": env.Key, "ip": ip, "agent": env.UA, "event_type": "play_video",
				"event_kind": "json_string", "event_raw": `{"id":"i4x-edX-DemoX-video-0b9e39477cf34507a7a48f74be381fdd","currentTime":243,"code":"iOOYGgLADj8"}`,
				"page":    "https://courses.example.org/courses/course-v1:edX+DemoX+Demo_2014/courseware/d8a6192ade314473a78242dfeedfbf5b/",
				"context": eventtest.EdXContext("course-v1:edX+DemoX+Demo_2014", "edX", int64(k))})
		case r < 60:
			f = event.CrowdFrame
			w := fmt.Sprintf("worker%d", k)
			if rng.IntN(10) == 0 {
				native = eventtest.CrowdFrame(env, "context", w, "task", "batch", 0, eventtest.CFContext(env.UA, ip))
			} else {
				native = eventtest.CrowdFrame(env, "query", w, "task", "batch", int64(i), eventtest.CFQuery("q1", "weather in zurich"))
			}
		case r < 75:
			f = event.Weaklayer
			s := fmt.Sprintf("sensor%d", k)
			t := int64(1_700_000_000_000_000 + i)
			switch rng.IntN(4) {
			case 0:
				native = eventtest.Weaklayer(env, "Window", s, t, eventtest.WLWindow(true, 0))
			case 1:
				native = eventtest.Weaklayer(env, "WindowLocation", s, t, eventtest.WLLocation("https", "docs.example.org", 0, "/d/1", "?x=1", "", t-1))
			default:
				native = eventtest.Weaklayer(env, "TextInput", s, t, eventtest.WLTextInput(t-1, 12))
			}
		case r < 90:
			f = event.Clicks
			page := ""
			if rng.IntN(3) == 0 {
				page = "https://demo.example.org/game"
			}
			native = eventtest.Clicks(env, "mousedown", fmt.Sprintf("session%d", k), page, "(1,1)", "cell")
		case r < 95:
			f = event.Workstation
			native = eventtest.WorkstationActivity(env, man, 1692694112, 469, 52, 10, 1, 29)
		default:
			f = event.HEC
			env.Key = "hec"
			native = eventtest.HEC(env, "GET /index.html 200")
		}
		out = append(out, rawRecord(b, serde, f, native))
	}
	return out
}

// BenchmarkEnricher measures one instance's work per event, for mixed
// families with geo and user agent on: decode, resolve context (with
// state), geo, user agent, derived time, privacy, encode. Kafka is not in
// the loop; run it with -cpu 1 for the per-core figure.
func BenchmarkEnricher(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(300)) // as app.Main runs the service
	for _, bc := range []struct {
		name    string
		privacy bool
	}{{"keep", false}, {"privacy", true}} {
		b.Run(bc.name, func(b *testing.B) {
			_, serde := avrotest.Registry(b)
			cfg := Defaults()
			g, which := benchGeo(b)
			cfg.GeoIP = g
			if bc.privacy {
				cfg.Privacy.HMACKeyID, cfg.Privacy.HMACKey = "k1", "0123456789abcdef0123456789abcdef"
				cfg.Privacy.EdX = FamilyPrivacy{IP: "truncate", HMAC: []string{"username"}}
				cfg.Privacy.CrowdFrame = FamilyPrivacy{IP: "hmac"}
				cfg.Privacy.Clicks = FamilyPrivacy{IP: "truncate"}
			}
			svc, err := New(cfg, Deps{Serde: serde})
			if err != nil {
				b.Fatal(err)
			}
			defer svc.Stop(context.Background())
			recs := mixedRaw(b, serde, 20_000, 5_000)
			ctx := context.Background()
			h := svc.handler
			b.Logf("%s, %d distinct records", which, len(recs))
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			for i := 0; i < b.N; {
				end := min(i+500, b.N)
				batch := make([]*kgo.Record, 0, end-i)
				for j := i; j < end; j++ {
					r := *recs[j%len(recs)]
					r.Partition, r.Offset = int32(j%6), int64(j)
					batch = append(batch, &r)
				}
				svc.store.Begin()
				out, err := h.transform(ctx, batch, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				if len(out.dead) > 0 {
					b.Fatalf("dead letter: %s", out.dead[0].Message)
				}
				svc.store.Evict(time.Now())
				if _, err := svc.store.Changes(); err != nil {
					b.Fatal(err)
				}
				svc.store.Commit()
				i = end
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			// On a shared machine wall time counts other processes' work
			// too; the process's CPU time does not.
			b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
		})
	}
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStateMillionKeys writes one million distinct keys of state
// (Crowd Frame worker contexts, click pages and Weaklayer locations, as
// their events write them; a context writes two entries) into a store with
// the default bounds, and reports the heap the state holds.
func BenchmarkStateMillionKeys(b *testing.B) {
	millionOnce.Do(func() { millionKeys(b) })
	for range b.N { // the work is done once, whatever b.N
	}
	for unit, v := range millionResult {
		b.ReportMetric(v, unit)
	}
}

var (
	millionOnce   sync.Once
	millionResult = map[string]float64{}
)

func millionKeys(b *testing.B) {
	const keys = 1_000_000
	{
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)

		bound := Defaults().State
		store := state.New(bound.MaxKeys, bound.MaxAge)
		r := resolve.New(store)
		now := time.Now()
		ctx := context.Background()
		// Build events directly (no Avro round trip): this measures the
		// state, not decoding.
		for i := 0; i < keys; {
			store.Begin()
			for j := 0; j < 1000 && i < keys; j, i = j+1, i+1 {
				var e *enrich.Event
				ip := fmt.Sprintf("81.2.%d.%d", i>>8&255, i&255)
				switch i % 3 {
				case 0:
					n := eventtest.CrowdFrame(eventtest.Env{ID: "x"}, "context", fmt.Sprintf("worker-%07d", i), "task-17", "batch-3", 0,
						eventtest.CFContext(benchUAs[i%len(benchUAs)], ip))
					e = &enrich.Event{Family: event.CrowdFrame, Key: fmt.Sprintf("worker-%07d", i), Native: n, Now: now}
				case 1:
					n := eventtest.Clicks(eventtest.Env{ID: "x"}, "mousedown", fmt.Sprintf("session-%07d", i),
						fmt.Sprintf("https://demo.example.org/game/%d", i), "b", "")
					e = &enrich.Event{Family: event.Clicks, Key: fmt.Sprintf("session-%07d", i), Native: n, Now: now}
				default:
					t := int64(1_700_000_000_000_000 + i)
					n := eventtest.Weaklayer(eventtest.Env{ID: "x"}, "WindowLocation", fmt.Sprintf("sensor-%07d", i), t,
						eventtest.WLLocation("https", "docs.example.org", 0, fmt.Sprintf("/doc/%d", i), "", "", t-1))
					e = &enrich.Event{Family: event.Weaklayer, Key: fmt.Sprintf("sensor-%07d", i), Native: n, Now: now}
				}
				e.Partition = int32(i % 6)
				enrich.Stamp(e, enrich.Provenance{})
				if err := r.Process(ctx, e); err != nil {
					b.Fatal(err)
				}
			}
			store.Evict(now)
			store.Commit() // changes are not encoded here: that is the changelog's cost, per batch
		}
		// A crowdframe context writes two entries (task/batch and latest).
		n := store.Len()
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		millionResult["entries"] = float64(n)
		millionResult["heap-MB"] = heap / (1 << 20)
		millionResult["B/entry"] = heap / float64(n)
		st := store.Stats()
		b.Logf("%d distinct keys written: %d state entries held (bound %d; %d evicted by count), %.0f MB of heap, %.0f B/entry",
			keys, n, bound.MaxKeys, st.EvictedCount, heap/(1<<20), heap/float64(n))
		runtime.KeepAlive(store)
	}
}
