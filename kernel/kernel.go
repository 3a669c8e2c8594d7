// Package kernel is mmft's Jupyter kernel for Go: it speaks Jupyter's messaging
// protocol (v5.3) over ZeroMQ and runs every cell as a new Go program, as GoNB
// does, keeping the declarations of earlier cells. Cells import the packages of the
// mmft module and GoNB's display package (gonbui) at the versions mmft's go.mod pins.
//
// Unlike plain GoNB, a cell that panics, exits non-zero or is interrupted replies
// "error"; compile errors are one error output naming the cell's lines; control
// requests are answered on the control channel; is_complete and history are
// answered; output never splits a UTF-8 character; a cell whose last line is a
// value sends it as execute_result; and a kernel killed outright leaves no folder
// and no cell process behind.
package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/janpfeifer/gonb/gonbui/protocol"
)

// Options configure a kernel.
type Options struct {
	// Source is the folder of mmft's go.mod; cells import its packages.
	Source string
	// Goimports is the goimports program; empty means the one on $PATH.
	Goimports string
	// Dir is the cells' working folder; empty means the kernel's.
	Dir string
	// Log receives the kernel's own diagnostics; nil discards them.
	Log io.Writer
	// Executable is the mmft program; cells and shell lines see it as $MMFT_EXECUTABLE
	// (the mmft package starts `mmft worker` with it).
	Executable string
	// Interrupt, when set, interrupts the running cell at each value: the process's
	// SIGINT, for clients that interrupt by signal rather than interrupt_request.
	Interrupt <-chan os.Signal
}

// server is one running kernel.
type server struct {
	conn    Connection
	sign    signer
	session string
	log     io.Writer
	exec    *executor

	shell, control, stdin, iopub, hb zmq4.Socket
	sendMu                           sync.Mutex

	execCount  int
	history    []historyEntry
	displayIDs map[string]bool

	stop context.CancelFunc
}

type historyEntry struct {
	line int
	code string
}

// Run serves the kernel on conn until a shutdown request or ctx ends.
func Run(ctx context.Context, conn Connection, o Options) (err error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	gi := o.Goimports
	if gi == "" {
		if gi, err = exec.LookPath("goimports"); err != nil {
			return fmt.Errorf("kernel: goimports not found: install the kernel with `mmft kernel install`, which builds it, or put goimports on $PATH")
		}
	}
	dir := o.Dir
	if dir == "" {
		if dir, err = os.Getwd(); err != nil {
			return fmt.Errorf("kernel: working folder: %w", err)
		}
	}
	ws, err := newWorkspace(o.Source)
	if err != nil {
		return err
	}
	defer os.RemoveAll(ws.dir)
	reaper, err := startReaper(ws.dir)
	if err != nil {
		return err
	}
	defer reaper.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	k := &server{
		conn:       conn,
		sign:       signer{key: []byte(conn.Key)},
		session:    newID(),
		log:        o.Log,
		displayIDs: map[string]bool{},
		stop:       cancel,
		exec: &executor{ws: ws, goimports: gi, userDir: dir, state: newState(), executable: o.Executable,
			started: func(pgid int) { fmt.Fprintf(reaper, "%d\n", pgid) }},
	}
	if err := k.listen(ctx); err != nil {
		return err
	}
	defer k.closeSockets()

	go k.heartbeat()
	shellIn := make(chan *message, 1024)
	go k.receive(k.shell, shellIn)
	controlIn := make(chan *message, 64)
	go k.receive(k.control, controlIn)
	go func() { // the stdin channel is bound for clients; input is not supported
		for {
			if _, err := k.stdin.Recv(); err != nil {
				return
			}
		}
	}()
	go func() {
		for {
			select {
			case m := <-controlIn:
				if controlRequests[m.header.MsgType] {
					k.handle(ctx, k.control, m)
				} else {
					fmt.Fprintf(k.log, "mmft kernel: %q on the control channel ignored (it belongs on shell)\n", m.header.MsgType)
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	if o.Interrupt != nil {
		go func() {
			for {
				select {
				case <-o.Interrupt:
					k.exec.interrupt()
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	k.publish(nil, "status", map[string]any{"execution_state": "starting"})
	var next *message
	for {
		m := next
		if m == nil {
			select {
			case m = <-shellIn:
			case <-ctx.Done():
				k.exec.interrupt()
				return nil
			}
		}
		next = nil
		if failedAt, failed := k.handle(ctx, k.shell, m); failed {
			next = k.abortQueued(k.shell, shellIn, failedAt)
		}
	}
}

// controlRequests are the requests answered on the control channel, while a cell runs.
var controlRequests = map[string]bool{"kernel_info_request": true, "interrupt_request": true, "shutdown_request": true}

// listen binds the five channels of the connection.
func (k *server) listen(ctx context.Context) error {
	k.shell = zmq4.NewRouter(ctx, zmq4.WithID(zmq4.SocketIdentity("shell")))
	k.control = zmq4.NewRouter(ctx, zmq4.WithID(zmq4.SocketIdentity("control")))
	k.stdin = zmq4.NewRouter(ctx, zmq4.WithID(zmq4.SocketIdentity("stdin")))
	k.iopub = zmq4.NewPub(ctx)
	k.hb = zmq4.NewRep(ctx)
	for _, b := range []struct {
		s    zmq4.Socket
		port int
		name string
	}{{k.shell, k.conn.ShellPort, "shell"}, {k.control, k.conn.ControlPort, "control"}, {k.stdin, k.conn.StdinPort, "stdin"}, {k.iopub, k.conn.IOPubPort, "iopub"}, {k.hb, k.conn.HBPort, "heartbeat"}} {
		if err := b.s.Listen(k.conn.endpoint(b.port)); err != nil {
			k.closeSockets()
			return fmt.Errorf("kernel: listen on the %s channel %s: %w", b.name, k.conn.endpoint(b.port), err)
		}
	}
	return nil
}

func (k *server) closeSockets() {
	for _, s := range []zmq4.Socket{k.shell, k.control, k.stdin, k.iopub, k.hb} {
		if s != nil {
			s.Close()
		}
	}
}

func (k *server) heartbeat() {
	for {
		m, err := k.hb.Recv()
		if err != nil {
			return
		}
		if err := k.hb.Send(m); err != nil {
			return
		}
	}
}

// receive decodes the messages of a ROUTER socket into in; bad ones are logged and dropped.
func (k *server) receive(s zmq4.Socket, in chan<- *message) {
	for {
		raw, err := s.Recv()
		if err != nil {
			return
		}
		m, err := k.sign.decode(raw.Frames)
		if err != nil {
			fmt.Fprintf(k.log, "mmft kernel: dropped a message: %v\n", err)
			continue
		}
		in <- m
	}
}

// send signs and sends a message on a socket.
func (k *server) send(s zmq4.Socket, m *message) {
	frames, err := k.sign.encode(m)
	if err != nil {
		fmt.Fprintf(k.log, "mmft kernel: %v\n", err)
		return
	}
	k.sendMu.Lock()
	defer k.sendMu.Unlock()
	if err := s.Send(zmq4.NewMsgFrom(frames...)); err != nil {
		fmt.Fprintf(k.log, "mmft kernel: send %s: %v\n", m.header.MsgType, err)
	}
}

// reply answers req on the socket it came from.
func (k *server) reply(s zmq4.Socket, req *message, msgType string, content any) {
	body, err := json.Marshal(content)
	if err != nil {
		fmt.Fprintf(k.log, "mmft kernel: encode %s: %v\n", msgType, err)
		return
	}
	parent, _ := json.Marshal(req.header)
	k.send(s, &message{identities: req.identities, header: newHeader(msgType, k.session), parentRaw: parent, content: body})
}

// publish sends a message on iopub, in reply to parent (nil for none).
func (k *server) publish(parent *message, msgType string, content any) {
	body, err := json.Marshal(content)
	if err != nil {
		fmt.Fprintf(k.log, "mmft kernel: encode %s: %v\n", msgType, err)
		return
	}
	m := &message{identities: [][]byte{[]byte("kernel." + k.session + "." + msgType)}, header: newHeader(msgType, k.session), content: body}
	if parent != nil {
		m.parentRaw, _ = json.Marshal(parent.header)
	}
	k.send(k.iopub, m)
}

// handle answers one request, between busy and idle status messages. For an
// execute_request that failed it reports when the failure was answered.
func (k *server) handle(ctx context.Context, s zmq4.Socket, m *message) (failedAt time.Time, failed bool) {
	var content map[string]any
	if err := json.Unmarshal(m.content, &content); err != nil {
		fmt.Fprintf(k.log, "mmft kernel: %s: bad content: %v\n", m.header.MsgType, err)
		content = map[string]any{}
	}
	k.publish(m, "status", map[string]any{"execution_state": "busy"})
	defer k.publish(m, "status", map[string]any{"execution_state": "idle"})
	switch t := m.header.MsgType; t {
	case "kernel_info_request":
		k.reply(s, m, "kernel_info_reply", k.info())
	case "execute_request":
		failedAt, failed = k.execute(ctx, s, m, content)
		if stop, ok := content["stop_on_error"].(bool); ok && !stop {
			failed = false // the client asked not to stop the queue on this one's error
		}
	case "is_complete_request":
		code, _ := content["code"].(string)
		status, indent := isComplete(code)
		reply := map[string]any{"status": status}
		if status == "incomplete" {
			reply["indent"] = indent
		}
		k.reply(s, m, "is_complete_reply", reply)
	case "history_request":
		k.reply(s, m, "history_reply", map[string]any{"status": "ok", "history": k.historyReply(content)})
	case "complete_request":
		k.reply(s, m, "complete_reply", k.complete(content))
	case "inspect_request":
		k.reply(s, m, "inspect_reply", k.inspect(ctx, content))
	case "comm_info_request":
		k.reply(s, m, "comm_info_reply", map[string]any{"status": "ok", "comms": map[string]any{}})
	case "interrupt_request":
		k.exec.interrupt()
		k.reply(s, m, "interrupt_reply", map[string]any{"status": "ok"})
	case "shutdown_request":
		restart, _ := content["restart"].(bool)
		k.exec.interrupt()
		k.reply(s, m, "shutdown_reply", map[string]any{"status": "ok", "restart": restart})
		k.stop()
	case "comm_open", "comm_msg", "comm_close":
		// No comm targets: nothing to answer.
	default:
		fmt.Fprintf(k.log, "mmft kernel: unknown request %q ignored\n", t)
	}
	return failedAt, failed
}

// info is the kernel_info_reply content.
func (k *server) info() map[string]any {
	return map[string]any{
		"status":                 "ok",
		"protocol_version":       protocolVersion,
		"implementation":         "mmft",
		"implementation_version": "0.1",
		"banner":                 "mmft Go kernel (" + runtime.Version() + "); %help lists what a cell may hold",
		"language_info": map[string]any{
			"name":            "go",
			"version":         strings.TrimPrefix(runtime.Version(), "go"),
			"mimetype":        "text/x-go",
			"file_extension":  ".go",
			"pygments_lexer":  "go",
			"codemirror_mode": "go",
		},
		"help_links": []map[string]string{{"text": "Go", "url": "https://go.dev/doc/"}},
	}
}

// execute runs an execute_request and reports whether it failed, and when.
func (k *server) execute(ctx context.Context, s zmq4.Socket, m *message, content map[string]any) (time.Time, bool) {
	code, _ := content["code"].(string)
	silent, _ := content["silent"].(bool)
	storeHistory, ok := content["store_history"].(bool)
	if !ok {
		storeHistory = !silent
	}
	if storeHistory && !silent {
		k.execCount++
		k.history = append(k.history, historyEntry{line: k.execCount, code: code})
	}
	count := k.execCount
	if !silent {
		k.publish(m, "execute_input", map[string]any{"code": code, "execution_count": count})
	}
	out := &cellOutput{k: k, parent: m, count: count, silent: silent}
	err := k.exec.execute(ctx, max(count, 1), code, out)
	if err == nil {
		k.reply(s, m, "execute_reply", map[string]any{"status": "ok", "execution_count": count, "user_expressions": map[string]any{}, "payload": []any{}})
		return time.Time{}, false
	}
	failedAt := time.Now()
	ename, evalue, traceback := describe(err)
	k.publish(m, "error", map[string]any{"ename": ename, "evalue": evalue, "traceback": traceback})
	k.reply(s, m, "execute_reply", map[string]any{"status": "error", "execution_count": count, "ename": ename, "evalue": evalue, "traceback": traceback})
	return failedAt, true
}

// describe splits an execution error into Jupyter's ename, evalue and traceback.
func describe(err error) (string, string, []string) {
	var ce *compileError
	var re *runError
	switch {
	case errors.As(err, &ce):
		return "CompileError", ce.lines[0], ce.lines
	case errors.As(err, &re):
		return re.ename, re.evalue, re.traceback
	default:
		return "KernelError", err.Error(), []string{err.Error()}
	}
}

// abortQueued answers the execute requests that were queued behind a failed one
// (sent with stop_on_error) before its failure was answered with status "aborted", as
// Jupyter's stop_on_error asks ("Run All" stops at the error). It returns the first request it leaves to
// the caller to handle (one sent after the failure, or not an execution), if any.
func (k *server) abortQueued(s zmq4.Socket, queue chan *message, failedAt time.Time) *message {
	for {
		select {
		case m := <-queue:
			if m.header.MsgType != "execute_request" || m.received.After(failedAt) {
				return m
			}
			k.publish(m, "status", map[string]any{"execution_state": "busy"})
			k.reply(s, m, "execute_reply", map[string]any{"status": "aborted", "execution_count": k.execCount})
			k.publish(m, "status", map[string]any{"execution_state": "idle"})
		default:
			return nil
		}
	}
}

// historyReply answers a history_request from this kernel's cells (session 1).
func (k *server) historyReply(content map[string]any) []any {
	output, _ := content["output"].(bool)
	num := func(key string, def int) int {
		if v, ok := content[key].(float64); ok {
			return int(v)
		}
		return def
	}
	entry := func(e historyEntry) any {
		if output {
			return []any{1, e.line, []any{e.code, nil}}
		}
		return []any{1, e.line, e.code}
	}
	var picked []historyEntry
	switch content["hist_access_type"] {
	case "range":
		start, stop := num("start", 1), num("stop", k.execCount+1)
		for _, e := range k.history {
			if e.line >= start && (stop <= 0 || e.line < stop) {
				picked = append(picked, e)
			}
		}
	case "search":
		pattern, _ := content["pattern"].(string)
		unique, _ := content["unique"].(bool)
		seen := map[string]bool{}
		for i := len(k.history) - 1; i >= 0; i-- {
			e := k.history[i]
			if ok, _ := path.Match(pattern, e.code); !ok || (unique && seen[e.code]) {
				continue
			}
			seen[e.code] = true
			picked = append(picked, e)
		}
		slices.Reverse(picked)
		if n := num("n", 0); n > 0 && len(picked) > n {
			picked = picked[len(picked)-n:]
		}
	default: // "tail"
		picked = k.history
		if n := num("n", 10); n >= 0 && len(picked) > n {
			picked = picked[len(picked)-n:]
		}
	}
	h := make([]any, 0, len(picked))
	for _, e := range picked {
		h = append(h, entry(e))
	}
	return h
}

// complete offers the kept declarations, Go's keywords and builtins that start with
// the word before the cursor.
func (k *server) complete(content map[string]any) map[string]any {
	code, _ := content["code"].(string)
	runes := []rune(code)
	pos := len(runes)
	if v, ok := content["cursor_pos"].(float64); ok && int(v) <= len(runes) && v >= 0 {
		pos = int(v)
	}
	start := pos
	for start > 0 && (runes[start-1] == '_' || isLetterOrDigit(runes[start-1])) {
		start--
	}
	prefix := string(runes[start:pos])
	var names []string
	for _, u := range k.exec.state.units {
		for _, key := range u.keys {
			if n, ok := strings.CutPrefix(key, "name:"); ok {
				names = append(names, n)
			}
		}
	}
	names = append(names, goWords...)
	var matches []string
	if prefix != "" {
		for _, n := range names {
			if strings.HasPrefix(n, prefix) && !slices.Contains(matches, n) {
				matches = append(matches, n)
			}
		}
	}
	slices.Sort(matches)
	return map[string]any{"status": "ok", "matches": append([]string{}, matches...), "cursor_start": start, "cursor_end": pos, "metadata": map[string]any{}}
}

func isLetterOrDigit(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r > 127
}

// goWords are Go's keywords and predeclared names.
var goWords = strings.Fields(`break case chan const continue default defer else fallthrough for func go goto if
import interface map package range return select struct switch type var
append cap clear close complex copy delete imag len make max min new panic print println real recover
bool byte comparable complex64 complex128 error float32 float64 int int8 int16 int32 int64 rune string
uint uint8 uint16 uint32 uint64 uintptr any true false iota nil`)

// cellOutput sends what a running cell produces to iopub.
type cellOutput struct {
	k      *server
	parent *message
	count  int
	silent bool
}

func (o *cellOutput) stream(name, text string) {
	o.k.publish(o.parent, "stream", map[string]any{"name": name, "text": text})
}

func (o *cellOutput) display(d *protocol.DisplayData) {
	data := mimeBundle(d.Data)
	meta := map[string]any{}
	for key, v := range d.Metadata {
		if key != resultMetadata {
			meta[key] = v
		}
	}
	if isResult, _ := d.Metadata[resultMetadata].(bool); isResult {
		if !o.silent {
			o.k.publish(o.parent, "execute_result", map[string]any{"execution_count": o.count, "data": data, "metadata": meta})
		}
		return
	}
	content := map[string]any{"data": data, "metadata": meta, "transient": map[string]any{}}
	msgType := "display_data"
	if d.DisplayID != "" {
		content["transient"] = map[string]any{"display_id": d.DisplayID}
		if o.k.displayIDs[d.DisplayID] {
			msgType = "update_display_data"
		}
		o.k.displayIDs[d.DisplayID] = true
	}
	o.k.publish(o.parent, msgType, content)
}

// reaperScript runs in its own process group. It reads the process groups the
// kernel started, one a line; when the kernel is gone (its stdin closes, even on
// SIGKILL), it kills them and removes the kernel's folder ($1).
const reaperScript = `pgs=""
while read -r pg; do pgs="$pgs $pg"; done
for pg in $pgs; do kill -KILL -"$pg" 2>/dev/null; done
rm -rf -- "$1"`

// startReaper starts the process that cleans up after the kernel and returns the
// pipe that keeps it waiting.
func startReaper(dir string) (io.WriteCloser, error) {
	cmd := exec.Command("sh", "-c", reaperScript, "mmft-kernel-reaper", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	w, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("kernel: reaper: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("kernel: reaper: %w", err)
	}
	go cmd.Wait()
	return w, nil
}
