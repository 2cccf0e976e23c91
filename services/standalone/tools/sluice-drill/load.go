package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// batch is one request's worth of edX events, each with its own event id,
// sent with an Idempotency-Key; a retry resends the same bytes with the
// same key (docs/retries.md).
type batch struct {
	key  string
	ids  []string
	body []byte
}

// newBatch builds n edX tracking-log events of about 700 bytes, like the
// real ones make bench sends, with ids "<prefix>-<i>".
func newBatch(prefix string, n int) *batch {
	b := &batch{key: prefix}
	var buf bytes.Buffer
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		b.ids = append(b.ids, id)
		fmt.Fprintf(&buf, `{"username":"drill-user-%d","event_type":"problem_check","event_source":"server","event_id":%q,`+
			`"time":"2026-01-02T03:04:05.123456+00:00","ip":"10.0.%d.%d","agent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",`+
			`"host":"courses.example.org","session":"2a9e6c4e2b1a4f0c8e7d6c5b4a3f2e1d","referer":"https://courses.example.org/courses/course-v1:Org+C101+2026/courseware/unit/%d/",`+
			`"accept_language":"en-US,en;q=0.9","page":null,"context":{"course_id":"course-v1:Org+C101+2026","org_id":"Org","user_id":%d,"path":"/courses/course-v1:Org+C101+2026/xblock/block-v1:Org+C101+2026+type@problem+block@p%d/handler/xmodule_handler/problem_check"},`+
			`"event":{"problem_id":"block-v1:Org+C101+2026+type@problem+block@p%d","attempts":%d,"success":"correct","grade":1,"max_grade":1,"answers":{"p%d_2_1":"choice_%d"}}}`+"\n",
			i%97, id, i%250, i%200, i%40, 1000+i%97, i%40, i%40, 1+i%3, i%40, i%4)
	}
	b.body = buf.Bytes()
	return b
}

// reply is one answer, or a request that got none.
type reply struct {
	start, end time.Time
	status     int // 0: no reply
	retryAfter string
	code       string // the reply's "error"
	err        error
	accepted   []string // event ids Kafka acknowledged (2xx)
	retry      bool     // some events were not stored for a retryable reason
}

func (r *reply) latency() time.Duration { return r.end.Sub(r.start) }

type gwBody struct {
	Error  string `json:"error"`
	Errors []struct {
		Index int    `json:"index"`
		Code  string `json:"code"`
	} `json:"errors"`
}

// retryableCodes are the per-event codes that mean "not stored, send again".
var retryableCodes = map[string]bool{"produce_failed": true, "overloaded": true, "kafka_unavailable": true, "rate_limited": true, "shutting_down": true}

// send posts the batch once.
func send(ctx context.Context, client *http.Client, url string, b *batch) *reply {
	r := &reply{start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/events/edx", bytes.NewReader(b.body))
	if err != nil {
		r.err, r.end = err, time.Now()
		return r
	}
	req.Header.Set("Authorization", "Bearer dev")
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Idempotency-Key", b.key)
	resp, err := client.Do(req)
	if err != nil {
		r.err, r.end = err, time.Now()
		return r
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.end = time.Now()
	if err != nil {
		r.err = fmt.Errorf("reading the reply: %w", err)
		return r
	}
	r.status, r.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	var body gwBody
	_ = json.Unmarshal(data, &body)
	r.code = body.Error
	if r.status/100 == 2 {
		refused := map[int]bool{}
		for _, e := range body.Errors {
			refused[e.Index] = true
			r.retry = r.retry || retryableCodes[e.Code]
		}
		for i, id := range b.ids {
			if !refused[i] {
				r.accepted = append(r.accepted, id)
			}
		}
	}
	return r
}

// retryPolicy is how a client retries safely (docs/retries.md): the same
// body and Idempotency-Key, after Retry-After when the gateway sent one
// (capped for the drill's sake), else after an exponential backoff, on no
// reply, 429, 503 (and other 5xx), and on a 2xx that reports events not
// stored for a retryable reason.
type retryPolicy struct {
	maxWait time.Duration // cap on one wait
	giveUp  time.Duration // stop retrying a batch after this long
}

func (p retryPolicy) wait(r *reply, attempt int) time.Duration {
	if s, err := strconv.Atoi(r.retryAfter); err == nil && s > 0 {
		return min(time.Duration(s)*time.Second, p.maxWait)
	}
	d := 50 * time.Millisecond << min(attempt, 5)
	return min(d, p.maxWait)
}

func needsRetry(r *reply) bool {
	switch {
	case r.status == 0:
		return true
	case r.status == http.StatusTooManyRequests || r.status >= 500:
		return true
	case r.status/100 == 2:
		return r.retry
	}
	return false
}

// outcome is what happened to one batch, over all its attempts.
type outcome struct {
	batch    *batch
	replies  []*reply
	acked    map[string]bool
	noReply  int  // attempts without an answer
	finished bool // every event acknowledged
}

// sendUntilStored sends the batch until every event is acknowledged, a
// non-retryable answer comes, or the policy gives up.
func sendUntilStored(ctx context.Context, client *http.Client, url string, b *batch, p retryPolicy) *outcome {
	o := &outcome{batch: b, acked: map[string]bool{}}
	deadline := time.Now().Add(p.giveUp)
	for attempt := 0; ; attempt++ {
		r := send(ctx, client, url, b)
		o.replies = append(o.replies, r)
		for _, id := range r.accepted {
			o.acked[id] = true
		}
		if r.status == 0 {
			o.noReply++
		}
		if len(o.acked) == len(b.ids) {
			o.finished = true
			return o
		}
		if !needsRetry(r) || time.Now().After(deadline) || ctx.Err() != nil {
			return o
		}
		select {
		case <-time.After(p.wait(r, attempt)):
		case <-ctx.Done():
			return o
		}
	}
}

// tally counts replies by what they were.
type tally struct {
	mu       sync.Mutex
	replies  []*reply
	outcomes []*outcome
}

func (t *tally) add(o *outcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.outcomes = append(t.outcomes, o)
	t.replies = append(t.replies, o.replies...)
}

func (t *tally) addReply(r *reply) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.replies = append(t.replies, r)
}

// byStatus renders the replies' statuses ("200: 5, 503: 2, no reply: 1").
func byStatus(rs []*reply) string {
	counts := map[string]int{}
	for _, r := range rs {
		k := strconv.Itoa(r.status)
		if r.status == 0 {
			k = "no reply"
		}
		if r.code != "" {
			k += " " + r.code
		}
		counts[k]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, counts[k]))
	}
	return strings.Join(parts, ", ")
}

// pct returns the p-th percentile of the latencies, in milliseconds.
func pct(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[int(float64(len(s)-1)*p)].Microseconds()) / 1000
}

func latencies(rs []*reply, keep func(*reply) bool) []time.Duration {
	var out []time.Duration
	for _, r := range rs {
		if keep(r) {
			out = append(out, r.latency())
		}
	}
	return out
}

func newClient(conns int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			MaxIdleConns: conns, MaxIdleConnsPerHost: conns, DisableCompression: true,
			IdleConnTimeout: 30 * time.Second,
		},
	}
}

func mb(n int64) string { return fmt.Sprintf("%.0f MB", float64(n)/(1<<20)) }
