package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-zeromq/zmq4"
)

// Defaults of Options.
const (
	DefaultStartTimeout      = 60 * time.Second
	DefaultHeartbeatInterval = time.Second
	DefaultHeartbeatTimeout  = 20 * time.Second
	DefaultCancelGrace       = 5 * time.Second
	// maxQueuedEvents bounds the progress events a Call holds for its callback;
	// beyond it new events are dropped (their Seq numbers show the gap).
	maxQueuedEvents = 1 << 16
)

// Errors a Call or Connect returns; test them with errors.Is.
var (
	// ErrWorkerDown: the worker process exited, or stopped answering heartbeats
	// (then the client killed it). The next Call starts a new worker.
	ErrWorkerDown = errors.New("the worker is down")
	// ErrNoWorker: Options.NoStart is set and no worker runs.
	ErrNoWorker = errors.New("no worker is running")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("the worker client is closed")
)

// CommandError is a command's failure as the worker reported it.
type CommandError struct {
	Command string
	Message string
	// Panicked is true when the handler panicked (the worker carries on).
	Panicked bool
}

// Error returns the worker's message, which names the command.
func (e *CommandError) Error() string {
	return e.Message
}

// Options configures Connect.
type Options struct {
	// Name of the worker (default "default").
	Name string
	// Dir is the runtime folder (default RuntimeDir()).
	Dir string
	// Command starts a worker when none runs: the program and its first
	// arguments, to which Connect appends --name, --dir, --transport,
	// --idle-timeout and --parent-pid (default: "mmft worker", mmft found in PATH).
	Command []string
	// Env is added to the started worker's environment.
	Env []string
	// NoStart makes Connect fail with ErrNoWorker rather than start a worker.
	NoStart bool
	// Transport, IdleTimeout and ParentPID are passed to a started worker (see Config).
	Transport   string
	IdleTimeout time.Duration
	ParentPID   int
	// StartTimeout bounds starting a worker and the handshake (default 60 s).
	StartTimeout time.Duration
	// HeartbeatInterval and HeartbeatTimeout: during a Call the client sends a
	// heartbeat every interval; a worker that answers none for HeartbeatTimeout
	// is declared down (defaults 1 s and 20 s).
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	// CancelGrace is how long a cancelled Call waits for the worker to confirm
	// that the command stopped (default 5 s).
	CancelGrace time.Duration
}

// Event is a progress or metrics event of a command.
type Event struct {
	// RequestID is the id of the request that published it.
	RequestID string
	// Seq numbers the events of one request from 1.
	Seq int
	// Data is the event as the handler gave it, JSON-encoded.
	Data json.RawMessage
}

// Decode decodes the event's data into v.
func (e Event) Decode(v any) error {
	return json.Unmarshal(e.Data, v)
}

// Client talks to one worker. Its methods are safe for concurrent use.
type Client struct {
	opts Options
	dir  string

	mu     sync.Mutex
	conn   *conn // nil after the worker went down, until the next Call
	closed bool
}

// Connect finds the worker named in opts through its connection file, or
// starts one (unless opts.NoStart) and waits until it answers. A stale file
// (its process gone) is removed.
func Connect(ctx context.Context, opts Options) (*Client, error) {
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if err := checkName(opts.Name); err != nil {
		return nil, err
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if opts.HeartbeatTimeout <= 0 {
		opts.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if opts.CancelGrace <= 0 {
		opts.CancelGrace = DefaultCancelGrace
	}
	dir, err := resolveDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	c := &Client{opts: opts, dir: dir}
	cn, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	c.conn = cn
	return c, nil
}

// Info returns the connection file of the worker the client talks to now
// (zero when the worker is down).
func (c *Client) Info() ConnectionInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return ConnectionInfo{}
	}
	return c.conn.info
}

// Call runs the command name with req (JSON-encoded; nil sends null) and
// decodes its result into resp (nil ignores it). onProgress, if not nil, is
// called in the caller's goroutine with each event of the command, in order,
// all before Call returns. Cancelling ctx cancels the command in the worker
// and returns an error wrapping ctx's error once the worker confirms (or after
// Options.CancelGrace). A failed command returns a *CommandError; a worker that
// died returns an error wrapping ErrWorkerDown, and the next Call starts a new
// worker.
func (c *Client) Call(ctx context.Context, name string, req, resp any, onProgress func(Event)) error {
	args, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("worker: %s: encoding the request: %w", name, err)
	}
	cn, err := c.current(ctx)
	if err != nil {
		return err
	}
	result, err := cn.call(ctx, name, args, onProgress)
	if errors.Is(err, ErrWorkerDown) {
		c.mu.Lock()
		if c.conn == cn {
			c.conn = nil
		}
		c.mu.Unlock()
		cn.close()
	}
	if err != nil {
		return err
	}
	if resp != nil {
		if err := json.Unmarshal(result, resp); err != nil {
			return fmt.Errorf("worker: %s: decoding the result into %T: %w", name, resp, err)
		}
	}
	return nil
}

// current returns the live connection, starting a new worker if the last one
// went down. A worker found dead here (it died between calls) is reported
// once as ErrWorkerDown; the Call after that starts a new one.
func (c *Client) current(ctx context.Context) (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.conn != nil {
		if err := c.conn.down(); err != nil {
			c.conn.close()
			c.conn = nil
			return nil, err
		}
		return c.conn, nil
	}
	cn, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	c.conn = cn
	return cn, nil
}

// Shutdown asks the worker to exit and waits (up to 10 s) until its process
// is gone, then closes the client.
func (c *Client) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	cn := c.conn
	c.mu.Unlock()
	defer c.Close()
	if cn == nil {
		return nil
	}
	if err := c.Call(ctx, "shutdown", nil, nil, nil); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for cn.down() == nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("worker: pid %d did not exit within 10 s of shutdown", cn.info.PID)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("worker: waiting for pid %d to exit: %w", cn.info.PID, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Close closes the client's sockets; the worker keeps running.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.conn != nil {
		c.conn.close()
		c.conn = nil
	}
	return nil
}

// open finds a running worker or starts one, under the lock file.
func (c *Client) open(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.StartTimeout)
	defer cancel()
	unlock, err := lockFile(ctx, ConnectionFile(c.dir, c.opts.Name)+".lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	path := ConnectionFile(c.dir, c.opts.Name)
	info, err := ReadConnectionFile(path)
	switch {
	case err == nil && info.alive():
		cn, err := c.dial(ctx, info, nil)
		switch {
		case err == nil:
			return cn, nil
		case errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT):
			os.Remove(path) // stale: nothing listens where it says
		default:
			return nil, fmt.Errorf("%w; if it is stuck, stop it (kill %d) and try again", err, info.PID)
		}
	case err == nil:
		os.Remove(path) // stale: its process is gone
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, errInsecureFile):
		return nil, err
	case liveOwner(path):
		// Another version of the worker, say, still running: starting a second
		// one beside it would fight it for the GPU.
		return nil, err
	default:
		os.Remove(path) // unreadable or invalid, and its process is gone
	}
	if c.opts.NoStart {
		return nil, fmt.Errorf("worker: %w (no live worker named %q in %s)", ErrNoWorker, c.opts.Name, c.dir)
	}
	return c.start(ctx)
}

// liveOwner reports whether an invalid connection file still names a live process.
func liveOwner(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil || len(b) > maxConnectionFileBytes {
		return false
	}
	var owner struct {
		PID       int    `json:"pid"`
		ProcStart uint64 `json:"proc_start"`
	}
	return json.Unmarshal(b, &owner) == nil && owner.PID != os.Getpid() && processAlive(owner.PID, owner.ProcStart)
}

// start starts a worker process and connects to it.
func (c *Client) start(ctx context.Context) (*conn, error) {
	argv := c.opts.Command
	if len(argv) == 0 {
		exe, err := exec.LookPath("mmft")
		if err != nil {
			return nil, fmt.Errorf("worker: cannot start a worker: mmft is not in PATH (%w); install it (go install github.com/mmft-go/mmft/cmd/mmft) or set the worker command", err)
		}
		argv = []string{exe, "worker"}
	}
	args := append(append([]string{}, argv[1:]...),
		"--name", c.opts.Name, "--dir", c.dir,
		"--idle-timeout", c.idleTimeout().String(),
		"--parent-pid", strconv.Itoa(c.opts.ParentPID))
	if c.opts.Transport != "" {
		args = append(args, "--transport", c.opts.Transport)
	}
	logPath := LogFile(c.dir, c.opts.Name)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("worker: opening the worker log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], args...)
	cmd.Env = append(os.Environ(), c.opts.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: an interrupt sent to the cell's process group must not reach the worker.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("worker: starting %s: %w", strings.Join(argv, " "), err)
	}
	p := &proc{p: cmd.Process, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	path := ConnectionFile(c.dir, c.opts.Name)
	for {
		if info, err := ReadConnectionFile(path); err == nil && info.PID == cmd.Process.Pid {
			cn, err := c.dial(ctx, info, p)
			if err != nil {
				cmd.Process.Kill()
			}
			return cn, err
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("worker: the worker (%s) exited before it was ready: %v; its log %s ends with:\n%s", strings.Join(argv, " "), p.err, logPath, logTail(logPath))
		case <-ctx.Done():
			cmd.Process.Kill()
			return nil, fmt.Errorf("worker: the worker (pid %d) was not ready in time (%w); its log %s ends with:\n%s", cmd.Process.Pid, ctx.Err(), logPath, logTail(logPath))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (c *Client) idleTimeout() time.Duration {
	if c.opts.IdleTimeout == 0 {
		return DefaultIdleTimeout
	}
	return c.opts.IdleTimeout
}

// logTail returns the last lines of a log file (from its last 16 KiB).
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 16<<10 {
		f.Seek(st.Size()-16<<10, io.SeekStart)
	}
	b, err := io.ReadAll(io.LimitReader(f, 16<<10))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-10):], "\n")
}

// proc is a worker process this client started.
type proc struct {
	p      *os.Process
	exited chan struct{}
	err    error
}

// conn is one connection to one worker process.
type conn struct {
	opts    Options
	info    ConnectionInfo
	file    string
	sign    signer
	session string
	proc    *proc // nil when the worker was found, not started
	dealer  zmq4.Socket
	sub     zmq4.Socket
	cancel  context.CancelFunc
	sendMu  sync.Mutex

	mu       sync.Mutex
	pending  map[string]*pending
	welcome  chan struct{}
	lastBeat atomic.Int64 // unix nanoseconds of the last heartbeat reply
}

// pending is a request waiting for its reply and events.
type pending struct {
	reply  chan commandReply
	notify chan struct{} // signalled when events arrive
	events []Event
}

// dial connects to a worker and completes the handshake: it sends hello
// requests until both the reply and the welcome event on the subscription
// arrive, so no event published afterwards is lost.
func (c *Client) dial(ctx context.Context, info ConnectionInfo, p *proc) (*conn, error) {
	sctx, cancel := context.WithCancel(context.Background())
	quiet := zmq4.WithLogger(log.New(io.Discard, "", 0))
	retry := []zmq4.Option{quiet, zmq4.WithDialerMaxRetries(5), zmq4.WithDialerRetry(50 * time.Millisecond), zmq4.WithTimeout(5 * time.Second)}
	cn := &conn{
		opts:    c.opts,
		info:    info,
		file:    ConnectionFile(c.dir, c.opts.Name),
		sign:    signer{key: info.key()},
		session: newID(),
		proc:    p,
		dealer:  zmq4.NewDealer(sctx, retry...),
		sub:     zmq4.NewSub(sctx, retry...),
		cancel:  cancel,
		pending: make(map[string]*pending),
		welcome: make(chan struct{}, 1),
	}
	fail := func(err error) (*conn, error) {
		cn.close()
		return nil, fmt.Errorf("worker: connecting to the worker %q (pid %d): %w", info.Name, info.PID, err)
	}
	if err := cn.sub.SetOption(zmq4.OptionSubscribe, cn.session); err != nil {
		return fail(err)
	}
	if err := registerGuard(); err != nil {
		return fail(err)
	}
	if err := cn.dealer.Dial(guardedEndpoint(info.Shell)); err != nil {
		return fail(err)
	}
	if err := cn.sub.Dial(guardedEndpoint(info.Events)); err != nil {
		return fail(err)
	}
	go cn.readReplies()
	go cn.readEvents()
	hello := make(chan commandReply, 1)
	gotReply, gotWelcome := false, false
	for attempt := 1; !gotReply || !gotWelcome; attempt++ {
		h := cn.header(typeHello)
		cn.mu.Lock()
		cn.pending[h.MsgID] = &pending{reply: hello}
		cn.mu.Unlock()
		if err := cn.send(h, struct{}{}); err != nil {
			return fail(err)
		}
		wait := time.NewTimer(min(time.Duration(attempt)*50*time.Millisecond, 500*time.Millisecond))
	waiting:
		for !gotReply || !gotWelcome {
			select {
			case <-hello:
				gotReply = true
			case <-cn.welcome:
				gotWelcome = true
			case <-wait.C:
				break waiting
			case <-ctx.Done():
				wait.Stop()
				return fail(fmt.Errorf("no answer to the handshake: %w", ctx.Err()))
			}
		}
		wait.Stop()
		if err := cn.down(); err != nil {
			return fail(err)
		}
	}
	cn.mu.Lock()
	for id, p := range cn.pending {
		if p.reply == hello {
			delete(cn.pending, id)
		}
	}
	cn.mu.Unlock()
	cn.lastBeat.Store(time.Now().UnixNano())
	return cn, nil
}

// header returns a new request header.
func (cn *conn) header(msgType string) header {
	return header{MsgID: newID(), Session: cn.session, MsgType: msgType, Date: time.Now().UTC(), Version: ProtocolVersion}
}

// send signs and sends a request.
func (cn *conn) send(h header, content any) error {
	frames, err := cn.sign.encode(h, nil, content)
	if err != nil {
		return err
	}
	cn.sendMu.Lock()
	defer cn.sendMu.Unlock()
	return cn.dealer.Send(zmq4.NewMsgFrom(frames...))
}

// readReplies dispatches replies to their pending requests.
func (cn *conn) readReplies() {
	for {
		m, err := cn.dealer.Recv()
		if err != nil {
			return // the socket was closed
		}
		msg, _, err := cn.sign.decode(m.Frames)
		if err != nil {
			continue // not from our worker; drop it
		}
		cn.lastBeat.Store(time.Now().UnixNano())
		var rep commandReply
		switch msg.Header.MsgType {
		case typeHeartbeatReply:
			continue
		case typeCommandReply:
			if json.Unmarshal(msg.Content, &rep) != nil {
				rep = commandReply{Status: statusError, Error: "worker: undecodable command_reply"}
			}
		case typeHelloReply:
		default:
			continue
		}
		cn.mu.Lock()
		p := cn.pending[msg.Parent.MsgID]
		cn.mu.Unlock()
		if p != nil {
			select {
			case p.reply <- rep:
			default:
			}
		}
	}
}

// readEvents dispatches published events to their pending requests.
func (cn *conn) readEvents() {
	for {
		m, err := cn.sub.Recv()
		if err != nil {
			return
		}
		if len(m.Frames) < 1 {
			continue
		}
		msg, _, err := cn.sign.decode(m.Frames[1:])
		if err != nil {
			continue
		}
		switch msg.Header.MsgType {
		case typeWelcome:
			select {
			case cn.welcome <- struct{}{}:
			default:
			}
		case typeProgress:
			var pc progressContent
			if json.Unmarshal(msg.Content, &pc) != nil {
				continue
			}
			cn.mu.Lock()
			if p := cn.pending[msg.Parent.MsgID]; p != nil && p.notify != nil && len(p.events) < maxQueuedEvents {
				p.events = append(p.events, Event{RequestID: msg.Parent.MsgID, Seq: pc.Seq, Data: pc.Event})
				select {
				case p.notify <- struct{}{}:
				default:
				}
			}
			cn.mu.Unlock()
		}
	}
}

// call sends a command and waits for its reply and events.
func (cn *conn) call(ctx context.Context, name string, args json.RawMessage, onProgress func(Event)) (json.RawMessage, error) {
	if len(args) > MaxMessageBytes-1024 {
		return nil, fmt.Errorf("worker: %s: a request of %d bytes is over the limit of %d; send large data as a file path", name, len(args), MaxMessageBytes)
	}
	h := cn.header(typeCommand)
	p := &pending{reply: make(chan commandReply, 1), notify: make(chan struct{}, 1)}
	cn.mu.Lock()
	cn.pending[h.MsgID] = p
	cn.mu.Unlock()
	defer func() {
		cn.mu.Lock()
		delete(cn.pending, h.MsgID)
		cn.mu.Unlock()
	}()
	if err := cn.send(h, commandRequest{Command: name, Args: args}); err != nil {
		// A send that fails because the worker died (a broken pipe to its
		// closed socket) is the worker being down, not a transport error.
		if derr := cn.down(); derr != nil {
			return nil, derr
		}
		time.Sleep(50 * time.Millisecond) // the exit may not have been seen yet
		if derr := cn.down(); derr != nil {
			return nil, derr
		}
		return nil, fmt.Errorf("worker: %s: sending: %w", name, err)
	}
	delivered := 0
	deliver := func() {
		cn.mu.Lock()
		evs := p.events
		p.events = nil
		cn.mu.Unlock()
		for _, ev := range evs {
			delivered++
			if onProgress != nil {
				onProgress(ev)
			}
		}
	}
	beat := time.NewTicker(cn.opts.HeartbeatInterval)
	defer beat.Stop()
	cn.lastBeat.Store(time.Now().UnixNano())
	for {
		select {
		case <-p.notify:
			deliver()
		case rep := <-p.reply:
			// The reply says how many events were published; they travel on
			// the other socket, so wait (briefly) for the stragglers.
			grace := time.After(2 * time.Second)
			for delivered < rep.Events {
				select {
				case <-p.notify:
					deliver()
				case <-grace:
					rep.Events = delivered
				}
			}
			return finish(name, rep)
		case <-ctx.Done():
			return nil, cn.cancelCall(ctx, name, h.MsgID, p, deliver)
		case <-beat.C:
			if err := cn.down(); err != nil {
				return nil, fmt.Errorf("worker: %s: %w", name, err)
			}
			if err := cn.send(cn.header(typeHeartbeat), struct{}{}); err != nil {
				return nil, fmt.Errorf("worker: %s: sending a heartbeat: %w", name, err)
			}
			if silent := time.Since(time.Unix(0, cn.lastBeat.Load())); silent > cn.opts.HeartbeatTimeout {
				return nil, fmt.Errorf("worker: %s: %w", name, cn.kill(silent))
			}
		}
	}
}

// finish turns a reply into the result or an error.
func finish(name string, rep commandReply) (json.RawMessage, error) {
	switch rep.Status {
	case statusOK:
		if len(rep.Result) == 0 {
			return json.RawMessage("null"), nil
		}
		return rep.Result, nil
	case statusCancelled:
		return nil, &CommandError{Command: name, Message: rep.Error}
	default:
		msg := rep.Error
		if msg == "" {
			msg = "worker: " + name + ": failed without a message"
		}
		return nil, &CommandError{Command: name, Message: msg, Panicked: rep.Panicked}
	}
}

// cancelCall asks the worker to cancel a request and waits for its reply.
func (cn *conn) cancelCall(ctx context.Context, name, id string, p *pending, deliver func()) error {
	cause := context.Cause(ctx)
	if err := cn.send(cn.header(typeCancel), cancelRequest{RequestID: id}); err != nil {
		return fmt.Errorf("worker: %s: cancelled (%w), but the cancel could not be sent: %v", name, cause, err)
	}
	grace := time.After(cn.opts.CancelGrace)
	for {
		select {
		case <-p.notify:
			deliver()
		case rep := <-p.reply:
			if rep.Status == statusOK {
				return fmt.Errorf("worker: %s: cancelled (%w) as it completed", name, cause)
			}
			return fmt.Errorf("worker: %s: cancelled: %w", name, cause)
		case <-grace:
			return fmt.Errorf("worker: %s: cancelled (%w), but the command did not stop within %s; the worker stays busy with it until it returns", name, cause, cn.opts.CancelGrace)
		}
	}
}

// down reports whether the worker process is gone, as an error wrapping ErrWorkerDown.
func (cn *conn) down() error {
	if cn.proc != nil {
		select {
		case <-cn.proc.exited:
			if cn.proc.err == nil {
				return cn.downErr("exited (status 0: it was shut down, idle for its idle timeout, or its parent process is gone)")
			}
			return cn.downErr(fmt.Sprintf("exited (%v)", cn.proc.err))
		default:
			return nil
		}
	}
	if !cn.info.alive() {
		return cn.downErr("exited")
	}
	return nil
}

func (cn *conn) downErr(what string) error {
	removeIfOurs(cn.file, cn.info.PID, cn.info.Key)
	return fmt.Errorf("%w: the worker %q (pid %d) %s; its log is %s; the next call starts a new worker",
		ErrWorkerDown, cn.info.Name, cn.info.PID, what, LogFile(filepath.Dir(cn.file), cn.info.Name))
}

// kill stops a worker that no longer answers heartbeats: the process this
// client started, or the one the connection file names if it is still the
// same process (same start time).
func (cn *conn) kill(silent time.Duration) error {
	what := fmt.Sprintf("answered no heartbeat for %s", silent.Round(time.Millisecond))
	switch {
	case cn.proc != nil:
		cn.proc.p.Kill()
		<-cn.proc.exited
		what += " and was killed"
	case cn.info.ProcStart != 0 && cn.info.alive():
		if err := syscall.Kill(cn.info.PID, syscall.SIGKILL); err == nil {
			what += " and was killed"
			for i := 0; i < 100 && cn.info.alive(); i++ {
				time.Sleep(10 * time.Millisecond)
			}
		}
	default:
		what += fmt.Sprintf("; stop it yourself (kill %d)", cn.info.PID)
	}
	return cn.downErr(what)
}

// close closes the sockets.
func (cn *conn) close() {
	cn.cancel()
	cn.dealer.Close()
	cn.sub.Close()
}
