package hectest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const ch1 = "11111111-2222-3333-4444-555555555555"
const ch2 = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"

type answer struct {
	status int
	Text   string          `json:"text"`
	Code   int             `json:"code"`
	AckID  *int64          `json:"ackId"`
	Num    *int            `json:"invalid-event-number"`
	Acks   map[string]bool `json:"acks"`
}

func post(t *testing.T, s *Server, path, auth, channel, enc string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if channel != "" {
		req.Header.Set("X-Splunk-Request-Channel", channel)
	}
	if enc != "" {
		req.Header.Set("Content-Encoding", enc)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode}
	_ = json.Unmarshal(b, &a)
	return a
}

const tok = "Splunk " + DefaultToken

func TestAuthAndChannels(t *testing.T) {
	s := New(Config{Ack: true})
	defer s.Close()
	ev := []byte(`{"event":"x"}`)
	for _, c := range []struct {
		name, auth, channel string
		status, code        int
	}{
		{"no token", "", ch1, 401, 2},
		{"bearer", "Bearer " + DefaultToken, ch1, 401, 3},
		{"wrong token", "Splunk nope", ch1, 403, 4},
		{"no channel", tok, "", 400, 10},
		{"bad channel", tok, "not-a-guid", 400, 11},
		{"ok", tok, ch1, 200, 0},
	} {
		if a := post(t, s, "/services/collector/event", c.auth, c.channel, "", ev); a.status != c.status || a.Code != c.code {
			t.Errorf("%s: %d code %d, want %d code %d", c.name, a.status, a.Code, c.status, c.code)
		}
	}
	s.Update(func(c *Config) { c.Disabled = true })
	if a := post(t, s, "/services/collector/event", tok, ch1, "", ev); a.status != 403 || a.Code != 1 {
		t.Errorf("disabled token: %d code %d", a.status, a.Code)
	}
	if a := post(t, s, "/services/collector/nope", tok, ch1, "", ev); a.status != 404 {
		t.Errorf("unknown path: %d", a.status)
	}
	resp, err := http.Get(s.URL + "/services/collector/health")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("health: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestAcksPerChannel: ackIds start at 0 per channel, become true after the
// delay, and are forgotten once reported.
func TestAcksPerChannel(t *testing.T) {
	s := New(Config{Ack: true, AckDelay: 50 * time.Millisecond})
	defer s.Close()
	ev := []byte(`{"event":"x"}{"event":{"y":1},"time":1433188255.5,"index":"main"}`)
	var ids []int64
	for _, ch := range []string{ch1, ch1, ch2} {
		a := post(t, s, "/services/collector/event", tok, ch, "", ev)
		if a.status != 200 || a.AckID == nil {
			t.Fatalf("%+v", a)
		}
		ids = append(ids, *a.AckID)
	}
	if ids[0] != 0 || ids[1] != 1 || ids[2] != 0 {
		t.Fatalf("ackIds %v, want 0 1 on channel 1 and 0 on channel 2", ids)
	}
	q := []byte(`{"acks":[0,1,7]}`)
	if a := post(t, s, "/services/collector/ack", tok, ch1, "", q); a.Acks["0"] || a.Acks["1"] {
		t.Errorf("acks true before the delay: %v", a.Acks)
	}
	deadline := time.Now().Add(5 * time.Second)
	var a answer
	for time.Now().Before(deadline) {
		if a = post(t, s, "/services/collector/ack", tok, ch1, "", q); a.Acks["0"] {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !a.Acks["0"] || !a.Acks["1"] || a.Acks["7"] {
		t.Fatalf("acks %v, want 0 and 1 true, 7 false", a.Acks)
	}
	if a := post(t, s, "/services/collector/ack", tok, ch1, "", q); a.Acks["0"] {
		t.Errorf("an ack reported true is reported again: %v", a.Acks)
	}
	evs := s.Events()
	if len(evs) != 6 || !evs[0].Confirmed || !evs[3].Confirmed || evs[4].Confirmed {
		t.Errorf("events %+v", evs)
	}
	if evs[1].Time != 1433188255.5 || evs[1].Index != "main" || string(evs[1].Event) != `{"y":1}` {
		t.Errorf("event 1 %+v", evs[1])
	}
	s.Update(func(c *Config) { c.Ack = false })
	if a := post(t, s, "/services/collector/ack", tok, ch1, "", q); a.status != 400 || a.Code != 14 {
		t.Errorf("ack off: %d code %d", a.status, a.Code)
	}
}

// TestPartialIngestion: the events before the bad one are indexed and the
// reply names the bad one.
func TestPartialIngestion(t *testing.T) {
	s := New(Config{Indexes: []string{"main"}})
	defer s.Close()
	for _, c := range []struct {
		name, body   string
		code, number int
		indexed      int
	}{
		{"syntax", `{"event":"a"}{"event":`, 6, 1, 1},
		{"blank", `{"event":"a"}{"event":"  "}{"event":"c"}`, 13, 1, 1},
		{"null", `{"event":null}`, 6, 0, 0},
		{"missing", `{"event":"a"}{"time":1}`, 12, 1, 1},
		{"nested fields", `{"event":"a","fields":{"k":{"n":1}}}`, 15, 0, 0},
		{"index", `{"event":"a","index":"main"}{"event":"b","index":"secret"}`, 7, 2, 1},
		{"array body", `[{"event":"a"}]`, 6, 0, 0},
	} {
		before := s.Count()
		a := post(t, s, "/services/collector/event", tok, "", "", []byte(c.body))
		if a.status != 400 || a.Code != c.code || a.Num == nil || *a.Num != c.number {
			t.Errorf("%s: %d code %d number %v, want 400 code %d number %d", c.name, a.status, a.Code, a.Num, c.code, c.number)
		}
		if got := s.Count() - before; got != int64(c.indexed) {
			t.Errorf("%s: %d indexed, want %d", c.name, got, c.indexed)
		}
	}
	if a := post(t, s, "/services/collector/event", tok, "", "", nil); a.status != 400 || a.Code != 5 {
		t.Errorf("no data: %d code %d", a.status, a.Code)
	}
	// An unknown envelope key makes splunkd skip the object silently.
	before := s.Count()
	if a := post(t, s, "/services/collector/event", tok, "", "", []byte(`{"event":"a","extra":1}{"event":"b"}`)); a.status != 200 {
		t.Errorf("unknown key: %d", a.status)
	}
	if s.Count()-before != 1 {
		t.Errorf("unknown key object indexed")
	}
}

func TestEncodingAndSize(t *testing.T) {
	s := New(Config{MaxContentLength: 100})
	defer s.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(`{"event":"zipped"}`))
	_ = zw.Close()
	if a := post(t, s, "/services/collector/event", tok, "", "gzip", gz.Bytes()); a.status != 200 {
		t.Errorf("gzip: %d %s", a.status, a.Text)
	}
	if a := post(t, s, "/services/collector/event", tok, "", "deflate", gz.Bytes()); a.status != 415 {
		t.Errorf("deflate: %d", a.status)
	}
	big := []byte(`{"event":"` + strings.Repeat("x", 200) + `"}`)
	if a := post(t, s, "/services/collector/event", tok, "", "", big); a.status != 413 {
		t.Errorf("too large: %d", a.status)
	}
}

func TestBusyAndLostAcks(t *testing.T) {
	s := New(Config{Ack: true, BusyRate: 1, RetryAfter: 3})
	defer s.Close()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/services/collector/event", strings.NewReader(`{"event":"a"}`))
	req.Header.Set("Authorization", tok)
	req.Header.Set("X-Splunk-Request-Channel", ch1)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" || s.Count() != 0 {
		t.Errorf("busy: %d Retry-After %q, %d indexed", resp.StatusCode, resp.Header.Get("Retry-After"), s.Count())
	}
	s.Update(func(c *Config) { c.BusyRate, c.LostAckRate = 0, 1 })
	a := post(t, s, "/services/collector/event", tok, ch1, "", []byte(`{"event":"a"}`))
	if a.status != 200 || a.AckID == nil {
		t.Fatalf("%+v", a)
	}
	if q := post(t, s, "/services/collector/ack", tok, ch1, "", []byte(`{"acks":[0]}`)); q.Acks["0"] {
		t.Error("a lost ack came true")
	}
	if s.Count() != 1 || s.Events()[0].Confirmed || s.Stats().AcksLost != 1 {
		t.Errorf("lost ack: %d indexed, stats %+v", s.Count(), s.Stats())
	}
}

func TestCountEvents(t *testing.T) {
	for body, want := range map[string]int{
		`{"event":"a"}{"event":{"x":"}{"},"time":1}` + "\n" + `{"fields":{"event":"no"},"event":1}`: 3,
		`{"time":1}`: -1, `{"event":"a"`: -1, `[1]`: -1, `x`: -1, ``: 0,
	} {
		n, err := countEvents([]byte(body))
		if want < 0 && err == nil || want >= 0 && (err != nil || n != want) {
			t.Errorf("countEvents(%s) = %d, %v; want %d", body, n, err, want)
		}
	}
}
