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
// (overflowConnections); they turn over quickly (one request each, or the
// read-header timeout for one that sends none), and a connection arriving
// while both bounds are reached waits, accepted, for the next free place
// rather than being closed unanswered (which a client sees as a reset or
// a write on a closed connection, not as "retry later").

// overflowConnections is how many connections past the bound may be open
// at once to be refused: a quarter of the bound, at least 16.
func overflowConnections(bound int) int {
	return max(bound/4, 16)
}

// limitListener is a net.Listener that bounds the connections it hands out.
type limitListener struct {
	net.Listener
	slots     chan struct{} // one per connection being served
	overflow  chan struct{} // one per overflow connection
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

func newLimitListener(ln net.Listener, maxConns int) *limitListener {
	return &limitListener{
		Listener: ln,
		slots:    make(chan struct{}, maxConns),
		overflow: make(chan struct{}, overflowConnections(maxConns)),
		done:     make(chan struct{}),
	}
}

// Accept returns the next connection: a served one while there is room,
// an overflow one past the bound. Past both, it waits with the connection
// for whichever place frees first.
func (l *limitListener) Accept() (net.Conn, error) {
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
	select {
	case l.slots <- struct{}{}:
		return &limitedConn{Conn: c, free: l.slots}, nil
	case l.overflow <- struct{}{}:
		return &limitedConn{Conn: c, free: l.overflow, over: true}, nil
	case <-l.done:
		_ = c.Close()
		return nil, net.ErrClosed
	}
}

// Close stops Accept, also one waiting for a place.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
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
