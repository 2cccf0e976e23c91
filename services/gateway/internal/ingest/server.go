// Package ingest is the gateway's HTTP side: routes, authentication, body
// limits and splitting, and the single ingest pipeline every endpoint ends in.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/services/gateway/internal/adapter"
)

// Options configure the server.
type Options struct {
	Listen         string
	Version        string
	Limits         Limits
	Sources        []Source
	TrustedProxies []*net.IPNet
	KeepRaw        bool
	// NoFastPath turns the adapters' fast paths off (fast.go): every event
	// is decoded, adapted and encoded the general way.
	NoFastPath     bool
	ProduceTimeout time.Duration
	// RetryAfter is the Retry-After sent with 503s, but for those of
	// backpressure (503 overloaded), which send OverloadRetryAfter.
	RetryAfter         time.Duration
	OverloadRetryAfter time.Duration
	ReadHeaderTimeout  time.Duration
	ReadTimeout        time.Duration
	WriteTimeout       time.Duration
	IdleTimeout        time.Duration
	MaxHeaderBytes     int
	// MaxConnections bounds the open client connections (connlimit.go):
	// past it, a new connection's request gets 503 overloaded and the
	// connection is closed. 0: unbounded.
	MaxConnections int

	// Backpressure (guard.go); 0: unbounded.
	MaxInflightRequests int
	// MaxAwaitingAcks bounds the requests waiting for the brokers' acks
	// (guard.go; a quarter of them while the overload cut holds); 0:
	// unbounded.
	MaxAwaitingAcks  int
	MaxInflightBytes int64
	// QueueTimeout is how long a request whose body is in may wait for a
	// processing slot before it is refused; 0: not at all.
	QueueTimeout time.Duration
	// SaturationLatency is the goroutines' scheduling latency (99th
	// percentile over a quarter second) from which the CPU counts as
	// saturated, one of the two conditions of the overload cut (guard.go,
	// cpuload.go); 0: never saturated, and never cut.
	SaturationLatency time.Duration
	// MaxRecordBytes is the largest record Kafka takes
	// (kafka.max_message_bytes); 0 means 1 MiB.
	MaxRecordBytes int
	// Kafka health (health.go): the prober's interval and timeout, and the
	// consecutive failures that open the circuit. A zero interval turns the
	// prober and the circuit off.
	ProbeInterval   time.Duration
	ProbeTimeout    time.Duration
	CircuitFailures int
}

// Deps are the server's collaborators.
type Deps struct {
	Log      *zap.Logger
	Metrics  prometheus.Registerer
	Serde    *avro.Serde
	Producer *kafka.Producer
	DLQ      *pipeline.DLQ
}

// Server is the gateway's public HTTP listener.
type Server struct {
	opts Options
	log  *zap.Logger
	e    *echo.Echo
	srv  *http.Server
	mu   sync.Mutex // guards ln
	ln   net.Listener
	pipe *Pipeline
	keys *Keys
	m    *metrics
	// drops holds the drop rules of the generic endpoint, by family.
	drops map[event.Family]DropFunc

	guard    *guard
	health   *brokerHealth // nil when the prober is off
	draining atomic.Bool
	// refusalWriters answer request-level errors under a path prefix in
	// an endpoint's own reply shape (the HEC receiver's).
	refusalWriters []refusalWriter
}

type refusalWriter struct {
	prefix string
	write  func(c echo.Context, he *HTTPError) error
}

// NewServer builds the server and its routes; Start listens.
func NewServer(opts Options, deps Deps) (*Server, error) {
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	codecs := map[event.Family]*avro.Codec{}
	adapters := adapter.All()
	for f := range adapters {
		c, err := deps.Serde.Subject(avro.ValueSubject(event.RawTopic(f)))
		if err != nil {
			return nil, err
		}
		codecs[f] = c
	}
	if opts.MaxRecordBytes <= 0 {
		opts.MaxRecordBytes = 1 << 20
	}
	fast := map[event.Family]adapter.FastAdapter{}
	for f, a := range adapters {
		fa, ok := a.(adapter.FastAdapter)
		if !ok || opts.NoFastPath {
			continue
		}
		if err := checkFast(fa, codecs[f], fastSamples[f]); err != nil {
			deps.Log.Warn("the adapter's fast path disagrees with its general path on the schema in the registry; using the general path only",
				zap.String("family", string(f)), zap.Error(err))
			continue
		}
		fast[f] = fa
	}
	var health *brokerHealth
	if opts.ProbeInterval > 0 && deps.Producer != nil {
		timeout := opts.ProbeTimeout
		if timeout <= 0 {
			timeout = opts.ProbeInterval
		}
		health = newBrokerHealth(deps.Producer.Ping, opts.ProbeInterval, timeout, opts.CircuitFailures, deps.Log, m)
	}
	s := &Server{
		opts:   opts,
		log:    deps.Log,
		keys:   NewKeys(opts.Sources),
		m:      m,
		guard:  newGuard(opts.MaxInflightRequests, opts.MaxAwaitingAcks, opts.MaxInflightBytes, opts.QueueTimeout, newCPUSaturation(opts.SaturationLatency)),
		health: health,
		pipe: &Pipeline{
			adapters: adapters, codecs: codecs, fast: fast, producer: deps.Producer, dlq: deps.DLQ,
			version: opts.Version, keepRaw: opts.KeepRaw, produceTimeout: opts.ProduceTimeout,
			limits: opts.Limits, maxRecordBytes: opts.MaxRecordBytes, health: health, m: m, log: deps.Log,
		},
	}
	if err := registerGauges(deps.Metrics, s.guard); err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	if len(opts.TrustedProxies) > 0 {
		var trust []echo.TrustOption
		for _, n := range opts.TrustedProxies {
			trust = append(trust, echo.TrustIPRange(n))
		}
		// Only addresses that came through a trusted proxy are read from
		// X-Forwarded-For; anyone else's header is ignored.
		e.IPExtractor = echo.ExtractIPFromXFFHeader(append(trust, echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false))...)
	} else {
		e.IPExtractor = echo.ExtractIPDirect()
	}
	e.Use(s.observe)
	e.Use(s.cors)  // cors.go: preflights and browser origins
	e.Use(s.admit) // guard.go: backpressure before the body is read
	e.POST("/v1/events/:family", s.handleEvents)
	s.e = e
	s.srv = &http.Server{
		Handler:           e,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		ReadTimeout:       opts.ReadTimeout,
		WriteTimeout:      opts.WriteTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		ErrorLog:          zap.NewStdLog(deps.Log.Named("http")),
		ConnContext:       connContext, // connlimit.go
	}
	return s, nil
}

// Echo exposes the router so other endpoint groups can be mounted.
func (s *Server) Echo() *echo.Echo { return s.e }

// Addr is the address the server listens on, once started.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return s.opts.Listen
	}
	return s.ln.Addr().String()
}

// Name implements app.Component.
func (s *Server) Name() string { return "http" }

// Start listens and serves in the background, and starts the Kafka prober.
func (s *Server) Start(context.Context) error {
	ln, err := net.Listen("tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.opts.Listen, err)
	}
	if s.opts.MaxConnections > 0 {
		ln = newLimitListener(ln, s.opts.MaxConnections)
	}
	s.health.start()
	s.guard.cpu.start()
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", zap.Error(err))
		}
	}()
	s.log.Info("gateway listening", zap.String("addr", ln.Addr().String()))
	return nil
}

// Stop drains the server: /readyz turns unready, the listener closes, a
// request that still arrives on an open connection is refused unread (503
// shutting_down), and the requests in flight finish, each answered
// truthfully, until ctx ends. Requests still unanswered then are cut off,
// and logged.
func (s *Server) Stop(ctx context.Context) error {
	s.draining.Store(true)
	defer s.health.close()
	defer s.guard.cpu.close()
	s.mu.Lock()
	started := s.ln != nil
	s.mu.Unlock()
	if !started {
		return nil
	}
	t0 := time.Now()
	inflight := s.guard.admitted.Load()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		cut, stored := s.guard.admitted.Load(), s.guard.producedUnanswered.Load()
		s.log.Error("shutdown timeout expired with requests in flight: they are cut off without an answer",
			zap.Int64("requests", cut), zap.Int64("stored_unanswered", stored),
			zap.String("note", "the events of stored_unanswered requests are in Kafka; their clients will resend them (duplicates with the same event ids)"),
			zap.Error(err))
		return err
	}
	s.log.Info("drained the requests in flight", zap.Int64("requests", inflight), zap.Duration("took", time.Since(t0).Round(time.Millisecond)))
	return nil
}

// KafkaReady is the readiness check of Kafka: nil while the circuit is
// closed. It reads cached state (the prober's and the produce outcomes'),
// so /readyz costs nothing.
func (s *Server) KafkaReady() error { return s.health.err() }

// Draining is the readiness check of shutdown: an error once Stop began.
func (s *Server) Draining() error {
	if s.draining.Load() {
		return errors.New("shutting down")
	}
	return nil
}

func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		t0 := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		s.m.requests.WithLabelValues(route, strconv.Itoa(c.Response().Status)).Inc()
		s.m.duration.WithLabelValues(route).Observe(time.Since(t0).Seconds())
		return nil
	}
}

// errorBody is the JSON body of a request-level failure.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var he *HTTPError
	var ee *echo.HTTPError
	switch {
	case errors.As(err, &he):
		SetRetryAfter(c, he)
		for _, w := range s.refusalWriters {
			if strings.HasPrefix(c.Request().URL.Path, w.prefix) {
				_ = w.write(c, he)
				return
			}
		}
		_ = c.JSON(he.Status, errorBody{Error: he.Code, Message: he.Message})
	case errors.As(err, &ee):
		_ = c.JSON(ee.Code, errorBody{Error: strings.ReplaceAll(strings.ToLower(http.StatusText(ee.Code)), " ", "_"), Message: fmt.Sprint(ee.Message)})
	default:
		s.log.Error("request failed", zap.String("path", c.Path()), zap.Error(err))
		_ = c.JSON(http.StatusInternalServerError, errorBody{Error: "internal", Message: "internal error"})
	}
}

// authenticate finds the request's source and checks it may send fam.
func (s *Server) authenticate(c echo.Context, fam event.Family) (*Source, error) {
	key, fromQuery := requestKey(c.Request())
	if key == "" {
		return nil, errf(http.StatusUnauthorized, "missing_key", "no key: send Authorization: Bearer <key>")
	}
	host, _, _ := net.SplitHostPort(c.Request().RemoteAddr)
	src := s.keys.Lookup(key, host)
	if src == nil {
		return nil, errf(http.StatusUnauthorized, "invalid_key", "the key is not valid")
	}
	if err := s.browserCheck(c, src, fromQuery); err != nil {
		return nil, err
	}
	if !src.Allows(fam) {
		return nil, errf(http.StatusForbidden, "family_not_allowed", "the key may not send %s events", fam)
	}
	if err := s.rateAdmit(c, src, fam); err != nil {
		return nil, err
	}
	return src, nil
}

// rateAdmit attaches the source's rate limiter to the request and, when
// the body's size is announced, charges its bytes before it is read: 429
// with Retry-After when they do not fit. Events are charged in Ingest.
func (s *Server) rateAdmit(c echo.Context, src *Source, fam event.Family) error {
	lim := s.keys.limiter(src)
	a := admissionFrom(c.Request().Context())
	if lim == nil || a == nil {
		return nil
	}
	if a.rate == nil || a.rate.lim != lim {
		a.rate = &rateAdmission{lim: lim}
	}
	if cl := c.Request().ContentLength; cl > 0 {
		if wait := a.rate.chargeBytes(time.Now(), cl); wait > 0 {
			closeUnread(c)
			he := s.refuse(ReasonRateLimited, string(fam), "the key %s is over its rate limit of bytes; retry after %s s", src.ID, retryAfterValue(wait))
			he.RetryAfter = wait
			return he
		}
	}
	return nil
}

// meta captures what the request says about its events.
func (s *Server) meta(c echo.Context) adapter.Meta {
	r := c.Request()
	return adapter.Meta{
		ReceivedAt:     time.Now().UTC(),
		IP:             c.RealIP(),
		UserAgent:      validText(r.UserAgent()),
		Referer:        validText(r.Referer()),
		AcceptLanguage: validText(r.Header.Get("Accept-Language")),
		Host:           validText(r.Host),
	}
}

// batchID reads the client's Idempotency-Key, bounded; sendBeacon, which
// cannot set headers, sends it as ?idempotency_key=.
func batchID(r *http.Request) (string, error) {
	id := r.Header.Get("Idempotency-Key")
	if id == "" && r.URL.RawQuery != "" {
		id = r.URL.Query().Get("idempotency_key")
	}
	if len(id) > 128 {
		return "", errf(http.StatusBadRequest, "bad_idempotency_key", "Idempotency-Key is over 128 bytes")
	}
	return id, nil
}

func (s *Server) handleEvents(c echo.Context) error {
	fam, ok := event.ParseFamily(c.Param("family"))
	if !ok {
		return errf(http.StatusNotFound, "unknown_family", "no event family %q", c.Param("family"))
	}
	src, err := s.authenticate(c, fam)
	if err != nil {
		return err
	}
	r := c.Request()
	format, herr := bodyFormat(r)
	if herr != nil {
		return herr
	}
	bid, err := batchID(r)
	if err != nil {
		return err
	}
	body, release, herr := s.readBody(r)
	if herr != nil {
		return herr
	}
	defer release()
	items, err := split(body, format, s.opts.Limits.MaxEvents)
	if err != nil {
		var tm ErrTooManyEvents
		if errors.As(err, &tm) {
			return errf(http.StatusRequestEntityTooLarge, event.ReasonTooManyEvents, "%v", err)
		}
		return errf(http.StatusBadRequest, "invalid_body", "%v", err)
	}
	meta := s.meta(c)
	if src.Trusted {
		meta.Username = r.Header.Get("X-Sluice-Username")
	}
	res := s.pipe.Ingest(r.Context(), &Request{
		Family: fam, Endpoint: "/v1/events/" + string(fam), SourceKey: src.ID, Strict: src.Strict,
		BatchID: bid, Meta: meta, Items: items, Drop: s.drops[fam],
	})
	return s.reply(c, res)
}

// reply writes the per-event result: 200 when all were accepted, 207 when
// some were not, 503 with Retry-After when Kafka could take none (or the
// gateway was overloaded), 429 with Retry-After when the source key is over
// its rate limit.
func (s *Server) reply(c echo.Context, res *Result) error {
	if res.RateLimited > 0 {
		c.Response().Header().Set("Retry-After", retryAfterValue(res.RateLimited))
		return c.JSON(http.StatusTooManyRequests, struct {
			errorBody
			*Result
		}{errorBody{Error: ReasonRateLimited, Message: "the source key is over its rate limit; retry after the delay"}, res})
	}
	if res.Unavailable != nil {
		c.Response().Header().Set("Retry-After", retryAfterValue(s.RetryAfter(res)))
		code, msg := "unavailable", "events could not be stored right now; retry after the delay"
		switch {
		case errors.Is(res.Unavailable, ErrOverloaded):
			code, msg = ReasonOverloaded, "the gateway is at its limit of requests in flight; retry after the delay"
		case errors.Is(res.Unavailable, ErrCircuitOpen):
			code = ReasonKafkaUnavailable
		default:
			s.log.Warn("kafka unavailable, refusing batch", zap.Error(res.Unavailable))
		}
		return c.JSON(http.StatusServiceUnavailable, struct {
			errorBody
			*Result
		}{errorBody{Error: code, Message: msg}, res})
	}
	status := http.StatusOK
	if res.Rejected > 0 {
		status = http.StatusMultiStatus
	}
	return c.JSON(status, res)
}
