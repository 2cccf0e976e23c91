package sinkhec

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// outcome is what a HEC answer means for the batch that got it.
type outcome int

const (
	outOK       outcome = iota // indexed (or, with ack, accepted under an ackId)
	outRetry                   // nothing indexed, try again later: 429, 5xx, network
	outPartial                 // events before eventNumber indexed, that one is bad data
	outBisect                  // bad data somewhere in the batch, position unknown
	outTooLarge                // 413: the request is too big
	outFatal                   // configuration error: halt rather than drop
)

func (o outcome) String() string {
	return [...]string{"ok", "retry", "partial", "bisect", "too_large", "fatal"}[o]
}

// result is a classified HEC answer.
type result struct {
	outcome     outcome
	status      int
	code        int // HEC code, -1 when the body was not a HEC reply
	text        string
	ackID       int64
	hasAck      bool
	eventNumber int
	retryAfter  time.Duration
	err         error // what went wrong, for logs, dead letters and /readyz
}

// hecReply is the JSON body of every HEC answer.
type hecReply struct {
	Text               string `json:"text"`
	Code               *int   `json:"code"`
	AckID              *int64 `json:"ackId"`
	InvalidEventNumber *int   `json:"invalid-event-number"`
}

// badDataCodes are the HEC codes that blame an event rather than the
// configuration: no data, invalid data format, event field required or
// blank, bad indexed fields.
var badDataCodes = map[int]bool{5: true, 6: true, 12: true, 13: true, 15: true}

// classify reads an answer to a data request. base names the URL in
// errors; ack says whether an ackId is expected.
func classify(base string, status int, hdr http.Header, body []byte, netErr error, ack bool) result {
	if netErr != nil {
		return result{outcome: outRetry, code: -1, err: fmt.Errorf("sending to %s: %w", base, netErr)}
	}
	r := result{status: status, code: -1}
	var rep hecReply
	if json.Unmarshal(body, &rep) == nil && rep.Code != nil {
		r.code, r.text = *rep.Code, rep.Text
		if rep.AckID != nil {
			r.ackID, r.hasAck = *rep.AckID, true
		}
		if rep.InvalidEventNumber != nil {
			r.eventNumber = *rep.InvalidEventNumber
		} else {
			r.eventNumber = -1
		}
	} else {
		r.text = strings.TrimSpace(string(body[:min(len(body), 200)]))
		r.eventNumber = -1
	}
	r.retryAfter = parseRetryAfter(hdr.Get("Retry-After"))
	what := func(hint string) error {
		e := fmt.Errorf("%s answered %d", base, status)
		if r.code >= 0 {
			e = fmt.Errorf("%s answered %d code %d %q", base, status, r.code, r.text)
		} else if r.text != "" {
			e = fmt.Errorf("%s answered %d %q", base, status, r.text)
		}
		if hint != "" {
			e = fmt.Errorf("%w: %s", e, hint)
		}
		return e
	}
	switch {
	case status >= 200 && status < 300:
		if ack && !r.hasAck {
			r.outcome, r.err = outFatal, what("no ackId although ack is on: enable indexer acknowledgement on the token (useACK) or set ack: false")
			return r
		}
		r.outcome = outOK
	case status >= 300 && status < 400:
		r.outcome, r.err = outFatal, what("a redirect: is the URL the HEC port (8088), not Splunk Web?")
	case status == http.StatusBadRequest && badDataCodes[r.code]:
		r.err = what("")
		if r.eventNumber >= 0 {
			r.outcome = outPartial
		} else {
			r.outcome = outBisect
		}
	case status == http.StatusBadRequest && r.code == 7:
		r.outcome, r.err = outFatal, what("the index is not allowed for this token: fix index or the token's allowed indexes")
	case status == http.StatusBadRequest && (r.code == 10 || r.code == 11):
		r.outcome, r.err = outFatal, what("the channel was refused")
	case status == http.StatusBadRequest && r.code == 14:
		r.outcome, r.err = outFatal, what("indexer acknowledgement is off on this token: enable useACK or set ack: false")
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		r.outcome, r.err = outFatal, what("the token is missing, wrong or disabled: fix token")
	case status == http.StatusRequestEntityTooLarge:
		r.outcome, r.err = outTooLarge, what("")
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		r.outcome, r.err = outRetry, what("")
	default:
		// 404, 405, 415, a 400 that is no HEC reply: nothing an event did.
		r.outcome, r.err = outFatal, what("check the URL")
	}
	return r
}

// parseRetryAfter reads seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(min(s, 3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), time.Hour)
	}
	return 0
}

// endpoint is one HEC URL with its health: after a retryable failure it
// backs off exponentially (with jitter, or for Retry-After when longer)
// before it takes another batch.
type endpoint struct {
	base, eventURL, ackURL string
	initial, max           time.Duration
	onHealth               func(up bool)

	mu       sync.Mutex
	failures int
	readyAt  time.Time
}

func newEndpoint(base string, initial, maxBackoff time.Duration, onHealth func(bool)) *endpoint {
	base = strings.TrimRight(base, "/")
	return &endpoint{
		base: base, eventURL: base + "/services/collector/event", ackURL: base + "/services/collector/ack",
		initial: initial, max: maxBackoff, onHealth: onHealth,
	}
}

// wait blocks until the endpoint may take a request.
func (e *endpoint) wait(ctx context.Context) error {
	for {
		e.mu.Lock()
		d := time.Until(e.readyAt)
		e.mu.Unlock()
		if d <= 0 {
			return nil
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// ready reports whether the endpoint may take a request now.
func (e *endpoint) ready() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !time.Now().Before(e.readyAt)
}

// fail backs the endpoint off and returns for how long.
func (e *endpoint) fail(retryAfter time.Duration) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failures++
	d := e.initial << min(e.failures-1, 20)
	if d > e.max || d <= 0 {
		d = e.max
	}
	d = d/2 + rand.N(d/2+1) // jitter: [d/2, d]
	d = max(d, retryAfter)
	e.readyAt = time.Now().Add(d)
	if e.onHealth != nil {
		e.onHealth(false)
	}
	return d
}

func (e *endpoint) ok() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failures > 0 && e.onHealth != nil {
		e.onHealth(true)
	}
	e.failures = 0
}

// channel is one HEC channel: a GUID, its own HTTP client (connections
// and cookies, so that a load balancer's sticky cookie keeps ack polls on
// the indexer that took the data), and the batches awaiting their ackIds.
type channel struct {
	id     string
	ep     *endpoint
	client *http.Client
	token  string
	gzip   bool

	mu   sync.Mutex
	acks map[int64]*batch
}

func newChannel(ep *endpoint, token string, gz bool, tlsCfg *tls.Config) *channel {
	jar, _ := cookiejar.New(nil) // never fails without options
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     tlsCfg,
		MaxIdleConnsPerHost: 2, // one for data, one for ack polls
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &channel{
		id: uuid.NewString(), ep: ep, token: token, gzip: gz,
		client: &http.Client{Transport: tr, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect is an answer (classify says what it means)
		}},
		acks: map[int64]*batch{},
	}
}

// post sends body (already gzipped when compressed) and reads the answer.
func (c *channel) post(ctx context.Context, url string, body []byte, compressed bool) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Splunk "+c.token)
	req.Header.Set("X-Splunk-Request-Channel", c.id)
	req.Header.Set("Content-Type", "application/json")
	if compressed {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, b, nil
}

func (c *channel) close() { c.client.CloseIdleConnections() }

// pendingAcks returns the ackIds awaiting an answer.
func (c *channel) pendingAcks() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]int64, 0, len(c.acks))
	for id := range c.acks {
		ids = append(ids, id)
	}
	return ids
}

func (c *channel) addAck(id int64, b *batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.acks[id]; dup {
		return fmt.Errorf("ackId %d on channel %s is already pending (the indexer restarted its channel?)", id, c.id)
	}
	c.acks[id] = b
	return nil
}

func (c *channel) takeAck(id int64) *batch {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.acks[id]
	delete(c.acks, id)
	return b
}

// expired removes and returns the batches whose ackId is older than d.
func (c *channel) expired(d time.Duration) []*batch {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*batch
	cutoff := time.Now().Add(-d)
	for id, b := range c.acks {
		if b.sentAt.Before(cutoff) {
			out = append(out, b)
			delete(c.acks, id)
		}
	}
	return out
}

func (c *channel) ackCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.acks)
}

// tlsConfig builds the client TLS settings.
func tlsConfig(cfg Config) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.TLSInsecureSkipVerify} //nolint:gosec // opt-in for test setups
	if cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("reading tls_ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("tls_ca_file holds no PEM certificate")
		}
		t.RootCAs = pool
	}
	return t, nil
}
