package sinkhec

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	cases := []struct {
		name    string
		status  int
		hdr     http.Header
		body    string
		netErr  error
		ack     bool
		want    outcome
		code    int
		evNum   int
		ackID   int64
		retryIn time.Duration
	}{
		{"success", 200, hdr(), `{"text":"Success","code":0}`, nil, false, outOK, 0, -1, 0, 0},
		{"success with ack", 200, hdr(), `{"text":"Success","code":0,"ackId":0}`, nil, true, outOK, 0, -1, 0, 0},
		{"ack expected, none given", 200, hdr(), `{"text":"Success","code":0}`, nil, true, outFatal, 0, -1, 0, 0},
		{"queue warning is success", 200, hdr(), `{"text":"HEC queue is approaching its capacity limit","code":24,"ackId":7}`, nil, true, outOK, 24, -1, 7, 0},
		{"busy", 503, hdr("Retry-After", "3"), `{"text":"Server is busy","code":9}`, nil, false, outRetry, 9, -1, 0, 3 * time.Second},
		{"unhealthy", 503, hdr(), `{"text":"HEC is unhealthy, queues are full","code":18}`, nil, false, outRetry, 18, -1, 0, 0},
		{"throttled", 429, hdr("Retry-After", "2"), `{"text":"HEC queue is at capacity","code":26}`, nil, false, outRetry, 26, -1, 0, 2 * time.Second},
		{"internal", 500, hdr(), `{"text":"Internal server error","code":8}`, nil, false, outRetry, 8, -1, 0, 0},
		{"proxy 502 html", 502, hdr(), `<html>bad gateway</html>`, nil, false, outRetry, -1, -1, 0, 0},
		{"network", 0, nil, ``, errors.New("connection refused"), false, outRetry, -1, 0, 0, 0},
		{"invalid data at 3", 400, hdr(), `{"text":"Invalid data format","code":6,"invalid-event-number":3}`, nil, false, outPartial, 6, 3, 0, 0},
		{"blank event at 0", 400, hdr(), `{"text":"Event field cannot be blank","code":13,"invalid-event-number":0}`, nil, false, outPartial, 13, 0, 0, 0},
		{"event required, no number", 400, hdr(), `{"text":"Event field is required","code":12}`, nil, false, outBisect, 12, -1, 0, 0},
		{"incorrect index", 400, hdr(), `{"text":"Incorrect index","code":7,"invalid-event-number":2}`, nil, false, outFatal, 7, 2, 0, 0},
		{"channel missing", 400, hdr(), `{"text":"Data channel is missing","code":10}`, nil, false, outFatal, 10, -1, 0, 0},
		{"ack disabled", 400, hdr(), `{"text":"ACK is disabled","code":14}`, nil, false, outFatal, 14, -1, 0, 0},
		{"token required", 401, hdr(), `{"text":"Token is required","code":2}`, nil, false, outFatal, 2, -1, 0, 0},
		{"invalid authorization", 401, hdr(), `{"text":"Invalid authorization","code":3}`, nil, false, outFatal, 3, -1, 0, 0},
		{"invalid token", 403, hdr(), `{"text":"Invalid token","code":4}`, nil, false, outFatal, 4, -1, 0, 0},
		{"token disabled", 403, hdr(), `{"text":"Token disabled","code":1}`, nil, false, outFatal, 1, -1, 0, 0},
		{"too large", 413, hdr(), `{"text":"Content too large","code":413}`, nil, false, outTooLarge, 413, -1, 0, 0},
		{"not found", 404, hdr(), `{"text":"The requested URL was not found on this server.","code":404}`, nil, false, outFatal, 404, -1, 0, 0},
		{"splunk web redirect", 303, hdr("Location", "/en-US/"), ``, nil, false, outFatal, -1, -1, 0, 0},
		{"deflate", 415, hdr(), `<html>Unsupported</html>`, nil, false, outFatal, -1, -1, 0, 0},
		{"400 not from HEC", 400, hdr(), `bad request`, nil, false, outFatal, -1, -1, 0, 0},
		{"timeout", 408, hdr(), ``, nil, false, outRetry, -1, -1, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := classify("http://hec:8088", c.status, c.hdr, []byte(c.body), c.netErr, c.ack)
			if r.outcome != c.want {
				t.Fatalf("outcome %s, want %s (%v)", r.outcome, c.want, r.err)
			}
			if c.netErr == nil && (r.code != c.code || r.eventNumber != c.evNum || r.ackID != c.ackID || r.retryAfter != c.retryIn) {
				t.Errorf("got code %d event %d ackId %d retry %s; want %d %d %d %s", r.code, r.eventNumber, r.ackID, r.retryAfter, c.code, c.evNum, c.ackID, c.retryIn)
			}
			if r.outcome != outOK && r.err == nil {
				t.Error("no error for a failed request")
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	if d := parseRetryAfter("120"); d != 2*time.Minute {
		t.Errorf("seconds: %s", d)
	}
	if d := parseRetryAfter(time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)); d < 28*time.Second || d > 31*time.Second {
		t.Errorf("date: %s", d)
	}
	if d := parseRetryAfter("soon"); d != 0 {
		t.Errorf("garbage: %s", d)
	}
}

func TestEndpointBackoff(t *testing.T) {
	var ups []bool
	ep := newEndpoint("http://x:8088/", 100*time.Millisecond, time.Second, func(up bool) { ups = append(ups, up) })
	if ep.eventURL != "http://x:8088/services/collector/event" || ep.ackURL != "http://x:8088/services/collector/ack" {
		t.Fatalf("urls %s %s", ep.eventURL, ep.ackURL)
	}
	var last time.Duration
	for i := 0; i < 8; i++ {
		d := ep.fail(0)
		lo := min(100*time.Millisecond<<i, time.Second) / 2
		if d < lo || d > time.Second {
			t.Errorf("failure %d: backoff %s outside [%s, 1s]", i+1, d, lo)
		}
		last = d
	}
	if last < 500*time.Millisecond {
		t.Errorf("backoff did not grow to the cap: %s", last)
	}
	if d := ep.fail(5 * time.Second); d != 5*time.Second {
		t.Errorf("Retry-After 5s gave %s", d)
	}
	ep.ok()
	if d := ep.fail(0); d > 100*time.Millisecond {
		t.Errorf("after a success the backoff restarts: %s", d)
	}
	if len(ups) < 2 || ups[0] || !ups[len(ups)-2] {
		t.Errorf("health callbacks %v", ups)
	}
}
