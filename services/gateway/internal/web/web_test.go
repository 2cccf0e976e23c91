package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/gateway/internal/ingest"
)

// fakeHost stands in for the ingest server.
type fakeHost struct {
	e         *echo.Echo
	observers []func([]ingest.Accepted)
}

func (h *fakeHost) Echo() *echo.Echo                      { return h.e }
func (h *fakeHost) OnAccepted(fn func([]ingest.Accepted)) { h.observers = append(h.observers, fn) }

func mount(t *testing.T, opts Options) *fakeHost {
	t.Helper()
	h := &fakeHost{e: echo.New()}
	if _, err := Mount(h, opts); err != nil {
		t.Fatal(err)
	}
	return h
}

func get(h *fakeHost, path, remote string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = remote
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.e.ServeHTTP(rec, req)
	return rec
}

// TestMinifiedIsFresh fails when sluice.js changed and sluice.min.js, which
// the gateway serves, was not made again from it.
func TestMinifiedIsFresh(t *testing.T) {
	src, err := os.ReadFile("sluice.js")
	if err != nil {
		t.Fatal(err)
	}
	min, err := os.ReadFile("sluice.min.js")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(src)
	m := regexp.MustCompile(`sha256:([0-9a-f]{64})`).FindSubmatch(min[:bytes.IndexByte(min, '\n')])
	if m == nil || string(m[1]) != hex.EncodeToString(sum[:]) {
		t.Fatal("sluice.min.js was not made from the current sluice.js: run services/gateway/internal/web/minify.sh")
	}
}

// TestSDKSize keeps the agent small: under 6 KB minified and gzipped.
func TestSDKSize(t *testing.T) {
	min, err := os.ReadFile("sluice.min.js")
	if err != nil {
		t.Fatal(err)
	}
	gz := newAsset(min).gz
	t.Logf("sluice.min.js: %d bytes, %d gzipped", len(min), len(gz))
	if len(gz) > 6*1024 {
		t.Errorf("sluice.min.js is %d bytes gzipped, over the 6 KB budget", len(gz))
	}
}

func TestServeSDK(t *testing.T) {
	h := mount(t, Options{})
	min, _ := os.ReadFile("sluice.min.js")
	rec := get(h, "/sdk/sluice.js", "192.0.2.1:5000", map[string]string{"Accept-Encoding": "gzip, deflate, br"})
	if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "gzip" || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/javascript") {
		t.Fatalf("GET gzip: %d %v", rec.Code, rec.Header())
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(zr); !bytes.Equal(b, min) {
		t.Fatal("the gzipped body is not sluice.min.js")
	}
	rec = get(h, "/sdk/sluice.js", "192.0.2.1:5000", nil)
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), min) || rec.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("GET plain: %d %v", rec.Code, rec.Header())
	}
	etag := rec.Header().Get("ETag")
	if rec := get(h, "/sdk/sluice.js", "192.0.2.1:5000", map[string]string{"If-None-Match": etag}); rec.Code != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", rec.Code)
	}
	if rec := get(h, "/demo/", "127.0.0.1:5000", nil); rec.Code != http.StatusNotFound {
		t.Fatalf("demo off: /demo/ answered %d", rec.Code)
	}
}

func TestDemoAndRecentFeed(t *testing.T) {
	h := mount(t, Options{Demo: true, Recent: 3})
	rec := get(h, "/demo/", "127.0.0.1:5000", nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `id="(1,1)"`) || !strings.Contains(rec.Body.String(), `src="/sdk/sluice.js"`) {
		t.Fatalf("/demo/: %d %.200s", rec.Code, rec.Body.String())
	}
	if rec := get(h, "/demo/demo.js", "127.0.0.1:5000", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), "Sluice.init") {
		t.Fatalf("/demo/demo.js: %d", rec.Code)
	}
	if rec := get(h, "/demo", "127.0.0.1:5000", nil); rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/demo/" {
		t.Fatalf("/demo: %d %v", rec.Code, rec.Header())
	}
	if rec := get(h, "/demo/missing.js", "127.0.0.1:5000", nil); rec.Code != 404 {
		t.Fatalf("/demo/missing.js: %d", rec.Code)
	}
	if len(h.observers) != 1 {
		t.Fatalf("%d observers", len(h.observers))
	}
	for i, raw := range []string{`{"type":"a"}`, `{"type":"b"}`, `{"type":"c"}`, `{"type":"d","pad":"` + strings.Repeat("x", 5000) + `"}`} {
		h.observers[0]([]ingest.Accepted{{Family: event.CrowdFrame, Endpoint: "/v1/events/crowdframe", SourceKey: "dev",
			EventID: "id-" + string(rune('a'+i)), ReceivedAt: time.Now(), Raw: []byte(raw)}})
	}
	if rec := get(h, "/demo/recent", "192.0.2.1:5000", nil); rec.Code != 404 {
		t.Fatalf("/demo/recent from a non-loopback client: %d", rec.Code)
	}
	rec = get(h, "/demo/recent", "[::1]:5000", nil)
	var feed struct{ Events []Recent }
	if err := json.Unmarshal(rec.Body.Bytes(), &feed); err != nil || rec.Code != 200 {
		t.Fatalf("/demo/recent: %d %v", rec.Code, err)
	}
	var ids []string
	for _, e := range feed.Events {
		ids = append(ids, e.EventID)
	}
	if strings.Join(ids, ",") != "id-d,id-c,id-b" {
		t.Fatalf("feed ids %v, want the newest three, newest first", ids)
	}
	var s string
	if err := json.Unmarshal(feed.Events[0].Event, &s); err != nil || len(s) > maxRecentBytes+3 {
		t.Fatalf("a large event is kept as a cut string: %v %d", err, len(s))
	}
	if string(feed.Events[1].Event) != `{"type":"c"}` {
		t.Fatalf("event: %s", feed.Events[1].Event)
	}

	// One request's batch, longer than the ring, and an event that is not
	// JSON (a HEC raw line): the ring keeps the batch's last three, and the
	// non-JSON one is shown as a string.
	var batch []ingest.Accepted
	for i := range 5 {
		raw := fmt.Sprintf(`{"n":%d}`, i)
		if i == 4 {
			raw = "plain text line"
		}
		batch = append(batch, ingest.Accepted{Family: event.HEC, EventID: fmt.Sprintf("b-%d", i), Raw: []byte(raw)})
	}
	h.observers[0](batch)
	rec = get(h, "/demo/recent", "127.0.0.1:5000", nil)
	if err := json.Unmarshal(rec.Body.Bytes(), &feed); err != nil {
		t.Fatal(err)
	}
	ids = ids[:0]
	for _, e := range feed.Events {
		ids = append(ids, e.EventID)
	}
	if strings.Join(ids, ",") != "b-4,b-3,b-2" || string(feed.Events[0].Event) != `"plain text line…"` || string(feed.Events[1].Event) != `{"n":3}` {
		t.Fatalf("after a batch of 5: ids %v, events %s %s", ids, feed.Events[0].Event, feed.Events[1].Event)
	}
}
