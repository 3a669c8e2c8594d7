// Package worker is the long-lived process that holds what notebook cells
// share (weights, compiled programs, adapters, optimizer state, the data
// cursor), and the client that cells use to drive it over ZeroMQ
// (github.com/go-zeromq/zmq4, pure Go).
//
// # Server
//
// New(cfg) makes a worker with the built-in commands ping, status, sleep and
// shutdown; Register adds commands (they run one at a time, in arrival order),
// RegisterConcurrent adds read-only ones that run beside them; Serve listens,
// writes the connection file and serves until shut down, idle for
// Config.IdleTimeout, its parent process is gone, or its context ends. A
// handler's context is cancelled when its caller cancels; a handler that
// panics produces an error reply and the worker carries on.
//
// # Client
//
// Connect(ctx, opts) finds the worker through its connection file or starts
// one (`mmft worker`, or Options.Command) in its own session, logging to
// worker-NAME.log, and waits until it answers. Call runs a command, delivering
// its progress events in order to a callback; cancelling Call's context
// cancels the command in the worker. During a Call the client checks that the
// worker process lives and sends heartbeats; a worker that exited, or answered
// no heartbeat for Options.HeartbeatTimeout (it is then killed), makes Call
// fail with an error wrapping ErrWorkerDown, and the next Call starts a new
// worker. Shutdown ends the worker.
//
// # Connection file
//
// RuntimeDir()/worker-NAME.json ($XDG_RUNTIME_DIR/mmft, else ~/.cache/mmft; the
// folder is created 0700), written atomically with mode 0600 once the sockets
// listen and removed when the worker exits (shutdown, idle timeout, parent
// gone, SIGTERM or SIGINT):
//
//	{"name": "default", "pid": 4242, "proc_start": 81234,
//	 "shell": "tcp://127.0.0.1:39211", "events": "tcp://127.0.0.1:40117",
//	 "key": "<64 hex digits: 32 random bytes>", "signature_scheme": "hmac-sha256",
//	 "version": "mmft-worker/1", "started": "2026-12-02T04:00:00Z"}
//
// Endpoints are tcp://127.0.0.1:PORT (ports chosen by the OS) or
// ipc:///ABSOLUTE/PATH; anything else is refused on both sides. A file is
// stale when its process is gone (pid dead, or reused: proc_start differs) or
// nothing listens on its endpoints; Connect removes it and starts a new worker. A file readable by others is
// refused. worker-NAME.json.lock serializes Connects that might start a worker.
//
// # Wire format
//
// Two sockets, as in Jupyter: the worker's ROUTER ("shell", requests and
// replies; clients use DEALER sockets) and its PUB ("events"; clients
// subscribe with a SUB socket to their own session id). Every message is the
// multipart sequence of Jupyter's wire protocol:
//
//	[routing prefix] "<IDS|MSG>" signature header parent_header metadata content
//
// The routing prefix is the peer identity that ROUTER adds (shell) or the
// session topic (events). header and parent_header are JSON
// {"msg_id", "session", "msg_type", "date", "version": "mmft-worker/1"};
// metadata is {} (signed, otherwise unused); content is a JSON object.
// signature is the hex HMAC-SHA256, keyed with the connection file's key, of
// the bytes of header, parent_header, metadata and content in that order.
//
// The worker drops, and logs, any message that is not exactly this shape, is
// unsigned or wrongly signed, is dated more than 2 minutes from its clock, or
// repeats the signature of a message accepted within that window (a replay);
// it never replies to such a message. Its listeners also drop a connection
// that announces a frame or message over MaxMessageBytes or more than 16
// frames, before anything is allocated, and one that does not finish the ZMTP
// handshake within 2 s or does not open with a ZMTP 3 greeting (clients dial
// through the same guard, with 5 s, so a stopped worker cannot hang them). Anyone on
// the machine can connect to a tcp endpoint, but nothing unsigned is obeyed;
// event contents are readable by a local process that subscribes (use ipc, in
// the 0700 runtime folder, to prevent it).
//
// Message types (content in braces):
//
//	hello_request {}                      → hello_reply {"pid", "name"} and, on
//	                                        the events socket, welcome {} (the
//	                                        client repeats hello until both came,
//	                                        so its subscription is in place)
//	heartbeat_request {}                  → heartbeat_reply {}
//	command_request {"command", "args"}   → command_reply {"status": "ok"|"error"|"cancelled",
//	                                        "result", "error", "panicked", "events": N}
//	cancel_request {"request_id"}         → (the command's reply says "cancelled")
//	progress {"seq": 1.., "event"}        on the events socket, parent = the command_request
//
// A command_reply tells how many progress events the command published, so
// the client delivers all N (they travel on the other socket) before Call
// returns. The request id is the command_request's msg_id.
package worker
