// Package native mounts the gateway's native endpoints: the wire formats of
// the five source systems and of Splunk HEC, so that their existing clients
// can send to Sluice unchanged (SPEC section 2). Each endpoint frames its
// format into ingest.Items and hands them to ingest.Server.Ingest, the one
// path every event takes (decode → adapt → Avro → produce → per-event
// result → DLQ); it only adds what the original server added (edX request
// context, Crowd Frame server_time, the Weaklayer token's sensor and group,
// the workstation manifest, HEC token defaults) and answers in the reply
// shape its clients expect.
//
// Endpoints (one file per system):
//
//	GET|POST /event                  edx.go          edX user_track; replies "success"
//	POST /segmentio/event?key=…      segment.go      edX track_segmentio_event; edX's JSON replies
//	POST /v1/crowdframe              crowdframe.go   raw JSON or form MessageBody=<json>
//	POST /install, POST /events      weaklayer.go    install key → HS256 token (token.go); gzipped arrays
//	POST /v1/workstation/archives    workstation.go  archive.zip (zip.go), tolerant JSON (repair.go)
//	POST /v1/clicks                  clicks.go       dejavu agent body, with or without {"event": …}
//	/services/collector/...          hec.go          Splunk HEC: event, raw, health, ack; HEC replies
//
// Rejected events go to the DLQ through the pipeline, with the bytes the
// endpoint framed; requests refused as a whole (bad key, oversized body,
// unreadable archive) are answered and not dead-lettered.
package native

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"mime"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/gateway/internal/ingest"
)

// Config configures every native endpoint. Each section is a nested block
// of the gateway configuration (edx, crowdframe, weaklayer, workstation,
// clicks, hec).
type Config struct {
	EdX         EdXConfig
	CrowdFrame  CrowdFrameConfig
	Weaklayer   WeaklayerConfig
	Workstation WorkstationConfig
	Clicks      ClicksConfig
	HEC         HECConfig
}

// Defaults returns the production defaults of every section.
func Defaults() Config {
	return Config{
		EdX:         EdXDefaults(),
		CrowdFrame:  CrowdFrameConfig{AllowAnonymous: true},
		Weaklayer:   WeaklayerDefaults(),
		Workstation: WorkstationDefaults(),
		Clicks:      ClicksConfig{AllowAnonymous: true},
		HEC:         HECConfig{},
	}
}

// Validate reports every problem, each prefixed with its section.
func (c Config) Validate() error {
	var p config.Problems
	p.Add("edx", c.EdX.Validate())
	p.Add("weaklayer", c.Weaklayer.Validate())
	p.Add("workstation", c.Workstation.Validate())
	p.Add("hec", c.HEC.Validate())
	return p.Err()
}

// Deps are what the endpoints need from the gateway.
type Deps struct {
	Log    *zap.Logger
	Server *ingest.Server
	// DevKey makes the development key "dev" also the segment.io webhook
	// secret and a HEC token, both accepted from loopback clients only.
	DevKey bool
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// Native holds the mounted endpoints' state.
type Native struct {
	cfg Config
	s   *ingest.Server
	log *zap.Logger
	now func() time.Time
	seg []secretEntry
	wl  *weaklayer
	hec *hecTokens
	edx edxRules
}

// secretEntry is a configured secret, kept as a digest so that every
// comparison takes the same time.
type secretEntry struct {
	digest       [32]byte
	loopbackOnly bool
}

// matchSecret reports whether presented equals one of the secrets (all are
// compared, in constant time) and is allowed from remoteAddr.
func matchSecret(entries []secretEntry, presented, remoteAddr string) bool {
	if presented == "" {
		return false
	}
	d := sha256.Sum256([]byte(presented))
	var found *secretEntry
	for i := range entries {
		if subtle.ConstantTimeCompare(d[:], entries[i].digest[:]) == 1 {
			found = &entries[i]
		}
	}
	if found == nil {
		return false
	}
	return !found.loopbackOnly || isLoopback(remoteAddr)
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Mount builds the endpoints and registers their routes on the server.
func Mount(cfg Config, deps Deps) (*Native, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Native{cfg: cfg, s: deps.Server, log: deps.Log, now: deps.Now}
	if n.now == nil {
		n.now = time.Now
	}
	if s := cfg.EdX.SegmentSecret.Value(); s != "" {
		n.seg = append(n.seg, secretEntry{digest: sha256.Sum256([]byte(s))})
	}
	tokens := append([]HECToken(nil), cfg.HEC.Tokens...)
	if deps.DevKey {
		n.seg = append(n.seg, secretEntry{digest: sha256.Sum256([]byte(devKey)), loopbackOnly: true})
		tokens = append(tokens, HECToken{Token: devKey, SourceID: "dev", LoopbackOnly: true})
	}
	n.hec = newHECTokens(tokens)
	wl, err := newWeaklayer(cfg.Weaklayer, n.now)
	if err != nil {
		return nil, err
	}
	n.wl = wl
	n.edx = newEdXRules(cfg.EdX)
	n.routes(deps.Server.Echo())
	deps.Server.SetDrop(event.EdX, n.edx.dropGeneric)
	return n, nil
}

// devKey is the standalone development key (gateway.DevKey).
const devKey = "dev"

func (n *Native) routes(e *echo.Echo) {
	e.GET("/event", n.handleUserTrack)
	e.POST("/event", n.handleUserTrack)
	e.POST("/segmentio/event", n.handleSegment)
	e.POST("/v1/crowdframe", n.handleCrowdFrame)
	e.POST("/install", n.handleInstall)
	e.POST("/events", n.handleWeaklayerEvents)
	e.POST("/v1/workstation/archives", n.handleArchive)
	e.POST("/v1/clicks", n.handleClicks)
	n.hecRoutes(e)
}

// anonymousSource is the source id of events sent without a key to an
// endpoint that allows it.
const anonymousSource = "anonymous"

// sender is who sent a request to a keyed or anonymous endpoint.
type sender struct {
	id      string
	strict  bool
	trusted bool
}

// source authenticates a request to an endpoint whose clients may or may
// not present a Sluice key: a presented key must be valid and allowed to
// send fam; no key is accepted only when anonymous is true.
func (n *Native) source(c echo.Context, fam event.Family, anonymous bool) (sender, error) {
	if ingest.PresentedKey(c.Request()) == "" {
		if anonymous {
			return sender{id: anonymousSource}, nil
		}
		return sender{}, ingest.Errorf(http.StatusUnauthorized, "missing_key",
			"no key: send Authorization: Bearer <key> (this endpoint does not accept anonymous clients)")
	}
	src, err := n.s.Authenticate(c, fam)
	if err != nil {
		return sender{}, err
	}
	return sender{id: src.ID, strict: src.Strict, trusted: src.Trusted}, nil
}

// mediaType returns the request's media type, lower-cased, "" when absent,
// and an HTTPError when the header does not parse.
func mediaType(r *http.Request) (string, map[string]string, error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "", nil, nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", nil, ingest.Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type %q cannot be parsed", ct)
	}
	return mt, params, nil
}

// replyEvents writes the Sluice per-event reply of an endpoint whose client
// sends one event or a small batch: 200 when all were accepted, 207 when
// some were, 400 when every event was rejected (a malformed request), 503
// with Retry-After when Kafka could take none (or the gateway was
// overloaded), 429 with Retry-After when the source key is over its rate
// limit.
func (n *Native) replyEvents(c echo.Context, res *ingest.Result) error {
	if res.Unavailable == nil && res.RateLimited == 0 && res.Accepted == 0 && res.Rejected > 0 && allRefused(res) {
		return c.JSON(http.StatusBadRequest, res)
	}
	return n.s.Reply(c, res)
}

// allRefused reports whether every rejection is the event's fault, not a
// failed produce or a refusal (which the client should retry).
func allRefused(res *ingest.Result) bool {
	for _, e := range res.Errors {
		if ingest.Retryable(e.Code) {
			return false
		}
	}
	return true
}

// batchID is the request's Idempotency-Key (or ?idempotency_key=), for the
// endpoints whose clients may send one.
func (n *Native) batchID(c echo.Context) (string, error) {
	return n.s.BatchID(c.Request())
}

// setRetryAfter sets the Retry-After header of a 503 answering res (nil:
// one not answering an ingest, such as an unhealthy HEC health check).
func (n *Native) setRetryAfter(c echo.Context, res *ingest.Result) {
	c.Response().Header().Set("Retry-After", ingest.RetryAfterHeader(n.s.RetryAfter(res)))
}

// asHTTPError returns err as an *ingest.HTTPError (500 for anything else).
func asHTTPError(err error) *ingest.HTTPError {
	var he *ingest.HTTPError
	if errors.As(err, &he) {
		return he
	}
	return ingest.Errorf(http.StatusInternalServerError, "internal", "internal error")
}

// ingestCtx bounds nothing itself: the pipeline applies its own produce
// timeout; it exists so that handlers read alike.
func ingestCtx(c echo.Context) context.Context { return c.Request().Context() }

// errorf is shorthand for a request-level failure.
func errorf(status int, code, format string, a ...any) error {
	return ingest.Errorf(status, code, format, a...)
}

// asTooMany reports whether err is an ingest.ErrTooManyEvents.
func asTooMany(err error, tm *ingest.ErrTooManyEvents) bool { return errors.As(err, tm) }

// asSyntax reports whether err is a *json.SyntaxError.
func asSyntax(err error, se **json.SyntaxError) bool { return errors.As(err, se) }
