package worker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
)

// syncBuffer is a log sink safe for the worker's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveInProcess runs a worker in this process and returns it with its log.
func serveInProcess(t *testing.T) (*Server, *syncBuffer, Options) {
	t.Helper()
	opts := testOptions(t)
	logs := &syncBuffer{}
	s, err := New(Config{Name: opts.Name, Dir: opts.Dir, IdleTimeout: -1, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	registerTestCommands(s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	}
	opts.NoStart = true
	return s, logs, opts
}

// rawDealer is a bare zmq4 DEALER on the worker's shell socket, and the replies it got.
func rawDealer(t *testing.T, ep string) (zmq4.Socket, <-chan [][]byte) {
	t.Helper()
	d := zmq4.NewDealer(context.Background())
	t.Cleanup(func() { d.Close() })
	if err := d.Dial(ep); err != nil {
		t.Fatal(err)
	}
	got := make(chan [][]byte, 100)
	go func() {
		for {
			m, err := d.Recv()
			if err != nil {
				return
			}
			got <- m.Frames
		}
	}()
	return d, got
}

func TestBadMessagesAreRejectedAndLogged(t *testing.T) {
	t.Parallel()
	s, logs, opts := serveInProcess(t)
	info := s.Info()
	good := signer{key: info.key()}
	wrong := signer{key: bytes.Repeat([]byte{7}, keyBytes)}
	hdr := func(msgType string) header {
		return header{MsgID: newID(), Session: newID(), MsgType: msgType, Date: time.Now().UTC(), Version: ProtocolVersion}
	}
	enc := func(sg signer, h header, content any) [][]byte {
		f, err := sg.encode(h, nil, content)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	d, replies := rawDealer(t, info.Shell)
	send := func(frames ...[]byte) {
		t.Helper()
		if err := d.Send(zmq4.NewMsgFrom(frames...)); err != nil {
			t.Fatal(err)
		}
	}

	send([]byte("garbage"))
	send([]byte{0xff, 0, 1}, []byte("more garbage"))
	send([]byte("<IDS|MSX>"), []byte("00"), []byte("{}"), []byte("{}"), []byte("{}"), []byte("{}"))
	unsigned := enc(good, hdr(typeHeartbeat), struct{}{})
	unsigned[1] = nil
	send(unsigned...)
	send(enc(wrong, hdr(typeHeartbeat), struct{}{})...)
	tampered := enc(good, hdr(typeCommand), commandRequest{Command: "ping"})
	tampered[5] = []byte(`{"command":"shutdown"}`)
	send(tampered...)
	old := hdr(typeHeartbeat)
	old.Date = time.Now().Add(-time.Hour)
	send(enc(good, old, struct{}{})...)
	badVersion := hdr(typeHeartbeat)
	badVersion.Version = "jupyter-5.3"
	send(enc(good, badVersion, struct{}{})...)
	notObject := enc(good, hdr(typeCommand), []int{1})
	send(notObject...)
	// One valid heartbeat, then the very same frames again (a replay).
	valid := enc(good, hdr(typeHeartbeat), struct{}{})
	send(valid...)
	send(valid...)
	// Signed, but naming no command: answered with an error reply.
	noCommand := hdr(typeCommand)
	send(enc(good, noCommand, map[string]string{"command": ""})...)

	var got []message
	timeout := time.After(time.Second)
collect:
	for {
		select {
		case f := <-replies:
			m, _, err := good.decode(f)
			if err != nil {
				t.Fatalf("the worker sent an invalid reply: %v", err)
			}
			got = append(got, m)
		case <-timeout:
			break collect
		}
	}
	if len(got) != 2 || got[0].Header.MsgType != typeHeartbeatReply || got[1].Parent.MsgID != noCommand.MsgID {
		t.Fatalf("want a heartbeat reply and one error reply, got %d replies: %+v", len(got), got)
	}
	var rep commandReply
	if err := json.Unmarshal(got[1].Content, &rep); err != nil || rep.Status != statusError || !strings.Contains(rep.Error, "bad command_request") {
		t.Fatalf("reply to a command_request without a command: %s", got[1].Content)
	}
	log := logs.String()
	for _, want := range []string{"1 frames after the routing prefix, want 6", "2 frames after the routing prefix", "no <IDS|MSG> delimiter", "unsigned", "bad signature", "outside the accepted window", `version \"jupyter-5.3\"`, "content is not a JSON object", "replayed message"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if n := strings.Count(log, "message rejected"); n != 10 {
		t.Errorf("%d messages rejected in the log, want 10:\n%s", n, log)
	}
	// The tampered shutdown was not obeyed: the worker still answers a real client.
	c := connect(t, opts)
	ping(t, c)
}

// zmtpGreeting is a valid ZMTP 3.0 greeting with the NULL mechanism.
func zmtpGreeting() []byte {
	g := make([]byte, 64)
	g[0], g[9], g[10], g[11] = 0xFF, 0x7F, 3, 0
	copy(g[12:], "NULL")
	return g
}

// readyCommand is the NULL mechanism's READY command for a socket type.
func readyCommand(socketType string) []byte {
	body := append([]byte{5}, "READY"...)
	body = append(body, 11)
	body = append(body, "Socket-Type"...)
	body = binary.BigEndian.AppendUint32(body, uint32(len(socketType)))
	body = append(body, socketType...)
	return append([]byte{0x04, byte(len(body))}, body...)
}

// longFrameHeader is the header of a last frame announcing n bytes.
func longFrameHeader(n uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{0x02}, n)
}

// closedByPeer reads from c until the worker closes it.
func closedByPeer(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

func TestRawConnectionsCannotHurtWorker(t *testing.T) {
	t.Parallel()
	s, logs, opts := serveInProcess(t)
	addr := strings.TrimPrefix(s.Info().Shell, "tcp://")
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	// A frame announcing 2^50 bytes, after a valid greeting and handshake.
	huge := dial()
	huge.Write(append(append(zmtpGreeting(), readyCommand("DEALER")...), longFrameHeader(1<<50)...))
	if !closedByPeer(t, huge) {
		t.Fatal("a 2^50-byte frame header did not close the connection")
	}

	// A handshake that zmq4 refuses (a PUB may not talk to a ROUTER); zmq4
	// abandons such a connection without closing it, the guard closes it.
	refused := dial()
	refused.Write(append(zmtpGreeting(), readyCommand("PUB")...))
	if !closedByPeer(t, refused) {
		t.Fatal("a refused handshake left the connection open")
	}

	// Random bytes.
	junk := dial()
	b := make([]byte, 4096)
	rand.Read(b)
	b[0] = 0x42
	junk.Write(b)
	if !closedByPeer(t, junk) {
		t.Fatal("random bytes did not close the connection")
	}

	// A silent peer delays other clients by the handshake timeout at most.
	silent := dial()
	start := time.Now()
	c := connect(t, opts)
	ping(t, c)
	if d := time.Since(start); d > handshakeTimeout+3*time.Second {
		t.Fatalf("a silent connection held others up for %s", d)
	}
	if !closedByPeer(t, silent) {
		t.Fatal("the silent connection was not closed")
	}
	if !strings.Contains(logs.String(), "could not open a ZMTP connection") {
		t.Errorf("rejected connections not logged:\n%s", logs.String())
	}
	ping(t, c)
}

func TestDecodeNeverPanics(t *testing.T) {
	sg := signer{key: bytes.Repeat([]byte{1}, keyBytes)}
	good, err := sg.encode(header{MsgID: "a", Session: "b", MsgType: typeHeartbeat, Date: time.Now(), Version: ProtocolVersion}, nil, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := sg.decode(good); err != nil {
		t.Fatalf("a good message: %v", err)
	}
	for i := 0; i < 2000; i++ {
		frames := make([][]byte, len(good))
		for j := range good {
			frames[j] = append([]byte(nil), good[j]...)
		}
		f := frames[i%len(frames)]
		if len(f) > 0 {
			f[i%len(f)] ^= byte(1 + i%255)
		}
		if _, _, err := sg.decode(frames); err == nil {
			t.Fatalf("a message with frame %d altered was accepted", i%len(frames))
		}
		n := i % 9
		if _, _, err := sg.decode(frames[:min(n, len(frames))]); err == nil {
			t.Fatalf("%d frames accepted", n)
		}
	}
}

func TestReplayGuard(t *testing.T) {
	g := newReplayGuard()
	now := time.Now()
	if err := g.check([]byte("s1"), now, now); err != nil {
		t.Fatal(err)
	}
	if err := g.check([]byte("s1"), now, now.Add(time.Second)); !errors.Is(err, errReplayed) {
		t.Fatalf("replay: %v", err)
	}
	if err := g.check([]byte("s2"), now.Add(-3*time.Minute), now); !errors.Is(err, errStale) {
		t.Fatalf("old message: %v", err)
	}
	if err := g.check([]byte("s3"), now.Add(3*time.Minute), now); !errors.Is(err, errStale) {
		t.Fatalf("future message: %v", err)
	}
}

func TestGuardedConnLimits(t *testing.T) {
	t.Parallel()
	feed := func(b []byte) error {
		c := &guardedConn{greetLeft: 64}
		return c.feed(append(zmtpGreeting(), b...))
	}
	long := func(flags byte, n uint64) []byte {
		b := make([]byte, 9)
		b[0] = flags | 0x02
		binary.BigEndian.PutUint64(b[1:], n)
		return b
	}
	if err := feed(long(0, MaxMessageBytes+1)); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("oversized frame: %v", err)
	}
	// Two frames of one message that together pass the limit.
	two := append(long(0x01, MaxMessageBytes/2+1), make([]byte, MaxMessageBytes/2+1)...)
	if err := feed(append(two, long(0, MaxMessageBytes/2+1)...)); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("oversized message: %v", err)
	}
	many := bytes.Repeat([]byte{0x01, 0}, maxFrames+1)
	if err := feed(many); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("%d frames: %v", maxFrames+1, err)
	}
	if err := feed([]byte{0x80, 0}); !errors.Is(err, errNotZMTP) {
		t.Fatalf("reserved flags: %v", err)
	}
	c := &guardedConn{greetLeft: 64}
	if err := c.feed([]byte("GET / HTTP/1.1\r\n")); !errors.Is(err, errNotZMTP) {
		t.Fatalf("HTTP request: %v", err)
	}
	// Messages within the limits pass, split across reads anywhere.
	ok := append(zmtpGreeting(), 0x01, 3, 'a', 'b', 'c', 0x00, 0)
	ok = append(ok, long(0, 300)...)
	ok = append(ok, make([]byte, 300)...)
	c = &guardedConn{greetLeft: 64}
	for _, b := range ok {
		if err := c.feed([]byte{b}); err != nil {
			t.Fatalf("a valid stream refused: %v", err)
		}
	}
	if c.state != 0 || !c.handshook.Load() {
		t.Fatalf("parser state %d, handshook %v", c.state, c.handshook.Load())
	}
}

func TestEndpointsAndConnectionFiles(t *testing.T) {
	for _, ep := range []string{"tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://localhost:5555", "tcp://192.168.1.2:5555", "tcp://[::1]:5555",
		"tcp://127.0.0.1:0", "tcp://127.0.0.1:99999", "udp://127.0.0.1:5555", "inproc://x", "ipc://relative.sock", "ipc:///a/../b.sock",
		"ipc:///" + strings.Repeat("x", 120), "127.0.0.1:5555", ""} {
		if err := CheckEndpoint(ep, false); err == nil {
			t.Errorf("endpoint %q accepted", ep)
		}
	}
	for _, ep := range []string{"tcp://127.0.0.1:5555", "ipc:///run/user/1000/mmft/worker.sock"} {
		if err := CheckEndpoint(ep, false); err != nil {
			t.Errorf("endpoint %q refused: %v", ep, err)
		}
	}
	if err := CheckEndpoint("tcp://127.0.0.1:0", true); err != nil {
		t.Errorf("listening on port 0 refused: %v", err)
	}

	dir := t.TempDir()
	path := ConnectionFile(dir, "x")
	info := ConnectionInfo{Name: "x", PID: os.Getpid(), Shell: "tcp://127.0.0.1:5000", Events: "tcp://127.0.0.1:5001",
		Key: strings.Repeat("0f", keyBytes), SignatureScheme: SignatureScheme, Version: ProtocolVersion, Started: time.Now().UTC()}
	if err := writeConnectionFile(path, info); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o", st.Mode().Perm())
	}
	if got, err := ReadConnectionFile(path); err != nil || got.Key != info.Key || !got.alive() {
		t.Fatalf("read back: %+v %v", got, err)
	}
	os.Chmod(path, 0o644)
	if _, err := ReadConnectionFile(path); err == nil || !strings.Contains(err.Error(), "others may read its key") {
		t.Fatalf("a 0644 connection file: %v", err)
	}
	for name, mutate := range map[string]func(*ConnectionInfo){
		"wildcard address": func(i *ConnectionInfo) { i.Shell = "tcp://0.0.0.0:5000" },
		"short key":        func(i *ConnectionInfo) { i.Key = "abcd" },
		"other scheme":     func(i *ConnectionInfo) { i.SignatureScheme = "hmac-md5" },
		"other protocol":   func(i *ConnectionInfo) { i.Version = "mmft-worker/0" },
	} {
		bad := info
		mutate(&bad)
		if err := writeConnectionFile(path, bad); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadConnectionFile(path); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	os.WriteFile(path, []byte("{not json"), 0o600)
	if _, err := ReadConnectionFile(path); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("corrupt file: %v", err)
	}
	for _, name := range []string{"", "../x", "a/b", strings.Repeat("n", 65), "-x"} {
		if _, err := New(Config{Name: name}); err == nil && name != "" {
			t.Errorf("name %q accepted", name)
		}
	}
	if _, err := New(Config{Transport: "udp"}); err == nil {
		t.Error("transport udp accepted")
	}
}

func TestSecondWorkerWithSameNameRefused(t *testing.T) {
	opts := testOptions(t)
	c := connect(t, opts)
	s, err := New(Config{Name: opts.Name, Dir: opts.Dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Serve(context.Background())
	if err == nil || !strings.Contains(err.Error(), "already runs") {
		t.Fatalf("a second worker of the same name: %v", err)
	}
	ping(t, c) // the first one is untouched
	if info, err := ReadConnectionFile(ConnectionFile(opts.Dir, opts.Name)); err != nil || info.PID != c.Info().PID {
		t.Fatalf("the first worker's file changed: %+v %v", info, err)
	}
}
