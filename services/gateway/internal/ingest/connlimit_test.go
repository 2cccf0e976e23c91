package ingest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// rawConn is a client connection that sends requests by hand, so that a
// test decides which connection each request uses.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// send writes a request posting an edX batch of n events.
func (rc *rawConn) send(n int, prefix string) {
	body := edxLines(n, prefix)
	fmt.Fprintf(rc.c, "POST /v1/events/edx HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n%s",
		testKey, len(body), body)
}

// post sends an edX batch and reads the answer, failing the test when
// none comes within 3 seconds.
func (rc *rawConn) post(n int, prefix string) *http.Response {
	rc.t.Helper()
	rc.send(n, prefix)
	_ = rc.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		rc.t.Fatalf("no answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(strings.NewReader(string(b)))
	return resp
}

// closedByServer reports whether the server closed the connection (a read
// ends with EOF or a reset within 3 seconds, nothing read).
func (rc *rawConn) closedByServer() bool {
	_ = rc.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := rc.br.Read(make([]byte, 1))
	var ne net.Error
	return n == 0 && err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func errorCode(t *testing.T, resp *http.Response) string {
	t.Helper()
	var b errorBody
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("answer %d is not an error body: %s", resp.StatusCode, raw)
	}
	return b.Error
}

func TestConnectionsPastTheBoundAreRefused(t *testing.T) {
	g := newTestGW(t, func(s *gwSetup) { s.opts.MaxConnections = 2 })
	addr := g.srv.Addr()
	held := []*rawConn{dialRaw(t, addr), dialRaw(t, addr)}
	for i, rc := range held {
		if resp := rc.post(2, fmt.Sprintf("held%d", i)); resp.StatusCode != http.StatusOK {
			t.Fatalf("connection %d within the bound: %d", i, resp.StatusCode)
		}
	}

	// A third connection is answered at once, not left in the backlog: a
	// 503 with Retry-After, and then closed.
	over := dialRaw(t, addr)
	resp := over.post(2, "over")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || !resp.Close {
		t.Fatalf("connection past the bound: %d, Retry-After %q, close %v", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close)
	}
	if code := errorCode(t, resp); code != ReasonOverloaded {
		t.Fatalf("code %q", code)
	}
	if !over.closedByServer() {
		t.Fatal("the connection past the bound was left open")
	}
	if got := testutil.ToFloat64(g.srv.m.refusedRequests.WithLabelValues(ReasonOverloaded)); got != 1 {
		t.Fatalf("refused_requests{overloaded} = %v", got)
	}

	// The connections within the bound keep being served.
	if resp := held[0].post(1, "again"); resp.StatusCode != http.StatusOK {
		t.Fatalf("held connection after the refusal: %d", resp.StatusCode)
	}
	// Once one of them closes, a new connection is served.
	held[1].c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		rc := dialRaw(t, addr)
		resp := rc.post(1, fmt.Sprintf("new%d", i))
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection served 5 s after one closed: %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConnectionsPastBothBoundsWait(t *testing.T) {
	g := newTestGW(t, func(s *gwSetup) { s.opts.MaxConnections = 1 })
	addr := g.srv.Addr()
	held := dialRaw(t, addr)
	if resp := held.post(1, "held"); resp.StatusCode != http.StatusOK {
		t.Fatalf("connection within the bound: %d", resp.StatusCode)
	}
	// Overflow connections that send nothing fill the overflow places.
	idle := make([]*rawConn, overflowConnections(1))
	for i := range idle {
		idle[i] = dialRaw(t, addr)
	}
	overflow := g.srv.ln.(*limitListener).overflow
	waitFor(t, func() bool { return len(overflow) == len(idle) })

	// The next one waits for a place: no answer, and not closed.
	late := dialRaw(t, addr)
	late.send(1, "late")
	_ = late.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := late.br.Read(make([]byte, 1)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection past both bounds: read %d bytes, %v; want it waiting", n, err)
	}
	// When an idle one goes, the waiting one takes its place and gets its
	// 503.
	idle[0].c.Close()
	_ = late.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(late.br, nil)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || !resp.Close {
		t.Fatalf("waiting connection: %v %v", resp, err)
	}
	if resp := held.post(1, "still"); resp.StatusCode != http.StatusOK {
		t.Fatalf("held connection: %d", resp.StatusCode)
	}
}

func TestLimitListenerCloseStopsAWaitingAccept(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newLimitListener(inner, 1)
	n := 1 + overflowConnections(1)
	for range n + 1 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	for i := range n {
		c, err := ln.Accept()
		if err != nil {
			t.Fatalf("accept %d: %v", i, err)
		}
		defer c.Close()
	}
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept() // both bounds reached: waits
		if c != nil {
			c.Close()
		}
		accepted <- err
	}()
	select {
	case err := <-accepted:
		t.Fatalf("accept past both bounds returned at once: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	ln.Close()
	select {
	case err := <-accepted:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("accept after Close: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close left Accept waiting")
	}
}
