package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mmft-go/mmft/worker"
)

// lockedBuffer collects the log the worker writes from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestWorkerCommandServesUntilStopped(t *testing.T) {
	dir, err := os.MkdirTemp("", "mmftw")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	c := &cli{ctx: ctx, stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}
	done := make(chan int, 1)
	go func() { done <- c.main([]string{"worker", "--dir", dir, "--name", "cli", "--idle-timeout", "-1s"}) }()

	file := worker.ConnectionFile(dir, "cli")
	for i := 0; ; i++ {
		if _, err := os.Stat(file); err == nil {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("mmft worker exited with %d: %s", code, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if i > 1000 {
			t.Fatal("no connection file")
		}
	}
	client, err := worker.Connect(ctx, worker.Options{Name: "cli", Dir: dir, NoStart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var st worker.Status
	if err := client.Call(ctx, "status", nil, &st, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ping", "shutdown", "sleep", "status", "mmft.load_model", "mmft.train", "mmft.evaluate"} {
		if !slices.Contains(st.Commands, want) {
			t.Fatalf("status lacks command %s: %+v", want, st)
		}
	}
	if st.PID != os.Getpid() {
		t.Fatalf("status %+v", st)
	}
	// The notebook session's commands are served (the device follows --device, cpu by default).
	var dev struct {
		Device string `json:"device"`
	}
	if err := client.Call(ctx, "mmft.gpu_status", nil, &dev, nil); err != nil || dev.Device != "cpu" {
		t.Fatalf("mmft.gpu_status: %+v %v", dev, err)
	}
	cancel() // as SIGTERM or SIGINT does
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("mmft worker did not stop")
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("connection file left: %v", err)
	}
	if log := stderr.String(); !strings.Contains(log, "worker ready") || !strings.Contains(log, "worker stopping") {
		t.Fatalf("log: %s", log)
	}
}

func TestWorkerCommandBadArguments(t *testing.T) {
	if code, _, errOut := runCLI(t, "", "worker", "--transport", "udp", "--dir", t.TempDir()); code != 1 || !strings.Contains(errOut, `transport "udp"`) {
		t.Fatalf("bad transport: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "", "worker", "extra"); code != 2 || !strings.Contains(errOut, "unexpected argument") {
		t.Fatalf("extra argument: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "", "worker", "--name", "../x", "--dir", t.TempDir()); code != 1 || !strings.Contains(errOut, "name") {
		t.Fatalf("bad name: exit %d, %q", code, errOut)
	}
}
