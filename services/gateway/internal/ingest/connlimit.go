package ingest

import (
	"context"
	"net"
	"sync"
)

// Connection bound (Options.MaxConnections): the gateway keeps at most that
// many client connections open for serving. A connection that arrives past
// the bound is not left waiting in the kernel's listen backlog (where a
// client would wait, with no answer, until some keep-alive connection
// closed, possibly only at the idle timeout): it is accepted as an
// overflow connection, its request is refused with 503 overloaded and
// Retry-After in its endpoint's own format (admit), and the connection is
// closed after that answer. Overflow connections are bounded too
// (overflowConnections): one arriving past both bounds is closed at once.

// overflowConnections is how many connections past the bound may be open
// at once to be refused: a quarter of the bound, at least 16. Each lives
// for one request at most (bounded by the read timeouts).
func overflowConnections(bound int) int {
	return max(bound/4, 16)
}

// limitListener is a net.Listener that bounds the connections it hands out.
type limitListener struct {
	net.Listener
	slots    chan struct{} // one per connection being served
	overflow chan struct{} // one per overflow connection
	// closedAtAccept counts connections closed at once because both bounds
	// were reached.
	closedAtAccept func()
}

func newLimitListener(ln net.Listener, maxConns int, closedAtAccept func()) *limitListener {
	return &limitListener{
		Listener:       ln,
		slots:          make(chan struct{}, maxConns),
		overflow:       make(chan struct{}, overflowConnections(maxConns)),
		closedAtAccept: closedAtAccept,
	}
}

// Accept returns the next connection: a served one while there is room,
// an overflow one past the bound; past both it closes connections until
// one fits.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, free: l.slots}, nil
		default:
		}
		select {
		case l.overflow <- struct{}{}:
			return &limitedConn{Conn: c, free: l.overflow, over: true}, nil
		default:
		}
		_ = c.Close()
		if l.closedAtAccept != nil {
			l.closedAtAccept()
		}
	}
}

// limitedConn gives its place back when it is closed.
type limitedConn struct {
	net.Conn
	free chan struct{}
	over bool // an overflow connection: its request is refused
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { <-c.free })
	return err
}

type overflowKey struct{}

// connContext is the http.Server's ConnContext: it marks the requests of
// overflow connections.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if lc, ok := c.(*limitedConn); ok && lc.over {
		return context.WithValue(ctx, overflowKey{}, true)
	}
	return ctx
}

// overflowConn reports whether the request came on a connection past the
// bound.
func overflowConn(ctx context.Context) bool {
	over, _ := ctx.Value(overflowKey{}).(bool)
	return over
}
