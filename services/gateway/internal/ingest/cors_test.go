package ingest

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice/pkg/avro/avrotest"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/kafka/kafkatest"
	"github.com/sluicehq/sluice/pkg/pipeline"
)

const (
	siteKey   = "browser-key-0123456789"
	serverKey = "server-key-0123456789"
	siteApp   = "https://app.example"
)

// corsServer runs a gateway with a browser key for siteApp, a server key
// and the loopback dev key, and records what OnAccepted sees.
func corsServer(t *testing.T) (string, func() []Accepted) {
	t.Helper()
	log := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	kcfg := kafkatest.Cluster(t)
	_, serde := avrotest.Registry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, kcfg, nil, event.DLQTopic, event.RawTopic(event.Clicks)); err != nil {
		t.Fatal(err)
	}
	producer, err := kafka.NewProducer(kcfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = producer.Close(context.Background()) })
	reg := prometheus.NewRegistry()
	dlq, err := pipeline.NewDLQ(serde, producer, "test", reg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(Options{
		Listen: "127.0.0.1:0", Version: "test",
		Limits: Limits{MaxBodyBytes: 1 << 20, MaxDecompressedBytes: 4 << 20, MaxRatio: 100, MaxEvents: 100, MaxEventBytes: 64 << 10, MaxDepth: 32},
		Sources: []Source{
			{ID: "site", Key: siteKey, Browser: true, Families: []string{"clicks"}, Origins: []string{siteApp + "/"}},
			{ID: "server", Key: serverKey},
			{ID: "dev", Key: "dev", LoopbackOnly: true, Trusted: true},
		},
		ProduceTimeout: 5 * time.Second, RetryAfter: time.Second,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		IdleTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10,
	}, Deps{Log: log, Metrics: reg, Serde: serde, Producer: producer, DLQ: dlq})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []Accepted
	srv.OnAccepted(func(batch []Accepted) {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range batch {
			a.Raw = append([]byte(nil), a.Raw...) // valid only during the call, as EventID
			a.EventID = strings.Clone(a.EventID)
			seen = append(seen, a)
		}
	})
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	return "http://" + srv.Addr(), func() []Accepted {
		mu.Lock()
		defer mu.Unlock()
		return append([]Accepted(nil), seen...)
	}
}

type corsReply struct {
	status int
	header http.Header
	body   string
}

func corsDo(t *testing.T, method, url string, hdr map[string]string) corsReply {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(`{"type":"mousedown","info":{"x":1,"y":2,"target":{"id":"(1,1)","class":"cell"}},"session":"s1"}`)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return corsReply{resp.StatusCode, resp.Header, string(b)}
}

func TestCORSPreflight(t *testing.T) {
	url, _ := corsServer(t)
	pre := map[string]string{
		"Origin": siteApp, "Access-Control-Request-Method": "POST",
		"Access-Control-Request-Headers": "authorization,content-type,idempotency-key,content-encoding",
	}
	r := corsDo(t, http.MethodOptions, url+"/v1/events/clicks", pre)
	if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != siteApp {
		t.Fatalf("preflight from an allowed origin: %d %v", r.status, r.header)
	}
	allow := strings.ToLower(r.header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"authorization", "content-type", "idempotency-key", "content-encoding"} {
		if !strings.Contains(allow, h) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", allow, h)
		}
	}
	if !strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") || r.header.Get("Access-Control-Max-Age") == "" {
		t.Errorf("preflight headers: %v", r.header)
	}
	if r.header.Get("Access-Control-Allow-Credentials") != "" {
		t.Error("credentials are never asked for")
	}
	pre["Origin"] = "https://evil.example"
	r = corsDo(t, http.MethodOptions, url+"/v1/events/clicks", pre)
	if r.status != http.StatusForbidden || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin: %d %v", r.status, r.header)
	}
}

func TestCORSRequests(t *testing.T) {
	url, accepted := corsServer(t)
	ep := url + "/v1/events/clicks"
	host := strings.TrimPrefix(url, "http://")
	for _, tc := range []struct {
		name       string
		path       string
		hdr        map[string]string
		status     int
		acao, code string
	}{
		{"browser key from its origin", "", map[string]string{"Origin": siteApp, "Authorization": "Bearer " + siteKey}, 200, siteApp, ""},
		{"browser key from another origin", "", map[string]string{"Origin": "https://evil.example", "Authorization": "Bearer " + siteKey}, 403, "", "origin_not_allowed"},
		{"server key from a browser key's origin", "", map[string]string{"Origin": siteApp, "Authorization": "Bearer " + serverKey}, 403, "", "origin_not_allowed"},
		{"bad key from an allowed origin can read its 401", "", map[string]string{"Origin": siteApp, "Authorization": "Bearer nope"}, 401, siteApp, "invalid_key"},
		{"browser key in the query (sendBeacon)", "?key=" + siteKey + "&idempotency_key=beacon-1", map[string]string{"Origin": siteApp}, 200, siteApp, ""},
		{"server key in the query", "?key=" + serverKey, nil, 401, "", "key_in_query"},
		{"dev key in the query from loopback", "?key=dev", nil, 200, "", ""},
		{"dev key from the gateway's own page", "", map[string]string{"Origin": url, "Authorization": "Bearer dev"}, 200, "", ""},
		{"dev key from another page", "?key=dev", map[string]string{"Origin": "http://127.0.0.1:1"}, 403, "", "origin_not_allowed"},
		{"dev key from a DNS-rebound page", "?key=dev", map[string]string{"Origin": "http://rebind.example:" + host[strings.LastIndexByte(host, ':')+1:], "Host": "rebind.example:" + host[strings.LastIndexByte(host, ':')+1:]}, 403, "", "origin_not_allowed"},
		{"no Origin: a server", "", map[string]string{"Authorization": "Bearer " + serverKey}, 200, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := corsDo(t, http.MethodPost, ep+tc.path, tc.hdr)
			if r.status != tc.status || r.header.Get("Access-Control-Allow-Origin") != tc.acao {
				t.Fatalf("%d ACAO %q, want %d %q: %s", r.status, r.header.Get("Access-Control-Allow-Origin"), tc.status, tc.acao, r.body)
			}
			if tc.code != "" && !strings.Contains(r.body, `"`+tc.code+`"`) {
				t.Errorf("body %s lacks %s", r.body, tc.code)
			}
			if tc.acao != "" && r.header.Get("Access-Control-Expose-Headers") != "Retry-After" {
				t.Errorf("Retry-After is not exposed: %v", r.header)
			}
		})
	}
	var found bool
	for _, a := range accepted() {
		if a.BatchID == "beacon-1" {
			found = true
			if a.SourceKey != "site" || a.EventID == "" || !strings.Contains(string(a.Raw), `"(1,1)"`) || a.Family != event.Clicks {
				t.Errorf("accepted beacon event: %+v", a)
			}
		}
	}
	if !found {
		t.Error("?idempotency_key= did not become the batch id")
	}
}
