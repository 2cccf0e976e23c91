package standalone

import (
	"encoding/binary"
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
)

// maxRequestBytes bounds the size prefix of a request the embedded broker
// accepts. The broker allocates a request's whole size as soon as it has read
// the 4-byte prefix, so any other protocol sent to its port makes it allocate
// up to 4 GiB: "GET " reads as 1.19 GB, and a web page can make the browser
// send that to 127.0.0.1:9092.
//
// 100 MiB is Apache Kafka's default socket.request.max.bytes and franz-go's
// default BrokerMaxWriteBytes, which caps a whole produce request whatever the
// number of partitions in it. It is the largest request the standalone's own
// clients build (kafka.max_message_bytes is at most 100 MiB, and franz-go
// fits its per-partition batches into one request under that cap), and a
// real broker with default settings accepts no more, so no client that works
// against one (kcat included) is refused here. A smaller bound would refuse
// configurations Sluice accepts. Every text
// protocol and TLS is still refused: any first byte from 0x07 up already
// means more than 100 MiB.
const maxRequestBytes = 100 << 20

// minRequestBytes is the smallest request: the version 0 request header
// (api key, api version, correlation id). Real clients never send less.
const minRequestBytes = 8

// guardedListen is the embedded broker's listen function: it wraps every
// accepted connection in a frameConn. It sees the bytes the broker parses
// because the standalone's broker has no TLS; kfake.TLS would wrap this
// listener and leave only ciphertext to check.
func guardedListen(log *zap.Logger) func(network, address string) (net.Listener, error) {
	return func(network, address string) (net.Listener, error) {
		ln, err := net.Listen(network, address)
		if err != nil {
			return nil, err
		}
		return &guardedListener{Listener: ln, log: log}, nil
	}
}

type guardedListener struct {
	net.Listener
	log *zap.Logger
}

func (l *guardedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &frameConn{Conn: c, log: l.log}, nil
}

// frameConn checks each request's size prefix and api key as the broker
// reads them, and fails the read that would hand over a bad one, so the
// broker never allocates for it. The broker reads a connection from one
// goroutine at a time, so Read needs no lock.
type frameConn struct {
	net.Conn
	log *zap.Logger
	fc  frameChecker
	err error // set once a frame is refused; every later Read returns it
}

func (c *frameConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Read(p)
	if r := c.fc.scan(p[:n]); r != nil {
		// The whole read is withheld, including any good frames before the
		// bad one: the connection is closed, so their replies could not be
		// sent anyway.
		c.err = fmt.Errorf("kafka request refused: %s", r)
		fields := []zap.Field{zap.Stringer("remote", c.Conn.RemoteAddr()), zap.Int32("size", r.size), zap.String("reason", r.reason)}
		if r.hasKey {
			fields = append(fields, zap.Int16("api_key", r.key))
		}
		c.log.Warn("embedded kafka refused a request and closed the connection", fields...)
		_ = c.Conn.Close()
		return 0, c.err
	}
	return n, err
}

// refusal says why a frame was refused.
type refusal struct {
	size   int32
	key    int16
	hasKey bool // key was read (the size was acceptable)
	reason string
}

func (r *refusal) String() string {
	if r.hasKey {
		return fmt.Sprintf("%s (size %d, api key %d)", r.reason, r.size, r.key)
	}
	return fmt.Sprintf("%s (size %d)", r.reason, r.size)
}

// frameChecker follows the request frames in a byte stream: a 4-byte
// big-endian size, then that many bytes starting with the int16 api key.
// Sizes and keys may arrive split across reads, and one read may hold several
// frames.
type frameChecker struct {
	hdr  [6]byte // the current frame's size prefix and api key
	got  int     // bytes of hdr received
	skip int     // bytes of the current frame after its api key still to come
}

// scan follows p, the next bytes of the stream, and returns a refusal at the
// first frame whose size is outside minRequestBytes..maxRequestBytes (a
// negative int32 included) or whose api key no request has. The broker
// dereferences the request for the key it reads without checking it is
// known, so an unknown key would crash the process.
func (f *frameChecker) scan(p []byte) *refusal {
	for len(p) > 0 {
		if f.skip > 0 {
			n := min(f.skip, len(p))
			f.skip -= n
			p = p[n:]
			continue
		}
		before := f.got
		n := copy(f.hdr[f.got:], p)
		f.got += n
		p = p[n:]
		size := int32(binary.BigEndian.Uint32(f.hdr[:4]))
		if before < 4 && f.got >= 4 {
			switch {
			case size > maxRequestBytes:
				return &refusal{size: size, reason: fmt.Sprintf("size above %d bytes", maxRequestBytes)}
			case size < 0:
				return &refusal{size: size, reason: "negative size"}
			case size < minRequestBytes:
				return &refusal{size: size, reason: "size below a request header"}
			}
		}
		if f.got == len(f.hdr) {
			key := int16(binary.BigEndian.Uint16(f.hdr[4:]))
			if kmsg.RequestForKey(key) == nil {
				return &refusal{size: size, key: key, hasKey: true, reason: "unknown api key"}
			}
			f.skip = int(size) - 2
			f.got = 0
		}
	}
	return nil
}
