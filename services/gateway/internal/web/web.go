// Package web is the browser side of the gateway: it serves the Sluice
// browser agent at /sdk/sluice.js and, when enabled, the demo page at
// /demo/ with its feed of recently accepted events at /demo/recent.
//
// sluice.js is the agent's source; sluice.min.js, made from it by
// minify.sh, is what is served. Its unit tests run with `node --test
// services/gateway/internal/web/*.test.js` (make test); the end-to-end test
// in a real browser is services/standalone/browser_test.go. The manual is
// docs/browser-agent.md.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sluicehq/sluice/services/gateway/internal/ingest"
)

//go:embed sluice.min.js demo
var files embed.FS

// Host is what the web routes need from the gateway's HTTP server
// (*ingest.Server).
type Host interface {
	Echo() *echo.Echo
	OnAccepted(func([]ingest.Accepted))
}

// Options configure the routes.
type Options struct {
	// Demo serves /demo/ and /demo/recent. The feed shows every event the
	// gateway accepts, from any source, so it answers loopback clients only
	// and is meant for development (the standalone mode turns it on).
	Demo bool
	// Recent is how many events /demo/recent keeps (default 50).
	Recent int
}

// Web holds the served files and the recent-events ring.
type Web struct {
	sdk    asset
	demo   fs.FS
	recent *ring
}

// asset is a file served with its gzip form and an ETag.
type asset struct {
	body, gz []byte
	etag     string
}

func newAsset(b []byte) asset {
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	sum := sha256.Sum256(b)
	return asset{body: b, gz: z.Bytes(), etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

// Mount registers the routes on h.
func Mount(h Host, opts Options) (*Web, error) {
	sdk, err := files.ReadFile("sluice.min.js")
	if err != nil {
		return nil, err
	}
	demo, err := fs.Sub(files, "demo")
	if err != nil {
		return nil, err
	}
	w := &Web{sdk: newAsset(sdk), demo: demo}
	e := h.Echo()
	e.GET("/sdk/sluice.js", w.serveSDK)
	e.HEAD("/sdk/sluice.js", w.serveSDK)
	if opts.Demo {
		n := opts.Recent
		if n <= 0 {
			n = 50
		}
		w.recent = &ring{items: make([]Recent, n)}
		h.OnAccepted(w.recent.add)
		e.GET("/demo", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/demo/") })
		e.GET("/demo/", w.serveDemo)
		e.GET("/demo/:file", w.serveDemo)
		e.GET("/demo/recent", w.serveRecent)
	}
	return w, nil
}

// serveSDK serves the agent: cacheable for five minutes, gzipped when the
// client takes it, loadable from any page (it is public).
func (w *Web) serveSDK(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("ETag", w.sdk.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Add("Vary", "Accept-Encoding")
	if match := c.Request().Header.Get("If-None-Match"); match != "" && strings.Contains(match, w.sdk.etag) {
		return c.NoContent(http.StatusNotModified)
	}
	body := w.sdk.body
	if acceptsGzip(c.Request()) {
		h.Set("Content-Encoding", "gzip")
		body = w.sdk.gz
	}
	if c.Request().Method == http.MethodHead {
		h.Set("Content-Length", strconv.Itoa(len(body)))
		return c.NoContent(http.StatusOK)
	}
	return c.Blob(http.StatusOK, "text/javascript; charset=utf-8", body)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") {
			return strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0"
		}
	}
	return false
}

var demoTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

// serveDemo serves the demo page's files.
func (w *Web) serveDemo(c echo.Context) error {
	name := c.Param("file")
	if name == "" {
		name = "index.html"
	}
	ext := name[strings.LastIndexByte(name, '.')+1:]
	ctype, ok := demoTypes["."+ext]
	if !ok || strings.ContainsAny(name, "/\\") {
		return echo.NewHTTPError(http.StatusNotFound, "no such file")
	}
	b, err := fs.ReadFile(w.demo, name)
	if err != nil {
		return echo.NewHTTPError(http.StatusNotFound, "no such file")
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
	return c.Blob(http.StatusOK, ctype, b)
}

// serveRecent answers the demo page's poll with the newest events first,
// to loopback clients only (the socket's address, not X-Forwarded-For).
func (w *Web) serveRecent(c echo.Context) error {
	host, _, err := net.SplitHostPort(c.Request().RemoteAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return echo.NewHTTPError(http.StatusNotFound, "the recent-events feed answers loopback clients only")
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, struct {
		Events []Recent `json:"events"`
	}{w.recent.list()})
}

// Recent is one accepted event in the demo feed.
type Recent struct {
	ReceivedAt time.Time `json:"received_at"`
	Family     string    `json:"family"`
	Endpoint   string    `json:"endpoint"`
	Source     string    `json:"source"`
	EventID    string    `json:"event_id"`
	BatchID    string    `json:"batch_id,omitempty"`
	// Event is the event as received, or a JSON string of its first
	// maxRecentBytes bytes when it is larger.
	Event json.RawMessage `json:"event"`
	// truncated: Event holds only the first maxRecentBytes of the event.
	truncated bool
}

// maxRecentBytes bounds the copy of each event the ring keeps.
const maxRecentBytes = 4096

// ring keeps the last len(items) accepted events.
type ring struct {
	mu    sync.Mutex
	items []Recent
	next  int
	full  bool
}

// recentPerBatch is the most events of one request the feed keeps: it
// shows what arrives, not every event of a large batch, and each event
// kept is a copy made on the ingest path.
const recentPerBatch = 8

// add keeps the last events of a request's batch (at most recentPerBatch
// and as many as the ring holds), each as a copy of at most
// maxRecentBytes; whether a copy is JSON the feed can embed is checked when
// the feed is read (list), not on the ingest path.
func (r *ring) add(batch []ingest.Accepted) {
	if n := min(len(r.items), recentPerBatch); len(batch) > n {
		batch = batch[len(batch)-n:]
	}
	for i := range batch {
		r.put(&batch[i])
	}
}

func (r *ring) put(a *ingest.Accepted) {
	item := Recent{
		ReceivedAt: a.ReceivedAt, Family: string(a.Family), Endpoint: a.Endpoint, Source: a.SourceKey,
		EventID: strings.Clone(a.EventID), BatchID: a.BatchID, Event: bytes.Clone(a.Raw[:min(len(a.Raw), maxRecentBytes)]),
		truncated: len(a.Raw) > maxRecentBytes,
	}
	r.mu.Lock()
	r.items[r.next] = item
	r.next = (r.next + 1) % len(r.items)
	r.full = r.full || r.next == 0
	r.mu.Unlock()
}

// list returns the events, newest first.
func (r *ring) list() []Recent {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.items)
	}
	out := make([]Recent, 0, n)
	for i := 1; i <= n; i++ {
		it := r.items[(r.next-i+len(r.items))%len(r.items)]
		if it.truncated || !json.Valid(it.Event) {
			it.Event, _ = json.Marshal(strings.ToValidUTF8(string(it.Event), "\uFFFD") + "…")
		}
		out = append(out, it)
	}
	return out
}
