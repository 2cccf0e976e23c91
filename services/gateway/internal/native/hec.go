package native

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/gateway/internal/adapter"
	"github.com/sluicehq/sluice/services/gateway/internal/ingest"
)

// HECConfig configures the Splunk HTTP Event Collector receiver
// (/services/collector/...), whose events land in the hec family.
type HECConfig struct {
	// Tokens are the HEC tokens senders authenticate with.
	Tokens []HECToken `yaml:"tokens"`
}

// HECToken is one HEC token and the defaults of its events.
type HECToken struct {
	Token config.Secret `yaml:"token"`
	// SourceID names the sender in each event's envelope (source_key).
	SourceID string `yaml:"source_id"`
	// Host, Source, Sourcetype and Index are the defaults of events that
	// do not set them, as a Splunk token's defaults are.
	Host       string `yaml:"host"`
	Source     string `yaml:"source"`
	Sourcetype string `yaml:"sourcetype"`
	Index      string `yaml:"index"`
	// Indexes, when set, are the indexes events may name (else code 7).
	Indexes []string `yaml:"indexes"`
	// AllowQueryString accepts the token as ?token=, Splunk's
	// allowQueryStringAuth (off by default, as in Splunk).
	AllowQueryString bool `yaml:"allow_query_string"`
	// LoopbackOnly accepts the token only from loopback clients.
	LoopbackOnly bool `yaml:"loopback_only"`
}

// Validate reports every problem.
func (c HECConfig) Validate() error {
	var p config.Problems
	ids := map[string]bool{}
	for i, t := range c.Tokens {
		if t.SourceID == "" {
			p.Addf("tokens[%d].source_id: required", i)
		} else if ids[t.SourceID] {
			p.Addf("tokens[%d].source_id: %q is used twice", i, t.SourceID)
		}
		ids[t.SourceID] = true
		if len(t.Token.Value()) < 16 && !t.LoopbackOnly {
			p.Addf("tokens[%d].token: tokens must be at least 16 characters", i)
		}
		if t.Index != "" && len(t.Indexes) > 0 && !contains(t.Indexes, t.Index) {
			p.Addf("tokens[%d].index: %q is not among its indexes", i, t.Index)
		}
	}
	return p.Err()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// hecTokens finds tokens in constant time.
type hecTokens struct {
	tokens  []HECToken
	digests [][32]byte
}

func newHECTokens(ts []HECToken) *hecTokens {
	h := &hecTokens{tokens: ts}
	for _, t := range ts {
		h.digests = append(h.digests, sha256.Sum256([]byte(t.Token.Value())))
	}
	return h
}

func (h *hecTokens) lookup(tok, remoteAddr string) *HECToken {
	if tok == "" {
		return nil
	}
	d := sha256.Sum256([]byte(tok))
	var found *HECToken
	for i := range h.digests {
		if subtle.ConstantTimeCompare(d[:], h.digests[i][:]) == 1 {
			found = &h.tokens[i]
		}
	}
	if found != nil && found.LoopbackOnly && !isLoopback(remoteAddr) {
		return nil
	}
	return found
}

// hecReply is HEC's reply body.
type hecReply struct {
	Text        string `json:"text"`
	Code        int    `json:"code"`
	InvalidItem *int   `json:"invalid-event-number,omitempty"`
}

// HEC's texts by code (Splunk "Troubleshoot HTTP Event Collector").
var hecTexts = map[int]string{
	0: "Success", 2: "Token is required", 3: "Invalid authorization", 4: "Invalid token",
	5: "No data", 6: "Invalid data format", 7: "Incorrect index", 8: "Internal server error",
	9: "Server is busy", 12: "Event field is required", 13: "Event field cannot be blank",
	14: "ACK is disabled", 15: "Error in handling indexed fields",
	16: "Query string authorization is not enabled", 17: "HEC is healthy",
}

// hecStatus is the HTTP status of each HEC code.
var hecStatus = map[int]int{
	0: 200, 2: 401, 3: 401, 4: 403, 5: 400, 6: 400, 7: 400, 8: 500, 9: 503,
	12: 400, 13: 400, 14: 400, 15: 400, 16: 400, 17: 200,
}

func hecJSON(c echo.Context, code int) error {
	return c.JSON(hecStatus[code], hecReply{Text: hecTexts[code], Code: code})
}

const hecNotFound = "The requested URL was not found on this server."

// reasonIncorrectIndex rejects an event whose index the token may not use.
const reasonIncorrectIndex = "incorrect_index"

// hecCode is the HEC error code of a rejection.
func hecCode(reason string) int {
	if reason == reasonIncorrectIndex {
		return 7
	}
	return adapter.HECErrorCode(reason)
}

func (n *Native) hecRoutes(e *echo.Echo) {
	// Refusals before the handler runs (backpressure, Kafka unreachable,
	// shutting down) in HEC's shape: code 9, "Server is busy".
	n.s.SetRefusalWriter("/services/collector", func(c echo.Context, he *ingest.HTTPError) error {
		if he.Status == http.StatusServiceUnavailable || he.Status == http.StatusTooManyRequests {
			return c.JSON(he.Status, hecReply{Text: hecTexts[9], Code: 9})
		}
		return c.JSON(he.Status, hecReply{Text: he.Message, Code: he.Status})
	})
	for _, p := range []string{"/services/collector", "/services/collector/event", "/services/collector/event/1.0"} {
		e.Any(p, n.hecMethod(n.handleHECEvent))
	}
	for _, p := range []string{"/services/collector/raw", "/services/collector/raw/1.0"} {
		e.Any(p, n.hecMethod(n.handleHECRaw))
	}
	for _, p := range []string{"/services/collector/health", "/services/collector/health/1.0"} {
		e.Any(p, func(c echo.Context) error {
			if m := c.Request().Method; m != http.MethodGet && m != http.MethodHead {
				return c.JSON(http.StatusMethodNotAllowed, hecReply{Text: hecNotFound, Code: 404})
			}
			// Like Splunk, no token is checked here. Unhealthy (503, code 9)
			// while Kafka is unreachable or the gateway shuts down, so that
			// HEC load balancers move on.
			if n.s.KafkaReady() != nil || n.s.Draining() != nil {
				n.setRetryAfter(c, nil)
				return hecJSON(c, 9)
			}
			return hecJSON(c, 17)
		})
	}
	e.Any("/services/collector/ack", n.hecMethod(func(c echo.Context) error {
		if tok, done := n.hecAuth(c); tok == nil {
			return done
		}
		return hecJSON(c, 14)
	}))
	e.Any("/services/collector/*", func(c echo.Context) error {
		return c.JSON(http.StatusNotFound, hecReply{Text: hecNotFound, Code: 404})
	})
}

// hecMethod answers as Splunk does for methods other than POST.
func (n *Native) hecMethod(h echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		switch c.Request().Method {
		case http.MethodPost:
			return h(c)
		case http.MethodOptions:
			c.Response().Header().Set("Allow", "POST,OPTIONS")
			return c.NoContent(http.StatusOK)
		}
		return c.JSON(http.StatusMethodNotAllowed, hecReply{Text: hecNotFound, Code: 404})
	}
}

// hecAuth finds the request's token: "Authorization: Splunk <token>", Basic
// auth with the token as password, or ?token= when the token allows it.
// When it returns no token, the HEC reply is already written and the
// error is that of writing it.
func (n *Native) hecAuth(c echo.Context) (*HECToken, error) {
	r := c.Request()
	var tok string
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, rest, _ := strings.Cut(a, " ")
		switch {
		case strings.EqualFold(scheme, "Splunk"):
			tok = strings.TrimSpace(rest)
		case strings.EqualFold(scheme, "Basic"):
			b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
			if err != nil {
				return nil, hecJSON(c, 3)
			}
			_, pass, ok := strings.Cut(string(b), ":")
			if !ok {
				return nil, hecJSON(c, 3)
			}
			tok = pass
		default:
			return nil, hecJSON(c, 3)
		}
		if tok == "" {
			return nil, hecJSON(c, 3)
		}
		t := n.hec.lookup(tok, r.RemoteAddr)
		if t == nil {
			return nil, hecJSON(c, 4)
		}
		return t, nil
	}
	if q := r.URL.Query(); q.Has("token") {
		// Splunk validates the token before checking that query-string
		// authorization is enabled for it.
		t := n.hec.lookup(q.Get("token"), r.RemoteAddr)
		if t == nil {
			return nil, hecJSON(c, 4)
		}
		if !t.AllowQueryString {
			return nil, hecJSON(c, 16)
		}
		return t, nil
	}
	return nil, hecJSON(c, 2)
}

// hecBody reads the body, answering HEC-style when it cannot.
func (n *Native) hecBody(c echo.Context) ([]byte, func(), error) {
	body, release, err := n.s.ReadBody(c.Request())
	if err != nil {
		he := asHTTPError(err)
		code := he.Status
		switch he.Status {
		case http.StatusBadRequest:
			code = 6
		case http.StatusServiceUnavailable:
			ingest.SetRetryAfter(c, he)
			return nil, release, c.JSON(he.Status, hecReply{Text: hecTexts[9], Code: 9})
		}
		return nil, release, c.JSON(he.Status, hecReply{Text: he.Message, Code: code})
	}
	if len(bytes.TrimSpace(body)) == 0 {
		release()
		return nil, func() {}, hecJSON(c, 5)
	}
	return body, release, nil
}

// handleHECEvent serves the JSON event protocol: envelope objects stacked
// one after the other (no array, no commas). Like Splunk, events before
// the first bad one are stored, the bad one is reported by its
// zero-based number (and dead-lettered), and the rest are not looked at,
// for the sender to resend.
func (n *Native) handleHECEvent(c echo.Context) error {
	tok, done := n.hecAuth(c)
	if tok == nil {
		return done
	}
	body, release, done := n.hecBody(c)
	if body == nil {
		return done
	}
	defer release()
	items, err := splitHEC(body, n.s.Limits().MaxEvents)
	if err != nil {
		return c.JSON(http.StatusRequestEntityTooLarge, hecReply{Text: err.Error(), Code: 413})
	}
	return n.hecIngest(c, tok, items)
}

// handleHECRaw serves the raw protocol: each non-blank line of the body is
// one event (Splunk's default line breaking; sourcetype-specific line
// merging is not reproduced); host, source, sourcetype, index and time come
// from the query string or the token.
func (n *Native) handleHECRaw(c echo.Context) error {
	tok, done := n.hecAuth(c)
	if tok == nil {
		return done
	}
	body, release, done := n.hecBody(c)
	if body == nil {
		return done
	}
	defer release()
	q := c.QueryParams()
	var items []ingest.Item
	for len(body) > 0 {
		var line []byte
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			line, body = body, nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if len(items) == n.s.Limits().MaxEvents {
			return c.JSON(http.StatusRequestEntityTooLarge, hecReply{Text: "too many events in one request", Code: 413})
		}
		var quirks []string
		text := string(line)
		if !utf8.ValidString(text) {
			text = latin1(line)
			quirks = append(quirks, "latin1_event")
		}
		env := map[string]any{"event": text}
		for _, k := range []string{"host", "source", "sourcetype", "index"} {
			if v := q.Get(k); v != "" {
				env[k] = v
			}
		}
		if v := q.Get("time"); v != "" {
			env["time"] = v
		}
		raw, err := marshalJSON(env)
		if err != nil {
			return hecJSON(c, 6)
		}
		items = append(items, ingest.NewItem(raw, quirks...))
	}
	if len(items) == 0 {
		return hecJSON(c, 5)
	}
	return n.hecIngest(c, tok, items)
}

func latin1(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

func (n *Native) hecIngest(c echo.Context, tok *HECToken, items []ingest.Item) error {
	bid, err := n.batchID(c)
	if err != nil {
		return c.JSON(http.StatusBadRequest, hecReply{Text: err.Error(), Code: 6})
	}
	res := n.s.Ingest(ingestCtx(c), &ingest.Request{
		Family: event.HEC, Endpoint: c.Path(), SourceKey: tok.SourceID, BatchID: bid,
		Meta: n.s.Meta(c), Items: items, StopAtFirstReject: true,
		Adapt: func(in *adapter.Input) (*adapter.Output, *event.Rejection) { return hecAdapt(in, tok) },
	})
	if res.Unavailable != nil {
		n.setRetryAfter(c, res)
		return hecJSON(c, 9)
	}
	if len(res.Errors) > 0 {
		e := res.Errors[0]
		if ingest.Retryable(e.Code) {
			n.setRetryAfter(c, res)
			return hecJSON(c, 9)
		}
		code := hecCode(e.Code)
		idx := e.Index
		return c.JSON(hecStatus[code], hecReply{Text: hecTexts[code], Code: code, InvalidItem: &idx})
	}
	return hecJSON(c, 0)
}

// hecAdapt adapts one envelope, then applies the token: its defaults for
// host, source, sourcetype and index, and its index allow-list.
func hecAdapt(in *adapter.Input, tok *HECToken) (*adapter.Output, *event.Rejection) {
	out, rj := adapter.HEC{}.Adapt(in)
	if rj != nil {
		return nil, rj
	}
	f := out.Fields
	for _, d := range []struct{ key, def string }{
		{"host", tok.Host}, {"source", tok.Source}, {"sourcetype", tok.Sourcetype}, {"index", tok.Index},
	} {
		if f[d.key] == nil && d.def != "" {
			f[d.key] = map[string]any{"string": d.def}
		}
	}
	if len(tok.Indexes) > 0 {
		idx := unionString(f["index"])
		if idx != "" && !contains(tok.Indexes, idx) {
			return nil, event.Reject(reasonIncorrectIndex, "index", "index %q is not allowed for this token", idx)
		}
	}
	if out.EventType == "" {
		out.EventType = unionString(f["sourcetype"])
	}
	if h := unionString(f["host"]); h != "" && (out.PartitionKey == in.Meta.IP || out.PartitionKey == "anonymous") {
		out.PartitionKey = h
	}
	return out, nil
}

func unionString(v any) string {
	if m, ok := v.(map[string]any); ok {
		s, _ := m["string"].(string)
		return s
	}
	return ""
}

// errTooManyHEC is returned by splitHEC for a body with too many events.
type errTooManyHEC struct{ max int }

func (e errTooManyHEC) Error() string { return "too many events in one request" }

// splitHEC cuts a HEC event body into its envelope objects, which Splunk
// reads stacked one after the other with only whitespace between them.
// The first thing that is not an object (a JSON array body, a scalar, a
// syntax error) becomes a rejected item holding the rest of the body, and
// splitting stops there: with StopAtFirstReject the pipeline then stores
// what came before and reports it by number, as Splunk does.
func splitHEC(body []byte, maxEvents int) ([]ingest.Item, error) {
	var items []ingest.Item
	i := skipWS(body, 0)
	for i < len(body) {
		if len(items) == maxEvents {
			return nil, errTooManyHEC{maxEvents}
		}
		if body[i] != '{' {
			msg := "expected a JSON object"
			if body[i] == '[' {
				msg = "a JSON array is not a HEC batch: stack the event objects one after the other"
			}
			items = append(items, ingest.RejectedItem(body[i:], event.Reject(event.ReasonNotObject, "", "%s", msg)))
			break
		}
		end, ok := objectEnd(body, i)
		if !ok {
			items = append(items, ingest.RejectedItem(body[i:], event.Reject(event.ReasonInvalidJSON, "", "the event object is not closed")))
			break
		}
		items = append(items, ingest.NewItem(body[i:end]))
		i = skipWS(body, end)
	}
	return items, nil
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// objectEnd returns the index just past the object or array that starts at
// b[i], matching brackets outside strings. It checks structure, not
// grammar: each event is fully decoded later.
func objectEnd(b []byte, i int) (int, bool) {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			i++
			for i < len(b) && b[i] != '"' {
				if b[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(b) {
				return 0, false
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, true
			}
			if depth < 0 {
				return 0, false
			}
		}
	}
	return 0, false
}
