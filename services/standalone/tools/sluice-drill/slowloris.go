package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// drillSlowloris holds many slow connections open (half send their
// headers a byte at a time, half their bodies; each reconnects when the
// gateway cuts it off) while a normal client sends batches: every one must
// be answered 200 promptly. Then it sends oversized and hostile inputs: 20
// MB bodies (announced and chunked, alone and ten at once), gzip bombs, a
// 10,000-deep JSON event, invalid UTF-8, an oversized header block; each
// must get the right status, and the gateway's memory must stay bounded.
func drillSlowloris(o options) (*result, error) {
	hold := o.duration
	if hold == 0 {
		hold = 15 * time.Second
	}
	conns := max(o.slowConns, 1)
	res := &result{name: "slowloris"}
	r, err := newRig(o, "slowloris")
	if err != nil {
		return nil, err
	}
	defer r.close()
	if err := r.gw.startReady(60 * time.Second); err != nil {
		return nil, err
	}
	watch := rssWatch(r.gw.pid(), 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), hold+2*time.Minute)
	defer cancel()

	// Slow connections.
	var (
		open, peakOpen, cuts, dials atomic.Int64
		wg                          sync.WaitGroup
	)
	slowCtx, slowStop := context.WithCancel(ctx)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slowClient(slowCtx, r.gw.addr(), i%2 == 0, &open, &peakOpen, &cuts, &dials)
		}()
	}
	// Let them connect, then serve a normal client meanwhile.
	deadline := time.Now().Add(10 * time.Second)
	for open.Load() < int64(conns) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	openAtStart := open.Load()
	client := newClient(1, 10*time.Second)
	var normal []*reply
	var minOpen int64 = 1 << 62
	end := time.Now().Add(hold)
	for i := 0; time.Now().Before(end) && i < 10_000; i++ {
		minOpen = min(minOpen, open.Load())
		normal = append(normal, send(ctx, client, r.gw.url(), newBatch(fmt.Sprintf("sl-%d-%d", time.Now().UnixNano(), i), 20)))
		time.Sleep(200 * time.Millisecond)
	}
	slowStop()
	wg.Wait()
	okNormal := 0
	for _, rp := range normal {
		if rp.status == http.StatusOK {
			okNormal++
		}
	}
	lat := latencies(normal, func(*reply) bool { return true })
	res.fact("slow connections", "%d (half slow headers, half slow bodies, a byte every 500 ms); open at start %d, fewest open while serving %d, peak %d",
		conns, openAtStart, minOpen, peakOpen.Load())
	res.fact("slow connections cut off by the gateway", "%d of %d dials (read_header_timeout 5s, read_timeout 30s)", cuts.Load(), dials.Load())
	res.fact("normal client meanwhile", "%d requests: %s; latency p50 / p99 / max %.1f / %.1f / %.1f ms",
		len(normal), byStatus(normal), pct(lat, 0.5), pct(lat, 0.99), pct(lat, 1))
	res.check("slow connections were held open", openAtStart >= int64(conns)*9/10, "%d of %d open", openAtStart, conns)
	res.check("the normal client was served", len(normal) > 0 && okNormal == len(normal), "%d of %d got 200", okNormal, len(normal))
	res.check("normal client latency p99 < 1 s", pct(lat, 0.99) < 1000, "%.1f ms", pct(lat, 0.99))

	// Oversized and hostile inputs.
	url := r.gw.url() + "/v1/events/edx"
	huge := 20 << 20
	bomb := gzipBomb(64 << 20)
	deep := `{"username":"u","event_type":"deep","time":"2026-01-02T03:04:05Z","event":` + strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000) + "}"
	deepUnclosed := `{"username":"u","event_type":"deep","event":` + strings.Repeat(`{"a":`, 10_000)
	latin1 := []byte("{\"username\":\"u\",\"event_type\":\"latin1\",\"time\":\"2026-01-02T03:04:05Z\",\"agent\":\"Orange Espa\xf1a \xff\xfe\",\"event\":{}}\n")
	type probe struct {
		name   string
		do     func() (int, string, error)
		want   []int
		code   string // expected error code (reply "error" or first event code)
		detail string
	}
	probes := []probe{
		{name: "20 MB body, Content-Length", do: func() (int, string, error) {
			return post(ctx, url, io.LimitReader(spaces{}, int64(huge)), int64(huge), nil)
		}, want: []int{413}, code: "body_too_large"},
		{name: "20 MB body, chunked", do: func() (int, string, error) {
			return post(ctx, url, io.LimitReader(spaces{}, int64(huge)), -1, nil)
		}, want: []int{413}, code: "body_too_large"},
		{name: fmt.Sprintf("gzip bomb (%d KB inflating to 64 MB)", len(bomb)>>10), do: func() (int, string, error) {
			return post(ctx, url, bytes.NewReader(bomb), int64(len(bomb)), map[string]string{"Content-Encoding": "gzip"})
		}, want: []int{413}, code: "decompressed_too_large"},
		{name: "10,000-deep JSON event", do: func() (int, string, error) {
			return post(ctx, url, strings.NewReader(deep), int64(len(deep)), nil)
		}, want: []int{207}, code: "too_deep", detail: "rejected on its own and dead-lettered"},
		{name: "10,000-deep JSON, unclosed", do: func() (int, string, error) {
			return post(ctx, url, strings.NewReader(deepUnclosed), int64(len(deepUnclosed)), nil)
		}, want: []int{207}, code: "too_deep"},
		{name: "invalid UTF-8 event", do: func() (int, string, error) {
			return post(ctx, url, bytes.NewReader(latin1), int64(len(latin1)), map[string]string{"Content-Type": "application/x-ndjson"})
		}, want: []int{200}, detail: "read as Latin-1, quirk latin1_event"},
		{name: "100 KB header block", do: func() (int, string, error) {
			return post(ctx, url, strings.NewReader("{}"), 2, map[string]string{"X-Padding": strings.Repeat("a", 100<<10)})
		}, want: []int{431}},
	}
	for _, p := range probes {
		t0 := time.Now()
		status, code, err := p.do()
		took := time.Since(t0)
		ok := err == nil && contains(p.want, status) && (p.code == "" || code == p.code)
		got := fmt.Sprintf("%d %s in %s", status, code, took.Round(time.Millisecond))
		if err != nil {
			got = err.Error()
		}
		if p.detail != "" {
			got += " (" + p.detail + ")"
		}
		res.check(p.name, ok, "%s", got)
	}
	// Ten at once of each big kind: refused (413), or 503 when the
	// in-flight bytes are taken by the others, never more memory.
	var mu sync.Mutex
	statuses := map[string]int{}
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var status int
			var code string
			var err error
			if i%2 == 0 {
				status, code, err = post(ctx, url, io.LimitReader(spaces{}, int64(huge)), -1, nil)
			} else {
				status, code, err = post(ctx, url, bytes.NewReader(bomb), int64(len(bomb)), map[string]string{"Content-Encoding": "gzip"})
			}
			k := fmt.Sprintf("%d %s", status, code)
			if err != nil {
				k = "error"
			}
			mu.Lock()
			statuses[k]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	concOK := true
	for k := range statuses {
		concOK = concOK && (strings.HasPrefix(k, "413 ") || strings.HasPrefix(k, "503 "))
	}
	res.check("10 chunked 20 MB bodies and 10 bombs at once", concOK, "%v", statuses)
	peak, hwm := watch()
	res.fact("gateway RSS peak (sampled) / VmHWM", "%s / %s", mb(peak), mb(hwm))
	res.memCheck(o, "bounded memory: RSS < 300 MB", hwm > 0 && hwm < 300<<20, "VmHWM %s", mb(hwm))
	return res, nil
}

// slowClient keeps one slow connection open until ctx ends: it sends a
// request a byte every 500 ms (its headers, or with slowBody complete
// headers and then its body), and dials again when the gateway cuts it off.
func slowClient(ctx context.Context, addr string, slowBody bool, open, peak, cuts, dials *atomic.Int64) {
	head := "POST /v1/events/edx HTTP/1.1\r\nHost: drill\r\nAuthorization: Bearer dev\r\nContent-Type: application/x-ndjson\r\nContent-Length: 100000\r\n"
	for ctx.Err() == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		dials.Add(1)
		n := open.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		var trickle string
		if slowBody {
			_, err = c.Write([]byte(head + "\r\n"))
			trickle = strings.Repeat(`{"a":1}`+"\n", 100000/8)
		} else {
			trickle = head
		}
		for i := 0; err == nil && ctx.Err() == nil && i < len(trickle); i++ {
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err = c.Write([]byte{trickle[i]}); err != nil {
				break
			}
			// A cut-off shows as a readable EOF (or an answer).
			_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			var buf [512]byte
			if _, rerr := c.Read(buf[:]); rerr == nil || !isTimeout(rerr) {
				err = fmt.Errorf("cut off")
			}
		}
		if err != nil && ctx.Err() == nil {
			cuts.Add(1)
		}
		open.Add(-1)
		c.Close()
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// post sends body (length -1: chunked) and returns the status and the
// reply's error code (or first event error code).
func post(ctx context.Context, url string, body io.Reader, length int64, hdr map[string]string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
	if err != nil {
		return 0, "", err
	}
	req.ContentLength = length
	if length < 0 {
		req.Body = io.NopCloser(body) // hide the length: chunked
	}
	req.Header.Set("Authorization", "Bearer dev")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var b gwBody
	_ = json.Unmarshal(data, &b)
	code := b.Error
	if code == "" && len(b.Errors) > 0 {
		code = b.Errors[0].Code
	}
	return resp.StatusCode, code, nil
}

type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// gzipBomb compresses n zero bytes.
func gzipBomb(n int) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	chunk := make([]byte, 1<<20)
	for written := 0; written < n; written += len(chunk) {
		_, _ = zw.Write(chunk)
	}
	_ = zw.Close()
	return buf.Bytes()
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
