package worker

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"
)

// Handler runs one command. req is the request's JSON argument (null when the
// caller sent none). progress publishes an event (any JSON-encodable value) to
// the caller, in order; it may be called from any goroutine until the handler
// returns, and does nothing after. The returned value is JSON-encoded into the
// reply. ctx is cancelled when the caller cancels (an interrupted cell) or the
// worker stops; a handler should return soon after, with ctx.Err() or its own
// error. A panic in the handler's own goroutine becomes an error reply.
type Handler func(ctx context.Context, req json.RawMessage, progress func(event any)) (any, error)

// Defaults of Config and Options.
const (
	DefaultIdleTimeout = 30 * time.Minute
	// stopGrace is how long a stopping worker waits for its running commands.
	stopGrace = 5 * time.Second
)

// Config configures a worker server.
type Config struct {
	// Name tells workers apart; it names the connection file (default "default").
	Name string
	// Dir is the runtime folder of the connection file, log and ipc sockets
	// (default RuntimeDir()).
	Dir string
	// Transport is "tcp" (127.0.0.1, ports chosen by the OS; the default) or "ipc"
	// (unix sockets in Dir).
	Transport string
	// IdleTimeout ends the worker after this long with no request and no command
	// running (0: DefaultIdleTimeout; negative: never).
	IdleTimeout time.Duration
	// ParentPID, when not 0, ends the worker once that process (the kernel that
	// started it) is gone.
	ParentPID int
	// Logger receives the worker's log: start, stop, rejected messages, handler
	// panics (default: text to stderr).
	Logger *slog.Logger
}

// BindFlags defines the flags of `mmft worker` on fs, bound to c's fields.
// Connect starts a worker with these flags.
func (c *Config) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Name, "name", DefaultName, "worker name; it names the connection file worker-NAME.json")
	fs.StringVar(&c.Dir, "dir", "", "runtime folder for the connection file, log and ipc sockets (default $XDG_RUNTIME_DIR/mmft or ~/.cache/mmft)")
	fs.StringVar(&c.Transport, "transport", "tcp", "tcp (127.0.0.1, ports chosen by the OS) or ipc (unix sockets in the runtime folder)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", DefaultIdleTimeout, "exit after this long without requests (negative: never)")
	fs.IntVar(&c.ParentPID, "parent-pid", 0, "exit when this process (the kernel that started the worker) is gone")
}

// Server is a worker: it serves registered commands over ZeroMQ until it is
// shut down, idle for IdleTimeout, its parent is gone or Serve's context ends.
type Server struct {
	cfg     Config
	log     *slog.Logger
	started time.Time

	mu       sync.Mutex
	handlers map[string]registered
	inflight map[string]*inflight // by request id
	active   int                  // commands queued or running
	lastUse  time.Time
	stopping bool // no new commands once set

	exclusive chan struct{} // held by the running exclusive command
	serving   atomic.Bool
	ready     chan struct{}
	stop      chan string // the reason to stop
	file      string
	info      ConnectionInfo
	sign      signer
	replay    *replayGuard
	router    zmq4.Socket
	pub       zmq4.Socket
	wg        sync.WaitGroup
}

type registered struct {
	h          Handler
	concurrent bool
}

// inflight is a command queued or running.
type inflight struct {
	name    string
	id      string
	session string
	since   time.Time
	running bool
	cancel  context.CancelFunc
}

// New returns a worker with the built-in commands ping, status, sleep and
// shutdown registered; register more with Register, then call Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if err := checkName(cfg.Name); err != nil {
		return nil, err
	}
	switch cfg.Transport {
	case "":
		cfg.Transport = "tcp"
	case "tcp", "ipc":
	default:
		return nil, fmt.Errorf("worker: transport %q: use tcp (loopback) or ipc", cfg.Transport)
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.ParentPID < 0 {
		return nil, fmt.Errorf("worker: parent pid %d: give a process id, or 0 for none", cfg.ParentPID)
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	s := &Server{
		cfg:       cfg,
		log:       lg.With("worker", cfg.Name),
		handlers:  make(map[string]registered),
		inflight:  make(map[string]*inflight),
		exclusive: make(chan struct{}, 1),
		ready:     make(chan struct{}),
		stop:      make(chan string, 1),
		replay:    newReplayGuard(),
	}
	s.mustRegister("ping", s.ping, true)
	s.mustRegister("status", s.status, true)
	s.mustRegister("shutdown", s.shutdown, true)
	s.mustRegister("sleep", Sleep, false)
	return s, nil
}

func (s *Server) mustRegister(name string, h Handler, concurrent bool) {
	if err := s.register(name, h, concurrent); err != nil {
		panic(err) // the built-in names are valid and distinct
	}
}

// Register adds a command. Commands registered here run one at a time, in the
// order they arrive (they own the model, the GPU, the data cursor); a caller
// whose command waits in the queue may cancel it there. It fails on an empty or
// taken name or a nil handler.
func (s *Server) Register(name string, h Handler) error {
	return s.register(name, h, false)
}

// RegisterConcurrent adds a command that runs at once, beside whatever command
// is running (for read-only queries such as status).
func (s *Server) RegisterConcurrent(name string, h Handler) error {
	return s.register(name, h, true)
}

func (s *Server) register(name string, h Handler, concurrent bool) error {
	if name == "" || len(name) > maxHeaderFieldLength || strings.TrimSpace(name) != name {
		return fmt.Errorf("worker: command name %q: use a non-empty word of at most %d bytes", name, maxHeaderFieldLength)
	}
	if h == nil {
		return fmt.Errorf("worker: command %q: nil handler", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.handlers[name]; dup {
		return fmt.Errorf("worker: command %q is already registered", name)
	}
	s.handlers[name] = registered{h: h, concurrent: concurrent}
	return nil
}

// Ready is closed once the worker listens and its connection file is written.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Info returns the connection file's content; valid once Ready is closed.
func (s *Server) Info() ConnectionInfo { return s.info }

// ConnectionFile returns the path of the connection file; valid once Ready is closed.
func (s *Server) ConnectionFile() string { return s.file }

// Serve listens, writes the connection file and serves until the worker is
// shut down (the shutdown command), idle for IdleTimeout, its parent process is
// gone, or ctx ends (wire SIGTERM and SIGINT to ctx). It then cancels running
// commands, waits up to 5 s for them, removes the connection file and returns
// nil. It fails if a live worker of the same name already has a connection file.
func (s *Server) Serve(ctx context.Context) error {
	if !s.serving.CompareAndSwap(false, true) {
		return errors.New("worker: Serve called twice")
	}
	if err := registerGuard(); err != nil {
		return fmt.Errorf("worker: registering the guarded transports: %w", err)
	}
	dir, err := resolveDir(s.cfg.Dir)
	if err != nil {
		return err
	}
	s.file = ConnectionFile(dir, s.cfg.Name)
	if old, err := ReadConnectionFile(s.file); err == nil && old.alive() && old.PID != os.Getpid() {
		return fmt.Errorf("worker: a worker named %q already runs (pid %d, connection file %s); stop it (mmft worker has a shutdown command; or kill %d) or pick another --name", s.cfg.Name, old.PID, s.file, old.PID)
	}
	key, err := newKey()
	if err != nil {
		return err
	}
	s.sign = signer{key: key}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	zlog := zmq4.WithLogger(log.New(&slogWriter{s.log}, "", 0))
	s.router = zmq4.NewRouter(ctx, zlog, zmq4.WithTimeout(30*time.Second))
	s.pub = zmq4.NewPub(ctx, zlog, zmq4.WithTimeout(30*time.Second))
	defer s.pub.Close()
	defer s.router.Close()

	shell, events, err := s.listen(dir)
	if err != nil {
		return err
	}
	now := time.Now()
	s.started = now
	s.lastUse = now
	s.info = ConnectionInfo{
		Name:            s.cfg.Name,
		PID:             os.Getpid(),
		ProcStart:       procStart(os.Getpid()),
		Shell:           shell,
		Events:          events,
		Key:             hex.EncodeToString(key),
		SignatureScheme: SignatureScheme,
		Version:         ProtocolVersion,
		Started:         now.UTC(),
	}
	if err := writeConnectionFile(s.file, s.info); err != nil {
		return err
	}
	defer removeIfOurs(s.file, s.info.PID, s.info.Key)
	s.log.Info("worker ready", "pid", s.info.PID, "shell", shell, "events", events, "connection_file", s.file)
	close(s.ready)

	go s.receive(ctx)
	reason := s.watch(ctx)
	s.log.Info("worker stopping", "reason", reason)
	s.cancelAll()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(stopGrace):
		s.log.Warn("commands still running at exit; they did not return within the grace period", "grace", stopGrace)
	}
	return nil
}

// listen binds the ROUTER and PUB sockets and returns their endpoints.
func (s *Server) listen(dir string) (shell, events string, err error) {
	eps := []string{"tcp://127.0.0.1:0", "tcp://127.0.0.1:0"}
	if s.cfg.Transport == "ipc" {
		eps = []string{
			"ipc://" + filepath.Join(dir, "worker-"+s.cfg.Name+"-shell.sock"),
			"ipc://" + filepath.Join(dir, "worker-"+s.cfg.Name+"-events.sock"),
		}
	}
	socks := []zmq4.Socket{s.router, s.pub}
	for i, ep := range eps {
		if err := CheckEndpoint(ep, true); err != nil {
			return "", "", err
		}
		if path, ok := strings.CutPrefix(ep, "ipc://"); ok {
			os.Remove(path) // a socket left by a worker that was killed
		}
		if err := socks[i].Listen(guardedEndpoint(ep)); err != nil {
			return "", "", fmt.Errorf("worker: listening on %s: %w", ep, err)
		}
		if path, ok := strings.CutPrefix(ep, "ipc://"); ok {
			defer func() {
				if err != nil {
					os.Remove(path)
				}
			}()
			if err := os.Chmod(path, 0o600); err != nil {
				return "", "", fmt.Errorf("worker: restricting %s: %w", path, err)
			}
			continue
		}
		eps[i] = "tcp://" + socks[i].Addr().String()
	}
	return eps[0], eps[1], nil
}

// watch waits for a reason to stop and returns it.
func (s *Server) watch(ctx context.Context) string {
	tick := time.Second
	if s.cfg.IdleTimeout > 0 {
		tick = min(tick, max(s.cfg.IdleTimeout/4, 10*time.Millisecond))
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return "stopped: " + context.Cause(ctx).Error()
		case why := <-s.stop:
			return why
		case <-t.C:
		}
		if s.cfg.ParentPID != 0 && !processAlive(s.cfg.ParentPID, 0) {
			return fmt.Sprintf("parent process %d is gone", s.cfg.ParentPID)
		}
		if s.cfg.IdleTimeout > 0 {
			s.mu.Lock()
			idle := s.active == 0 && time.Since(s.lastUse) >= s.cfg.IdleTimeout
			s.mu.Unlock()
			if idle {
				return fmt.Sprintf("idle for %s", s.cfg.IdleTimeout)
			}
		}
	}
}

// requestStop asks Serve to stop.
func (s *Server) requestStop(why string) {
	select {
	case s.stop <- why:
	default:
	}
}

// cancelAll cancels every queued and running command and refuses new ones.
func (s *Server) cancelAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping = true
	for _, c := range s.inflight {
		c.cancel()
	}
}

// receive reads the ROUTER socket until ctx ends.
func (s *Server) receive(ctx context.Context) {
	for {
		m, err := s.router.Recv()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.log.Warn("receive failed", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.handle(ctx, m.Frames)
	}
}

// handle checks one incoming message and acts on it. Nothing a peer sends can
// make it panic out: a bug here is logged and the message dropped.
func (s *Server) handle(ctx context.Context, frames [][]byte) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("internal error handling a message; message dropped", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	if len(frames) < 2 {
		s.log.Warn("message rejected", "reason", "no routing identity")
		return
	}
	peer := frames[0]
	m, sig, err := s.sign.decode(frames[1:])
	if err == nil {
		err = s.replay.check(sig, m.Header.Date, time.Now())
	}
	if err != nil {
		s.log.Warn("message rejected", "reason", err.Error(), "peer", hex.EncodeToString(peer[:min(len(peer), 16)]))
		return
	}
	s.touch()
	switch m.Header.MsgType {
	case typeHeartbeat:
		s.reply(peer, typeHeartbeatReply, m.Header, struct{}{})
	case typeHello:
		s.publish(m.Header.Session, typeWelcome, m.Header, struct{}{})
		s.reply(peer, typeHelloReply, m.Header, map[string]any{"pid": os.Getpid(), "name": s.cfg.Name})
	case typeCancel:
		var c cancelRequest
		if err := json.Unmarshal(m.Content, &c); err != nil {
			s.log.Warn("cancel_request rejected", "reason", err.Error())
			return
		}
		s.cancel(c.RequestID, m.Header.Session)
	case typeCommand:
		s.command(ctx, peer, m)
	default:
		s.log.Warn("message rejected", "reason", "unknown msg_type "+m.Header.MsgType)
	}
}

// touch records use, for the idle timeout.
func (s *Server) touch() {
	s.mu.Lock()
	s.lastUse = time.Now()
	s.mu.Unlock()
}

// cancel cancels the command with this request id if the session sent it.
func (s *Server) cancel(id, session string) {
	s.mu.Lock()
	c, ok := s.inflight[id]
	s.mu.Unlock()
	if !ok || c.session != session {
		s.log.Info("cancel of a command not in flight", "request", id)
		return
	}
	s.log.Info("cancelling", "command", c.name, "request", id)
	c.cancel()
}

// command starts a command_request in its own goroutine.
func (s *Server) command(ctx context.Context, peer []byte, m message) {
	var req commandRequest
	if err := json.Unmarshal(m.Content, &req); err != nil || req.Command == "" {
		s.reply(peer, typeCommandReply, m.Header, commandReply{Status: statusError, Error: fmt.Sprintf("worker: bad command_request: want {\"command\": NAME, \"args\": ...} (%v)", err)})
		return
	}
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		s.reply(peer, typeCommandReply, m.Header, commandReply{Status: statusError, Error: "worker: " + req.Command + ": refused, the worker is stopping (shutdown, idle timeout, parent gone or a signal)"})
		return
	}
	r, ok := s.handlers[req.Command]
	if !ok {
		names := s.commandNames()
		s.mu.Unlock()
		s.reply(peer, typeCommandReply, m.Header, commandReply{Status: statusError, Error: fmt.Sprintf("worker: unknown command %q; this worker has: %s", req.Command, strings.Join(names, ", "))})
		return
	}
	if _, dup := s.inflight[m.Header.MsgID]; dup {
		s.mu.Unlock()
		s.log.Warn("message rejected", "reason", "a command with this request id is in flight", "request", m.Header.MsgID)
		return
	}
	cctx, cancel := context.WithCancel(context.WithValue(ctx, requestIDKey{}, m.Header.MsgID))
	c := &inflight{name: req.Command, id: m.Header.MsgID, session: m.Header.Session, since: time.Now(), cancel: cancel}
	s.inflight[c.id] = c
	s.active++
	s.wg.Add(1)
	s.mu.Unlock()
	args := req.Args
	if len(args) == 0 {
		args = json.RawMessage("null")
	}
	go func() {
		defer s.wg.Done()
		rep := s.execute(cctx, c, r, args, m.Header)
		// Out of the books before the reply, so that the caller's next status
		// no longer lists it.
		cancel()
		s.mu.Lock()
		delete(s.inflight, c.id)
		s.active--
		s.lastUse = time.Now()
		s.mu.Unlock()
		s.reply(peer, typeCommandReply, m.Header, rep)
	}()
}

// execute waits for the exclusive slot if the command needs it, then runs it.
func (s *Server) execute(ctx context.Context, c *inflight, r registered, args json.RawMessage, req header) commandReply {
	if !r.concurrent {
		select {
		case s.exclusive <- struct{}{}:
			defer func() { <-s.exclusive }()
		case <-ctx.Done():
			return commandReply{Status: statusCancelled, Error: "worker: " + c.name + ": cancelled while waiting for the running command"}
		}
	}
	s.mu.Lock()
	c.running = true
	c.since = time.Now()
	s.mu.Unlock()
	return s.run(ctx, r.h, c.name, args, req)
}

// run calls a handler, turning a panic into an error reply, and returns the reply.
func (s *Server) run(ctx context.Context, h Handler, name string, args json.RawMessage, req header) (rep commandReply) {
	var mu sync.Mutex
	seq, done := 0, false
	progress := func(event any) {
		b, err := json.Marshal(event)
		if err != nil {
			s.log.Warn("progress event dropped: not JSON-encodable", "command", name, "err", err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if done {
			s.log.Warn("progress event after the command returned; dropped", "command", name)
			return
		}
		if s.publish(req.Session, typeProgress, req, progressContent{Seq: seq + 1, Event: b}) {
			seq++
		}
	}
	defer func() {
		mu.Lock()
		done = true
		rep.Events = seq
		mu.Unlock()
	}()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("command panicked", "command", name, "panic", r, "stack", string(debug.Stack()))
			rep = commandReply{Status: statusError, Panicked: true, Error: fmt.Sprintf("worker: command %s panicked: %v", name, r)}
		}
	}()
	result, err := h(ctx, args, progress)
	switch {
	case err != nil && ctx.Err() != nil:
		return commandReply{Status: statusCancelled, Error: fmt.Sprintf("worker: %s: %v", name, err)}
	case err != nil:
		return commandReply{Status: statusError, Error: err.Error()}
	}
	b, err := json.Marshal(result)
	if err != nil {
		return commandReply{Status: statusError, Error: fmt.Sprintf("worker: %s: the result is not JSON-encodable: %v", name, err)}
	}
	return commandReply{Status: statusOK, Result: b}
}

// reply sends a signed message to one peer on the ROUTER socket.
func (s *Server) reply(peer []byte, msgType string, parent header, content any) {
	frames, err := s.sign.encode(s.header(msgType, parent.Session), &parent, content)
	if err != nil {
		s.log.Error("reply not sent", "err", err)
		if msgType == typeCommandReply {
			frames, err = s.sign.encode(s.header(msgType, parent.Session), &parent, commandReply{Status: statusError, Error: err.Error()})
		}
		if err != nil {
			return
		}
	}
	if err := s.router.Send(zmq4.NewMsgFrom(append([][]byte{peer}, frames...)...)); err != nil {
		s.log.Warn("reply not sent", "type", msgType, "err", err)
	}
}

// publish sends a signed event on the PUB socket to the session's topic.
func (s *Server) publish(session, msgType string, parent header, content any) bool {
	frames, err := s.sign.encode(s.header(msgType, session), &parent, content)
	if err != nil {
		s.log.Warn("event not sent", "type", msgType, "err", err)
		return false
	}
	if err := s.pub.Send(zmq4.NewMsgFrom(append([][]byte{[]byte(session)}, frames...)...)); err != nil {
		s.log.Warn("event not sent", "type", msgType, "err", err)
		return false
	}
	return true
}

// header returns a new header from the worker.
func (s *Server) header(msgType, session string) header {
	return header{MsgID: newID(), Session: session, MsgType: msgType, Date: time.Now().UTC(), Version: ProtocolVersion}
}

// commandNames returns the registered command names, sorted; s.mu must be held.
func (s *Server) commandNames() []string {
	names := make([]string, 0, len(s.handlers))
	for n := range s.handlers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

type requestIDKey struct{}

// RequestID returns the id of the request a handler's ctx belongs to ("" outside a handler).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// slogWriter turns zmq4's log lines into warnings of the worker's log.
type slogWriter struct {
	log *slog.Logger
}

func (w *slogWriter) Write(p []byte) (int, error) {
	w.log.Warn("zmq4: " + strings.TrimSpace(string(p)))
	return len(p), nil
}
