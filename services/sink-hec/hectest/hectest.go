// Package hectest is an in-process Splunk HTTP Event Collector for tests and
// benchmarks. It speaks the protocol as docs/sinks.md and the reference
// notes describe splunkd's answers: token auth (codes 2, 3, 4), channels
// (10, 11), the JSON event envelope with partial ingestion up to
// invalid-event-number (5, 6, 7, 12, 13, 15), gzip (deflate is 415),
// request size (413), indexer acknowledgement per channel with ackIds from
// 0 that are forgotten once reported true (14 when ack is off), health
// (17), and knobs for busy (503 code 9), throttled (429), failing (500
// code 8), slow, and lost acknowledgements.
//
// It records every indexed event with the request, channel and ackId that
// carried it, and whether the sender was told it was indexed (its ack was
// reported true, or it was indexed without ack), so that tests can check
// at-least-once delivery and that duplicates come only from resends.
package hectest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
)

// Config sets the server's behaviour. The knobs can be changed while it
// runs with Server.Update.
type Config struct {
	// Token is the one valid HEC token (default "00000000-0000-0000-0000-000000000001").
	Token string
	// Disabled makes the token answer 403 code 1 (token disabled).
	Disabled bool
	// Indexes lists the indexes the token may write to; empty allows any.
	Indexes []string
	// Ack enables indexer acknowledgement on the token: every data request
	// needs a channel and gets an ackId.
	Ack bool
	// BusyRate, ThrottleRate and ErrorRate are the fractions of event
	// requests answered 503 code 9, 429 and 500 code 8, before anything is
	// indexed. RetryAfter, when positive, is sent as Retry-After (seconds)
	// with 503 and 429.
	BusyRate, ThrottleRate, ErrorRate float64
	RetryAfter                        int
	// LostAckRate is the fraction of ackIds that never become true,
	// although their events are indexed (a lost acknowledgement).
	LostAckRate float64
	// AckDelay is how long after its request an ackId becomes true, plus a
	// random part up to AckJitter (so acks come true out of order).
	AckDelay, AckJitter time.Duration
	// Latency is added to every event request.
	Latency time.Duration
	// MaxContentLength bounds a request's decompressed body (413 beyond);
	// zero means 800 MiB, splunkd's default.
	MaxContentLength int64
	// Seed seeds the random knobs (0: a fixed seed).
	Seed uint64
	// Discard counts indexed events without keeping them, and only checks
	// that each is an object with an "event" member: a benchmark's server
	// should not cost more than the sink it measures.
	Discard bool
	// Reject, when set, refuses the events (their "event" member) it
	// returns true for with 400 code 6, as splunkd does malformed data:
	// the events before are indexed and the reply names the refused one,
	// unless RejectUnnumbered leaves the number out.
	Reject           func(event []byte) bool
	RejectUnnumbered bool
}

// Event is one indexed event.
type Event struct {
	Event      json.RawMessage
	Time       float64
	Host       string
	Source     string
	Sourcetype string
	Index      string
	Fields     map[string]any
	Channel    string
	AckID      int64     // -1 without indexer acknowledgement
	Request    int64     // the request that carried it, from 1
	Arrived    time.Time // when that request arrived
	// Confirmed is set once the sender was told the event is indexed: its
	// ackId was reported true, or the request was answered without ack (a
	// 200, or a 400 naming a later event).
	Confirmed bool
}

// Stats counts what the server did.
type Stats struct {
	// Requests counts event requests, refused ones included.
	Requests, Indexed, Busy, Throttled, Errors, Rejected int64
	AckPolls, AcksTrue, AcksLost                         int64
	// LastRefused is when the last event request answered 503 or 429
	// arrived.
	LastRefused time.Time
}

type ackState struct {
	readyAt  time.Time
	lost     bool
	reported bool
	events   []int // indexes into Server.events
}

type channel struct {
	next int64
	acks map[int64]*ackState
}

// Server is a running test HEC.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	cfg      Config
	rng      *rand.Rand
	channels map[string]*channel
	events   []Event
	requests int64
	stats    Stats
}

// DefaultToken is the token a zero Config accepts.
const DefaultToken = "00000000-0000-0000-0000-000000000001"

// New starts a server on a loopback port; Close stops it.
func New(cfg Config) *Server {
	s := &Server{channels: map[string]*channel{}}
	s.Update(func(c *Config) { *c = cfg })
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Update changes the configuration under the server's lock.
func (s *Server) Update(f func(*Config)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.cfg)
	if s.cfg.Token == "" {
		s.cfg.Token = DefaultToken
	}
	if s.cfg.MaxContentLength <= 0 {
		s.cfg.MaxContentLength = 800 << 20
	}
	if s.rng == nil {
		s.rng = rand.New(rand.NewPCG(s.cfg.Seed, 0x5eed))
	}
}

// Events returns a copy of every indexed event, in indexing order.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Event, len(s.events))
	copy(out, s.events)
	return out
}

// Count returns how many events were indexed (kept or discarded).
func (s *Server) Count() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.Indexed
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

type reply struct {
	Text               string `json:"text"`
	Code               int    `json:"code"`
	AckID              *int64 `json:"ackId,omitempty"`
	InvalidEventNumber *int   `json:"invalid-event-number,omitempty"`
}

func write(w http.ResponseWriter, status int, r reply) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(r)
}

var guid = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/1.0")
	switch path {
	case "/services/collector/health":
		write(w, http.StatusOK, reply{Text: "HEC is healthy", Code: 17})
		return
	case "/services/collector", "/services/collector/event", "/services/collector/ack":
	default:
		write(w, http.StatusNotFound, reply{Text: "The requested URL was not found on this server.", Code: 404})
		return
	}
	if path != "/services/collector/ack" {
		s.mu.Lock()
		s.stats.Requests++
		s.mu.Unlock()
	}
	if r.Method != http.MethodPost {
		write(w, http.StatusMethodNotAllowed, reply{Text: "The requested URL was not found on this server.", Code: 404})
		return
	}
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	auth := r.Header.Get("Authorization")
	switch {
	case auth == "":
		write(w, http.StatusUnauthorized, reply{Text: "Token is required", Code: 2})
		return
	case !strings.HasPrefix(auth, "Splunk "):
		write(w, http.StatusUnauthorized, reply{Text: "Invalid authorization", Code: 3})
		return
	case strings.TrimPrefix(auth, "Splunk ") != cfg.Token:
		write(w, http.StatusForbidden, reply{Text: "Invalid token", Code: 4})
		return
	case cfg.Disabled:
		write(w, http.StatusForbidden, reply{Text: "Token disabled", Code: 1})
		return
	}
	ch := r.Header.Get("X-Splunk-Request-Channel")
	if ch == "" {
		ch = r.URL.Query().Get("channel")
	}
	if path == "/services/collector/ack" {
		s.serveAck(w, r, cfg, ch)
		return
	}
	if cfg.Ack || ch != "" {
		if ch == "" {
			write(w, http.StatusBadRequest, reply{Text: "Data channel is missing", Code: 10})
			return
		}
		if !guid.MatchString(ch) {
			write(w, http.StatusBadRequest, reply{Text: "Invalid data channel", Code: 11})
			return
		}
	}
	s.serveEvents(w, r, cfg, ch)
}

func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request, cfg Config, ch string) {
	arrived := time.Now()
	if cfg.Latency > 0 {
		t := time.NewTimer(cfg.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	var body io.Reader = r.Body
	switch r.Header.Get("Content-Encoding") {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			write(w, http.StatusBadRequest, reply{Text: "Invalid data format", Code: 6})
			return
		}
		body = zr
	default:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusUnsupportedMediaType)
		_, _ = io.WriteString(w, "<html><body>Unsupported Media Type</body></html>")
		return
	}
	data, err := io.ReadAll(io.LimitReader(body, cfg.MaxContentLength+1))
	if err != nil {
		write(w, http.StatusBadRequest, reply{Text: "Invalid data format", Code: 6})
		return
	}
	if int64(len(data)) > cfg.MaxContentLength {
		write(w, http.StatusRequestEntityTooLarge, reply{Text: "Content too large", Code: 413})
		return
	}

	var parsed []Event
	var bad *reply
	if cfg.Discard {
		n, err := countEvents(data)
		switch {
		case err != nil:
			bad = &reply{Text: "Invalid data format", Code: 6}
		case n == 0:
			bad = &reply{Text: "No data", Code: 5}
		default:
			parsed = make([]Event, n) // counted, not kept
		}
	} else {
		parsed, bad = parse(data, cfg)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	req := s.requests
	roll := s.rng.Float64()
	switch {
	case roll < cfg.BusyRate:
		s.stats.Busy++
		s.stats.LastRefused = arrived
		retryAfter(w, cfg)
		write(w, http.StatusServiceUnavailable, reply{Text: "Server is busy", Code: 9})
		return
	case roll < cfg.BusyRate+cfg.ThrottleRate:
		s.stats.Throttled++
		s.stats.LastRefused = arrived
		retryAfter(w, cfg)
		write(w, http.StatusTooManyRequests, reply{Text: "HEC queue is at capacity", Code: 26})
		return
	case roll < cfg.BusyRate+cfg.ThrottleRate+cfg.ErrorRate:
		s.stats.Errors++
		write(w, http.StatusInternalServerError, reply{Text: "Internal server error", Code: 8})
		return
	}

	s.stats.Indexed += int64(len(parsed))
	var indexes []int
	if !cfg.Discard {
		first := len(s.events)
		for _, e := range parsed {
			e.Channel, e.AckID, e.Request, e.Arrived = ch, -1, req, arrived
			s.events = append(s.events, e)
		}
		indexes = make([]int, len(parsed))
		for i := range indexes {
			indexes[i] = first + i
		}
	}
	if bad != nil {
		s.stats.Rejected++
		// What came before the bad event is indexed, and the sender is
		// told so by the event number.
		for _, i := range indexes {
			s.events[i].Confirmed = true
		}
		write(w, http.StatusBadRequest, *bad)
		return
	}
	if !cfg.Ack {
		for _, i := range indexes {
			s.events[i].Confirmed = true
		}
		write(w, http.StatusOK, reply{Text: "Success", Code: 0})
		return
	}
	c := s.channels[ch]
	if c == nil {
		c = &channel{acks: map[int64]*ackState{}}
		s.channels[ch] = c
	}
	id := c.next
	c.next++
	delay := cfg.AckDelay
	if cfg.AckJitter > 0 {
		delay += time.Duration(s.rng.Int64N(int64(cfg.AckJitter)))
	}
	st := &ackState{readyAt: time.Now().Add(delay), lost: s.rng.Float64() < cfg.LostAckRate, events: indexes}
	if st.lost {
		s.stats.AcksLost++
	}
	c.acks[id] = st
	for _, i := range indexes {
		s.events[i].AckID = id
	}
	write(w, http.StatusOK, reply{Text: "Success", Code: 0, AckID: &id})
}

func retryAfter(w http.ResponseWriter, cfg Config) {
	if cfg.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(cfg.RetryAfter))
	}
}

// parse reads the stacked event objects. It returns the events before the
// first bad one and, when there is one, the reply naming it.
func parse(data []byte, cfg Config) ([]Event, *reply) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out []Event
	n := 0
	bad := func(code int, text string, i int) *reply {
		return &reply{Text: text, Code: code, InvalidEventNumber: &i}
	}
	for ; ; n++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return out, bad(6, "Invalid data format", n)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			return out, bad(6, "Invalid data format", n)
		}
		known := true
		for k := range obj {
			switch k {
			case "event", "time", "host", "source", "sourcetype", "index", "fields":
			default:
				known = false
			}
		}
		if !known {
			continue // splunkd skips such an object silently
		}
		ev, ok := obj["event"]
		if !ok {
			return out, bad(12, "Event field is required", n)
		}
		switch t := strings.TrimSpace(string(ev)); {
		case t == "null" || t == "false":
			return out, bad(6, "Invalid data format", n)
		case len(t) >= 2 && t[0] == '"' && strings.TrimSpace(t[1:len(t)-1]) == "":
			return out, bad(13, "Event field cannot be blank", n)
		}
		if cfg.Reject != nil && cfg.Reject(ev) {
			if cfg.RejectUnnumbered {
				return nil, &reply{Text: "Invalid data format", Code: 6}
			}
			return out, bad(6, "Invalid data format", n)
		}
		e := Event{Event: ev}
		str := func(k string) (string, bool) {
			v, ok := obj[k]
			if !ok {
				return "", true
			}
			var s string
			return s, json.Unmarshal(v, &s) == nil
		}
		var okH, okS, okST, okI bool
		e.Host, okH = str("host")
		e.Source, okS = str("source")
		e.Sourcetype, okST = str("sourcetype")
		e.Index, okI = str("index")
		if !okH || !okS || !okST || !okI {
			return out, bad(6, "Invalid data format", n)
		}
		if e.Index != "" && len(cfg.Indexes) > 0 && !contains(cfg.Indexes, e.Index) {
			return out, bad(7, "Incorrect index", n+1) // splunkd names the next event
		}
		if t, ok := obj["time"]; ok {
			var num json.Number
			if json.Unmarshal(t, &num) != nil {
				var s string
				if json.Unmarshal(t, &s) != nil {
					return out, bad(6, "Invalid data format", n)
				}
				num = json.Number(s)
			}
			f, err := num.Float64()
			if err != nil {
				return out, bad(6, "Invalid data format", n)
			}
			e.Time = f
		}
		if f, ok := obj["fields"]; ok {
			if err := json.Unmarshal(f, &e.Fields); err != nil || !flat(e.Fields) {
				return out, bad(15, "Error in handling indexed fields", n)
			}
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, &reply{Text: "No data", Code: 5}
	}
	return out, nil
}

// countEvents counts the stacked top-level objects of data with a light
// scanner (strings and nesting only), requiring an "event" member in each.
func countEvents(data []byte) (int, error) {
	n, depth, sawEvent := 0, 0, false
	for i := 0; i < len(data); {
		j := bytes.IndexAny(data[i:], "\"{}[]")
		if j < 0 {
			if depth != 0 || len(bytes.TrimSpace(data[i:])) != 0 {
				return 0, errors.New("truncated")
			}
			break
		}
		if depth == 0 && len(bytes.TrimSpace(data[i:i+j])) != 0 {
			return 0, errors.New("not an object")
		}
		i += j
		switch data[i] {
		case '"':
			start := i + 1
			k := start
			for {
				q := bytes.IndexAny(data[k:], "\"\\")
				if q < 0 {
					return 0, errors.New("truncated")
				}
				k += q
				if data[k] == '\\' {
					k += 2
					continue
				}
				break
			}
			if depth == 1 && string(data[start:k]) == "event" {
				sawEvent = true
			}
			i = k + 1
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth < 0 {
				return 0, errors.New("unbalanced")
			}
			if depth == 0 {
				if !sawEvent {
					return 0, errors.New("an object without event")
				}
				n++
				sawEvent = false
			}
		}
		i++
	}
	if depth != 0 {
		return 0, errors.New("truncated")
	}
	return n, nil
}

// flat reports whether indexed fields hold only strings and arrays of
// strings.
func flat(m map[string]any) bool {
	for _, v := range m {
		switch v := v.(type) {
		case string:
		case []any:
			for _, x := range v {
				if _, ok := x.(string); !ok {
					return false
				}
			}
		default:
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Server) serveAck(w http.ResponseWriter, r *http.Request, cfg Config, ch string) {
	if !cfg.Ack {
		write(w, http.StatusBadRequest, reply{Text: "ACK is disabled", Code: 14})
		return
	}
	if ch == "" {
		write(w, http.StatusBadRequest, reply{Text: "Data channel is missing", Code: 10})
		return
	}
	if !guid.MatchString(ch) {
		write(w, http.StatusBadRequest, reply{Text: "Invalid data channel", Code: 11})
		return
	}
	var q struct {
		Acks []int64 `json:"acks"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&q); err != nil {
		write(w, http.StatusBadRequest, reply{Text: "Invalid data format", Code: 6})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.AckPolls++
	now := time.Now()
	res := make(map[string]bool, len(q.Acks))
	c := s.channels[ch]
	for _, id := range q.Acks {
		ok := false
		if c != nil {
			if st := c.acks[id]; st != nil && !st.lost && !st.reported && !now.Before(st.readyAt) {
				ok = true
				st.reported = true
				delete(c.acks, id) // splunkd forgets an id it reported true
				for _, i := range st.events {
					s.events[i].Confirmed = true
				}
				s.stats.AcksTrue++
			}
		}
		res[strconv.FormatInt(id, 10)] = ok
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"acks": res})
}

// String describes the knobs, for test logs.
func (c Config) String() string {
	return fmt.Sprintf("ack=%v busy=%.2f throttle=%.2f error=%.2f lost_acks=%.2f ack_delay=%s+%s latency=%s",
		c.Ack, c.BusyRate, c.ThrottleRate, c.ErrorRate, c.LostAckRate, c.AckDelay, c.AckJitter, c.Latency)
}
