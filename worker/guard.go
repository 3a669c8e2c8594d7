package worker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/transport"
)

// zmq4 allocates a frame of whatever size its 8-byte length field announces,
// so one forged frame header (2^60 bytes) would take a listening worker down,
// and a peer that connects and stays silent blocks its accept loop. The worker
// therefore listens (and its clients dial) through a guarded transport: every accepted connection
// parses the ZMTP framing as it is read, closes the connection on a frame or
// message over MaxMessageBytes (before zmq4 sees the length), or that does not
// open with a ZMTP 3 greeting, and one that zmq4 has not adopted (greeting and
// handshake done) within handshakeTimeout.

// Transport names the worker registers with zmq4 (process-wide, once; they
// add transports and change none of zmq4's own).
const (
	guardedTCP = "mmft-tcp"
	guardedIPC = "mmft-ipc"
)

// handshakeTimeout bounds the ZMTP greeting and handshake of an accepted
// connection; zmq4 accepts one connection at a time, so a silent peer delays
// other clients by this much at most.
const handshakeTimeout = 2 * time.Second

// dialHandshakeTimeout bounds the handshake of a client's connection; it is
// longer than handshakeTimeout, as the worker may first be held up by a
// silent peer.
const dialHandshakeTimeout = 5 * time.Second

var registerGuard = sync.OnceValue(func() error {
	if err := zmq4.RegisterTransport(guardedTCP, guardedTransport{network: "tcp"}); err != nil {
		return err
	}
	return zmq4.RegisterTransport(guardedIPC, guardedTransport{network: "unix"})
})

// guardedEndpoint turns a checked tcp:// or ipc:// endpoint into the guarded
// transport's endpoint for Listen.
func guardedEndpoint(ep string) string {
	if rest, ok := strings.CutPrefix(ep, "tcp://"); ok {
		return guardedTCP + "://" + rest
	}
	return guardedIPC + "://" + strings.TrimPrefix(ep, "ipc://")
}

// guardedTransport is a zmq4 transport whose listeners guard their connections.
type guardedTransport struct {
	network string
}

// Dial connects; the connection is guarded like an accepted one, so that a
// client does not hang on a worker that accepts but never answers (stopped).
func (t guardedTransport) Dial(ctx context.Context, d transport.Dialer, addr string) (net.Conn, error) {
	c, err := d.DialContext(ctx, t.network, addr)
	if err != nil {
		return nil, err
	}
	return guard(c, dialHandshakeTimeout), nil
}

// Listen listens on addr; accepted connections are guarded.
func (t guardedTransport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	l, err := net.Listen(t.network, addr)
	if err != nil {
		return nil, err
	}
	return guardedListener{l}, nil
}

// Addr returns the address part of an endpoint unchanged (it was checked by CheckEndpoint).
func (t guardedTransport) Addr(ep string) (string, error) {
	return ep, nil
}

type guardedListener struct {
	net.Listener
}

// Accept returns the next connection, guarded. A connection that zmq4 has not
// adopted within handshakeTimeout (a silent peer, a failed handshake, which
// zmq4 abandons without closing) is closed then.
func (l guardedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return guard(c, handshakeTimeout), nil
}

// guard wraps a new connection and arms its handshake timer.
func guard(c net.Conn, timeout time.Duration) *guardedConn {
	g := &guardedConn{Conn: c, greetLeft: 64}
	time.AfterFunc(timeout, g.closeIfAbandoned)
	return g
}

// Errors of a guarded connection, which it closes.
var (
	errFrameTooLarge = errors.New("worker: a peer announced a ZMTP frame or message over the size limit")
	errNotZMTP       = errors.New("worker: a peer does not speak ZMTP")
)

// guardedConn parses the ZMTP stream read through it: a 64-byte greeting, then
// frames of one flags byte (bit 0 more, bit 1 long, bit 2 command), a 1- or
// 8-byte size and the body.
type guardedConn struct {
	net.Conn

	greetLeft int
	state     int // 0 flags, 1 size bytes, 2 body
	flags     byte
	size      [8]byte
	sizeHave  int
	sizeNeed  int
	bodyLeft  uint64
	msgBytes  uint64
	frames    int
	failed    error

	// handshook is set once the first whole message (the handshake's READY)
	// was read; readsAfter counts the reads begun after that. zmq4 reads an
	// adopted connection without pause, and never again one it abandoned.
	handshook  atomic.Bool
	readsAfter atomic.Int64
}

// closeIfAbandoned closes the connection unless zmq4 completed its handshake
// and reads it.
func (c *guardedConn) closeIfAbandoned() {
	if !c.handshook.Load() || c.readsAfter.Load() == 0 {
		c.Conn.Close()
	}
}

// Read reads from the connection and checks what it read before handing it on.
func (c *guardedConn) Read(p []byte) (int, error) {
	if c.failed != nil {
		return 0, c.failed
	}
	if c.handshook.Load() {
		c.readsAfter.Add(1)
	}
	n, err := c.Conn.Read(p)
	if ferr := c.feed(p[:n]); ferr != nil {
		c.failed = ferr
		c.Conn.Close()
		return 0, ferr
	}
	return n, err
}

// feed advances the parser over b.
func (c *guardedConn) feed(b []byte) error {
	for len(b) > 0 {
		if c.greetLeft > 0 {
			// ZMTP 3 greeting: signature 0xFF, 8 bytes, 0x7F; then the major version.
			switch pos := 64 - c.greetLeft; {
			case pos == 0 && b[0] != 0xFF, pos == 9 && b[0] != 0x7F, pos == 10 && b[0] != 3:
				return fmt.Errorf("%w: not a ZMTP 3 greeting", errNotZMTP)
			}
			c.greetLeft--
			b = b[1:]
			continue
		}
		switch c.state {
		case 0:
			c.flags = b[0]
			b = b[1:]
			if c.flags&^0x07 != 0 {
				return fmt.Errorf("%w: reserved flag bits %#x set", errNotZMTP, c.flags)
			}
			c.sizeHave, c.sizeNeed = 0, 1
			if c.flags&0x02 != 0 {
				c.sizeNeed = 8
			}
			c.state = 1
		case 1:
			k := min(c.sizeNeed-c.sizeHave, len(b))
			copy(c.size[c.sizeHave:], b[:k])
			c.sizeHave += k
			b = b[k:]
			if c.sizeHave < c.sizeNeed {
				continue
			}
			var size uint64
			if c.sizeNeed == 1 {
				size = uint64(c.size[0])
			} else {
				size = binary.BigEndian.Uint64(c.size[:])
			}
			c.frames++
			if size > MaxMessageBytes || c.msgBytes+size > MaxMessageBytes || c.frames > maxFrames {
				return fmt.Errorf("%w (%d bytes in frame %d of a message)", errFrameTooLarge, size, c.frames)
			}
			c.msgBytes += size
			c.bodyLeft = size
			c.state = 2
			if size == 0 {
				c.endFrame()
			}
		case 2:
			k := min(c.bodyLeft, uint64(len(b)))
			c.bodyLeft -= k
			b = b[k:]
			if c.bodyLeft == 0 {
				c.endFrame()
			}
		}
	}
	return nil
}

// endFrame ends a frame; after the last frame of a message the message
// counters restart.
func (c *guardedConn) endFrame() {
	c.state = 0
	if c.flags&0x01 != 0 {
		return
	}
	c.msgBytes, c.frames = 0, 0
	c.handshook.Store(true)
}
