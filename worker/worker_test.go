package worker

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests start real worker processes by re-running the test binary with
// helperEnv set: TestMain then serves a worker (built-ins plus the test
// commands below) instead of running tests.
const helperEnv = "MMFT_WORKER_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "1":
		os.Exit(helperMain(os.Args[1:]))
	case "cell":
		os.Exit(cellMain(os.Args[1], os.Args[2]))
	}
	os.Exit(m.Run())
}

func helperMain(args []string) int {
	var cfg Config
	fs := flag.NewFlagSet("worker-helper", flag.ContinueOnError)
	cfg.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	s, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	registerTestCommands(s)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := s.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// cellMain acts as a notebook cell: it connects to the running worker named
// name in dir and sleeps there until SIGINT interrupts it.
func cellMain(dir, name string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, err := Connect(ctx, Options{Name: name, Dir: dir, NoStart: true})
	if err != nil {
		fmt.Println("connect:", err)
		return 1
	}
	defer c.Close()
	started := false
	err = c.Call(ctx, "sleep", SleepArgs{Seconds: 30, Every: 0.02}, nil, func(Event) {
		if !started {
			fmt.Println("running")
			started = true
		}
	})
	fmt.Println("result:", err)
	if errors.Is(err, context.Canceled) {
		return 0
	}
	return 1
}

// registerTestCommands adds: events {"n"} publishes n numbered events and
// returns n; panic panics; fail returns an error; stubborn takes a second and
// ignores cancellation; echo returns its request.
func registerTestCommands(s *Server) {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(s.Register("events", func(ctx context.Context, req json.RawMessage, progress func(any)) (any, error) {
		var a struct{ N int }
		if err := json.Unmarshal(req, &a); err != nil {
			return nil, err
		}
		for i := 1; i <= a.N; i++ {
			progress(map[string]int{"i": i})
		}
		return a.N, nil
	}))
	must(s.Register("panic", func(ctx context.Context, req json.RawMessage, progress func(any)) (any, error) {
		panic("handler bug")
	}))
	must(s.Register("fail", func(ctx context.Context, req json.RawMessage, progress func(any)) (any, error) {
		return nil, errors.New("fail: no model loaded; call LoadModel first")
	}))
	must(s.Register("stubborn", func(ctx context.Context, req json.RawMessage, progress func(any)) (any, error) {
		time.Sleep(time.Second) // ignores ctx
		return "done", nil
	}))
	must(s.RegisterConcurrent("echo", func(ctx context.Context, req json.RawMessage, progress func(any)) (any, error) {
		return req, nil
	}))
}

// testOptions starts workers from this test binary in a fresh folder, with
// short heartbeat bounds; the workers are killed when the test ends.
func testOptions(t *testing.T) Options {
	t.Helper()
	dir, err := os.MkdirTemp("", "mmftw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		killWorkers(dir)
		os.RemoveAll(dir)
	})
	return Options{
		Name:              "t",
		Dir:               dir,
		Command:           []string{os.Args[0]},
		Env:               []string{helperEnv + "=1"},
		ParentPID:         os.Getpid(),
		StartTimeout:      20 * time.Second,
		HeartbeatInterval: 100 * time.Millisecond,
		HeartbeatTimeout:  1500 * time.Millisecond,
		CancelGrace:       3 * time.Second,
	}
}

// killWorkers kills the workers whose connection files are in dir.
func killWorkers(dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "worker-*.json"))
	for _, f := range files {
		if info, err := ReadConnectionFile(f); err == nil && info.alive() {
			syscall.Kill(info.PID, syscall.SIGCONT)
			syscall.Kill(info.PID, syscall.SIGKILL)
			waitGone(info.PID, info.ProcStart, 5*time.Second)
		}
	}
}

// waitGone waits until process pid is gone and reports whether it went.
func waitGone(pid int, start uint64, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for processAlive(pid, start) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func connect(t *testing.T, opts Options) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Connect(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ping(t *testing.T, c *Client) Pong {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var p Pong
	if err := c.Call(ctx, "ping", nil, &p, nil); err != nil {
		t.Fatalf("ping: %v", err)
	}
	return p
}

func TestStartPingStatusShutdown(t *testing.T) {
	opts := testOptions(t)
	c := connect(t, opts)
	info := c.Info()
	if info.PID == os.Getpid() || info.PID <= 0 {
		t.Fatalf("worker pid %d, test pid %d", info.PID, os.Getpid())
	}
	path := ConnectionFile(opts.Dir, opts.Name)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("connection file mode %04o, want 0600", st.Mode().Perm())
	}
	if !strings.HasPrefix(info.Shell, "tcp://127.0.0.1:") || !strings.HasPrefix(info.Events, "tcp://127.0.0.1:") || info.Shell == info.Events {
		t.Fatalf("endpoints %q %q", info.Shell, info.Events)
	}
	if len(info.Key) != 64 {
		t.Fatalf("key %q", info.Key)
	}
	if p := ping(t, c); p.PID != info.PID {
		t.Fatalf("ping from pid %d, worker is %d", p.PID, info.PID)
	}
	var s Status
	if err := c.Call(context.Background(), "status", nil, &s, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"echo", "events", "fail", "panic", "ping", "shutdown", "sleep", "status", "stubborn"}
	if strings.Join(s.Commands, ",") != strings.Join(want, ",") || s.PID != info.PID || s.RSSBytes == 0 || s.HeapBytes == 0 || len(s.Running) != 0 {
		t.Fatalf("status %+v", s)
	}
	var echo map[string]string
	if err := c.Call(context.Background(), "echo", map[string]string{"a": "b"}, &echo, nil); err != nil || echo["a"] != "b" {
		t.Fatalf("echo: %v %v", echo, err)
	}
	err = c.Call(context.Background(), "no-such", nil, nil, nil)
	var ce *CommandError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), `unknown command "no-such"`) || !strings.Contains(err.Error(), "sleep") {
		t.Fatalf("unknown command: %v", err)
	}
	if err := c.Call(context.Background(), "fail", nil, nil, nil); !errors.As(err, &ce) || ce.Message != "fail: no model loaded; call LoadModel first" {
		t.Fatalf("failing command: %v", err)
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if processAlive(info.PID, info.ProcStart) {
		t.Fatal("worker alive after Shutdown")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("connection file left after shutdown: %v", err)
	}
	if err := c.Call(context.Background(), "ping", nil, nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Shutdown: %v", err)
	}
}

func TestProgressEventsArriveInOrder(t *testing.T) {
	c := connect(t, testOptions(t))
	const n = 500
	var got []int
	var reqIDs = map[string]bool{}
	var result int
	err := c.Call(context.Background(), "events", map[string]int{"n": n}, &result, func(ev Event) {
		var e struct{ I int }
		if err := ev.Decode(&e); err != nil {
			t.Errorf("event %s: %v", ev.Data, err)
		}
		if ev.Seq != len(got)+1 {
			t.Errorf("event seq %d after %d events", ev.Seq, len(got))
		}
		reqIDs[ev.RequestID] = true
		got = append(got, e.I)
	})
	if err != nil {
		t.Fatal(err)
	}
	if result != n || len(got) != n || len(reqIDs) != 1 {
		t.Fatalf("result %d, %d events, request ids %v", result, len(got), reqIDs)
	}
	for i, v := range got {
		if v != i+1 {
			t.Fatalf("event %d is %d", i, v)
		}
	}
	// The sleep built-in reports progress over time.
	var ticks int
	var slept SleepProgress
	if err := c.Call(context.Background(), "sleep", SleepArgs{Seconds: 0.3, Every: 0.05}, &slept, func(Event) { ticks++ }); err != nil {
		t.Fatal(err)
	}
	if ticks < 3 || slept.Slept < 0.3 {
		t.Fatalf("sleep: %d ticks, slept %v", ticks, slept.Slept)
	}
}

func TestCancelMidCommandKeepsWorkerHealthy(t *testing.T) {
	c := connect(t, testOptions(t))
	pid := c.Info().PID
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	events := 0
	err := c.Call(ctx, "sleep", SleepArgs{Seconds: 30, Every: 0.02}, nil, func(Event) {
		events++
		if events == 3 {
			cancel() // as an interrupted cell does
		}
	})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("cancelled call returned %v", err)
	}
	if strings.Contains(err.Error(), "did not stop") {
		t.Fatalf("the handler's context was not cancelled: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %s", d)
	}
	// The worker is the same process, idle, and answers the next call.
	if p := ping(t, c); p.PID != pid {
		t.Fatalf("ping from pid %d after cancel, worker was %d", p.PID, pid)
	}
	var s Status
	if err := c.Call(context.Background(), "status", nil, &s, nil); err != nil || len(s.Running) != 0 {
		t.Fatalf("status after cancel: %+v %v", s, err)
	}

	// A command waiting behind the running one can be cancelled in the queue.
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	doneA := make(chan error, 1)
	go func() { doneA <- c.Call(ctxA, "sleep", SleepArgs{Seconds: 30}, nil, nil) }()
	waitRunning(t, c, 1)
	ctxB, cancelB := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelB()
	if err := c.Call(ctxB, "sleep", SleepArgs{Seconds: 0}, nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("queued call: %v", err)
	}
	if err := c.Call(context.Background(), "status", nil, &s, nil); err != nil || len(s.Running) != 1 || s.Running[0].Command != "sleep" || s.Running[0].Queued {
		t.Fatalf("status with one sleep running: %+v %v", s, err)
	}
	cancelA()
	if err := <-doneA; !errors.Is(err, context.Canceled) {
		t.Fatalf("first sleep: %v", err)
	}
	ping(t, c)
}

// waitRunning waits until the worker runs n commands besides the status call.
func waitRunning(t *testing.T, c *Client, n int) {
	t.Helper()
	for i := 0; i < 500; i++ {
		var s Status
		if err := c.Call(context.Background(), "status", nil, &s, nil); err != nil {
			t.Fatal(err)
		}
		if len(s.Running) == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the worker never ran %d commands", n)
}

func TestHandlerPanicBecomesErrorReply(t *testing.T) {
	c := connect(t, testOptions(t))
	pid := c.Info().PID
	err := c.Call(context.Background(), "panic", nil, nil, nil)
	var ce *CommandError
	if !errors.As(err, &ce) || !ce.Panicked || !strings.Contains(ce.Message, "handler bug") {
		t.Fatalf("panicking command: %v", err)
	}
	if p := ping(t, c); p.PID != pid {
		t.Fatalf("worker restarted after a handler panic")
	}
}

func TestKilledWorkerIsReportedThenRestarted(t *testing.T) {
	c := connect(t, testOptions(t))
	old := c.Info()
	done := make(chan error, 1)
	go func() { done <- c.Call(context.Background(), "sleep", SleepArgs{Seconds: 30}, nil, nil) }()
	waitRunning(t, c, 1)
	if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrWorkerDown) || !strings.Contains(err.Error(), fmt.Sprint(old.PID)) || !strings.Contains(err.Error(), "next call starts a new worker") {
			t.Fatalf("call on a killed worker: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a call on a killed worker did not return")
	}
	p := ping(t, c)
	if p.PID == old.PID || c.Info().PID != p.PID || c.Info().Key == old.Key {
		t.Fatalf("after the crash: ping from %d, old %d, info %+v", p.PID, old.PID, c.Info())
	}

	// A worker killed between calls is reported once, then replaced.
	old = c.Info()
	syscall.Kill(old.PID, syscall.SIGKILL)
	waitGone(old.PID, old.ProcStart, 5*time.Second)
	if err := c.Call(context.Background(), "ping", nil, nil, nil); !errors.Is(err, ErrWorkerDown) {
		t.Fatalf("call after the worker died between calls: %v", err)
	}
	if p := ping(t, c); p.PID == old.PID {
		t.Fatal("not restarted")
	}
}

func TestUnresponsiveWorkerIsKilledAndRestarted(t *testing.T) {
	t.Parallel()
	c := connect(t, testOptions(t))
	old := c.Info()
	if err := syscall.Kill(old.PID, syscall.SIGSTOP); err != nil { // alive, but answers nothing
		t.Fatal(err)
	}
	waitStopped(t, old.PID)
	start := time.Now()
	err := c.Call(context.Background(), "ping", nil, nil, nil)
	if !errors.Is(err, ErrWorkerDown) || !strings.Contains(err.Error(), "answered no heartbeat") || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("call on a stopped worker: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s to notice", d)
	}
	if !waitGone(old.PID, old.ProcStart, 5*time.Second) {
		t.Fatal("the unresponsive worker was not killed")
	}
	if p := ping(t, c); p.PID == old.PID {
		t.Fatal("not restarted")
	}
}

// waitStopped waits until every thread of process pid is stopped (Linux).
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 500; i++ {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		stopped := len(tasks) > 0
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			j := strings.LastIndexByte(string(b), ')')
			if err != nil || j < 0 || j+2 >= len(b) || b[j+2] != 'T' {
				stopped = false
			}
		}
		if stopped {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pid %d did not stop", pid)
}

func TestTwoClientsInTurn(t *testing.T) {
	opts := testOptions(t)
	a := connect(t, opts)
	pa := ping(t, a)
	a.Close()

	opts.NoStart = true
	b := connect(t, opts)
	if pb := ping(t, b); pb.PID != pa.PID {
		t.Fatalf("second client reached pid %d, first %d", pb.PID, pa.PID)
	}
	n := 0
	if err := b.Call(context.Background(), "events", map[string]int{"n": 20}, nil, func(Event) { n++ }); err != nil || n != 20 {
		t.Fatalf("events on the second client: %d, %v", n, err)
	}
	// Two clients at once: each gets only its own events.
	a = connect(t, opts)
	na := 0
	if err := a.Call(context.Background(), "events", map[string]int{"n": 5}, nil, func(Event) { na++ }); err != nil || na != 5 || n != 20 {
		t.Fatalf("client a got %d events (client b %d): %v", na, n, err)
	}
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := Connect(context.Background(), opts); !errors.Is(err, ErrNoWorker) {
		t.Fatalf("NoStart with no worker: %v", err)
	}
}

func TestIdleTimeoutEndsWorker(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.IdleTimeout = 700 * time.Millisecond
	c := connect(t, opts)
	info := c.Info()
	ping(t, c)
	if !waitGone(info.PID, info.ProcStart, 10*time.Second) {
		t.Fatal("idle worker still running")
	}
	if _, err := os.Stat(ConnectionFile(opts.Dir, opts.Name)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("connection file after idle exit: %v", err)
	}
	if log, _ := os.ReadFile(LogFile(opts.Dir, opts.Name)); !strings.Contains(string(log), "idle for 700ms") {
		t.Fatalf("log does not give the reason:\n%s", log)
	}
}

func TestWorkerEndsWithItsParent(t *testing.T) {
	t.Parallel()
	parent := exec.Command("sleep", "60")
	if err := parent.Start(); err != nil {
		t.Skip("no sleep command:", err)
	}
	opts := testOptions(t)
	opts.ParentPID = parent.Process.Pid
	c := connect(t, opts)
	info := c.Info()
	ping(t, c)
	parent.Process.Kill()
	parent.Wait()
	if !waitGone(info.PID, info.ProcStart, 10*time.Second) {
		t.Fatal("worker outlived its parent")
	}
	if _, err := os.Stat(ConnectionFile(opts.Dir, opts.Name)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("connection file after the parent went: %v", err)
	}
}

func TestSIGTERMRemovesConnectionFile(t *testing.T) {
	opts := testOptions(t)
	opts.Transport = "ipc"
	c := connect(t, opts)
	info := c.Info()
	if !strings.HasPrefix(info.Shell, "ipc:///") {
		t.Fatalf("ipc worker listens on %s", info.Shell)
	}
	for _, ep := range []string{info.Shell, info.Events} {
		st, err := os.Stat(strings.TrimPrefix(ep, "ipc://"))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("socket %s: %v %v", ep, st.Mode(), err)
		}
	}
	ping(t, c)
	syscall.Kill(info.PID, syscall.SIGTERM)
	if !waitGone(info.PID, info.ProcStart, 10*time.Second) {
		t.Fatal("SIGTERM did not end the worker")
	}
	left, _ := filepath.Glob(filepath.Join(opts.Dir, "worker-t*"))
	for _, f := range left {
		if !strings.HasSuffix(f, ".log") && !strings.HasSuffix(f, ".lock") {
			t.Errorf("left after SIGTERM: %s", f)
		}
	}
}

func TestStaleConnectionFileIsReplaced(t *testing.T) {
	opts := testOptions(t)
	// A file naming a process that has exited, as a worker killed with -9 leaves.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip(err)
	}
	path := ConnectionFile(opts.Dir, opts.Name)
	stale := ConnectionInfo{Name: opts.Name, PID: dead.Process.Pid, Shell: "tcp://127.0.0.1:1", Events: "tcp://127.0.0.1:2",
		Key: strings.Repeat("ab", 32), SignatureScheme: SignatureScheme, Version: ProtocolVersion, Started: time.Now()}
	if err := writeConnectionFile(path, stale); err != nil {
		t.Fatal(err)
	}
	noStart := opts
	noStart.NoStart = true
	if _, err := Connect(context.Background(), noStart); !errors.Is(err, ErrNoWorker) {
		t.Fatalf("stale file with NoStart: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("stale connection file not removed")
	}
	if err := writeConnectionFile(path, stale); err != nil {
		t.Fatal(err)
	}
	c := connect(t, opts)
	if p := ping(t, c); p.PID == stale.PID {
		t.Fatal("reached the stale pid")
	}

	// An unreadable file whose process lives (another protocol version, say)
	// is reported, not replaced by a second worker.
	live := c.Info()
	c.Close()
	live.Version = "mmft-worker/0"
	if err := writeConnectionFile(path, live); err != nil {
		t.Fatal(err)
	}
	if _, err := Connect(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "protocol") {
		t.Fatalf("file of a live worker of another version: %v", err)
	}
	if !live.alive() {
		t.Fatal("the live worker was stopped")
	}
}

func TestStartFailuresAreClear(t *testing.T) {
	opts := testOptions(t)
	opts.Command = []string{"/bin/sh", "-c", "echo cannot load the GPU plugin >&2; exit 3", "sh"}
	_, err := Connect(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "cannot load the GPU plugin") {
		t.Fatalf("a worker that fails to start: %v", err)
	}
	opts.Command = nil
	t.Setenv("PATH", "")
	if _, err := Connect(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "mmft is not in PATH") {
		t.Fatalf("no mmft in PATH: %v", err)
	}
}

func TestConcurrentConnectsStartOneWorker(t *testing.T) {
	opts := testOptions(t)
	pids := make(chan int, 3)
	for range 3 {
		go func() {
			c, err := Connect(context.Background(), opts)
			if err != nil {
				t.Error(err)
				pids <- 0
				return
			}
			defer c.Close()
			var p Pong
			if err := c.Call(context.Background(), "ping", nil, &p, nil); err != nil {
				t.Error(err)
			}
			pids <- p.PID
		}()
	}
	first := <-pids
	for range 2 {
		if p := <-pids; p != first || p == 0 {
			t.Fatalf("clients reached pids %d and %d", first, p)
		}
	}
}

func TestStuckWorkerFoundByFileIsReported(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	c := connect(t, opts)
	info := c.Info()
	c.Close()
	syscall.Kill(info.PID, syscall.SIGSTOP)
	defer syscall.Kill(info.PID, syscall.SIGCONT)
	waitStopped(t, info.PID)
	opts.NoStart = true
	start := time.Now()
	_, err := Connect(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("if it is stuck, stop it (kill %d)", info.PID)) {
		t.Fatalf("connecting to a stopped worker: %v", err)
	}
	if d := time.Since(start); d > dialHandshakeTimeout+3*time.Second {
		t.Fatalf("took %s", d)
	}
}

func TestFileWithDeadPortsIsStale(t *testing.T) {
	opts := testOptions(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "tcp://" + l.Addr().String()
	l.Close()
	// A live process (this one) but nothing listening where the file says.
	stale := ConnectionInfo{Name: opts.Name, PID: os.Getpid(), ProcStart: procStart(os.Getpid()), Shell: closed, Events: closed,
		Key: strings.Repeat("ab", 32), SignatureScheme: SignatureScheme, Version: ProtocolVersion, Started: time.Now()}
	if err := writeConnectionFile(ConnectionFile(opts.Dir, opts.Name), stale); err != nil {
		t.Fatal(err)
	}
	c := connect(t, opts)
	if p := ping(t, c); p.PID == os.Getpid() {
		t.Fatal("reached the stale file's pid")
	}
}

func TestInterruptedCellCancelsItsCommand(t *testing.T) {
	opts := testOptions(t)
	c := connect(t, opts)
	cell := exec.Command(os.Args[0], opts.Dir, opts.Name)
	cell.Env = append(os.Environ(), helperEnv+"=cell")
	out, err := cell.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cell.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := out.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "running") {
		t.Fatalf("cell: %q %v", buf[:n], err)
	}
	cell.Process.Signal(os.Interrupt)
	rest, _ := io.ReadAll(out)
	if err := cell.Wait(); err != nil || !strings.Contains(string(rest), "result: worker: sleep: cancelled") {
		t.Fatalf("interrupted cell: %v, output %q", err, rest)
	}
	var s Status
	if err := c.Call(context.Background(), "status", nil, &s, nil); err != nil || len(s.Running) != 0 || s.PID != c.Info().PID {
		t.Fatalf("worker after the interrupt: %+v %v", s, err)
	}
	ping(t, c)
}

func TestHandlerIgnoringCancelIsReported(t *testing.T) {
	opts := testOptions(t)
	opts.CancelGrace = 200 * time.Millisecond
	c := connect(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := c.Call(ctx, "stubborn", nil, nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "did not stop within 200ms") {
		t.Fatalf("cancelled stubborn command: %v", err)
	}
	ping(t, c) // concurrent commands still answer at once
	var n int
	if err := c.Call(context.Background(), "events", map[string]int{"n": 1}, &n, nil); err != nil || n != 1 {
		t.Fatalf("the next command after the stubborn one: %d %v", n, err)
	}
}
