package ingest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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

// post sends an edX batch and reads the answer, failing the test when
// none comes within 3 seconds.
func (rc *rawConn) post(n int, prefix string) *http.Response {
	rc.t.Helper()
	body := edxLines(n, prefix)
	fmt.Fprintf(rc.c, "POST /v1/events/edx HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n%s",
		testKey, len(body), body)
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
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "2" || !resp.Close {
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
	if got := testutil.ToFloat64(g.srv.m.connectionsDropped); got != 0 {
		t.Fatalf("connections_dropped = %v", got)
	}
}

func TestConnectionsPastBothBoundsAreClosed(t *testing.T) {
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
	waitFor(t, func() bool { return len(g.srv.ln.(*limitListener).overflow) == len(idle) })

	// The next is closed as soon as it is accepted, with no answer.
	dropped := dialRaw(t, addr)
	if !dropped.closedByServer() {
		t.Fatal("a connection past both bounds was kept open")
	}
	if got := testutil.ToFloat64(g.srv.m.connectionsDropped); got != 1 {
		t.Fatalf("connections_dropped = %v", got)
	}

	// When the idle ones go, their places are free again: a new connection
	// gets its 503.
	for _, rc := range idle {
		rc.c.Close()
	}
	waitFor(t, func() bool { return len(g.srv.ln.(*limitListener).overflow) == 0 })
	if resp := dialRaw(t, addr).post(1, "late"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("overflow connection: %d", resp.StatusCode)
	}
	if resp := held.post(1, "still"); resp.StatusCode != http.StatusOK {
		t.Fatalf("held connection: %d", resp.StatusCode)
	}
}
