package distributed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestHandshakeLoopback(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 4
	res := make([]Cluster, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for p := n - 1; p >= 0; p-- { // workers first: they retry until the coordinator listens
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[p], errs[p] = Handshake(ctx, addr, n, Peer{Process: p, Host: fmt.Sprintf("host%d", p), GPUs: 8})
		}()
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	for p := range n {
		if errs[p] != nil {
			t.Fatalf("process %d: %v", p, errs[p])
		}
		if len(res[p].Peers) != n || res[p].Peers[2].Host != "host2" || res[p].NumGPUs() != 32 || res[p].FirstGPU(3) != 24 {
			t.Errorf("process %d sees %+v", p, res[p])
		}
	}
	l, err := ClusterLayout(res[1], 1)
	if err != nil || len(l.Train) != 28 || l.Rollout[1] != 15 {
		t.Errorf("cluster layout %v, %v", l, err)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var coordErr, workerErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, coordErr = Handshake(ctx, addr, 2, Peer{Process: 0, GPUs: 1}) }()
	go func() { defer wg.Done(); _, workerErr = Handshake(ctx, addr, 3, Peer{Process: 1, GPUs: 1}) }()
	wg.Wait()
	if coordErr == nil || !strings.Contains(coordErr.Error(), "expects 3 processes, the coordinator 2") {
		t.Errorf("coordinator: %v", coordErr)
	}
	if workerErr == nil || !strings.Contains(workerErr.Error(), "refused") {
		t.Errorf("worker: %v", workerErr)
	}
	// No coordinator: the worker gives up when its context ends, naming the address.
	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if _, err := Handshake(short, freeAddr(t), 2, Peer{Process: 1, GPUs: 1}); err == nil || !strings.Contains(err.Error(), "no coordinator at") {
		t.Errorf("no coordinator: %v", err)
	}
	if _, err := Handshake(ctx, addr, 2, Peer{Process: 2, GPUs: 1}); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("bad index: %v", err)
	}
	if c, err := Handshake(ctx, addr, 1, Peer{Process: 0, GPUs: 2}); err != nil || c.NumGPUs() != 2 {
		t.Errorf("one process: %+v, %v", c, err)
	}
}

// TestHandshakeChild is a worker process of TestHandshakeProcesses (it
// runs only when started by it).
func TestHandshakeChild(t *testing.T) {
	if os.Getenv("MMFT_TEST_HANDSHAKE_CHILD") != "1" {
		t.Skip("started by TestHandshakeProcesses only")
	}
	f, err := ProcessFlagsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Handshake(ctx, f.Coordinator, f.NumProcesses, Peer{Process: f.ProcessID, Host: fmt.Sprintf("child%d", f.ProcessID), GPUs: 2 + f.ProcessID})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c)
	fmt.Printf("CLUSTER %s\n", b)
}

func TestHandshakeProcesses(t *testing.T) {
	// The coordinator here, two workers as separate processes over loopback,
	// configured the way a launcher would: through the environment.
	addr := freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	outs := make([]*bytes.Buffer, 3)
	var cmds []*exec.Cmd
	for p := 1; p <= 2; p++ {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHandshakeChild$", "-test.v")
		cmd.Env = append(os.Environ(), "MMFT_TEST_HANDSHAKE_CHILD=1", EnvCoordinator+"="+addr, fmt.Sprintf("%s=%d", EnvProcessID, p), EnvNumProcesses+"=3")
		outs[p] = &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = outs[p], outs[p]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	c, err := Handshake(ctx, addr, 3, Peer{Process: 0, Host: "parent", GPUs: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("worker %d: %v\n%s", i+1, err, outs[i+1])
		}
	}
	if c.NumGPUs() != 4+3+4 || c.Peers[2].Host != "child2" || c.FirstGPU(2) != 7 {
		t.Errorf("coordinator sees %+v", c)
	}
	for p := 1; p <= 2; p++ {
		_, line, ok := strings.Cut(outs[p].String(), "CLUSTER ")
		line, _, _ = strings.Cut(line, "\n")
		var got Cluster
		if !ok || json.Unmarshal([]byte(line), &got) != nil || len(got.Peers) != 3 || got.Peers[0].Host != "parent" || got.Peers[1].GPUs != 3 {
			t.Errorf("worker %d printed %q", p, outs[p])
		}
	}
}

func TestProcessFlags(t *testing.T) {
	t.Setenv(EnvCoordinator, "")
	t.Setenv(EnvProcessID, "")
	t.Setenv(EnvNumProcesses, "")
	if f, err := ProcessFlagsFromEnv(); err != nil || f.NumProcesses != 1 || f.ProcessID != 0 {
		t.Errorf("unset: %+v, %v", f, err)
	}
	for _, c := range []struct {
		f    ProcessFlags
		want string
	}{
		{ProcessFlags{NumProcesses: 0}, "need at least one"},
		{ProcessFlags{NumProcesses: 2, ProcessID: 2, Coordinator: "h:1"}, "out of range 0…1"},
		{ProcessFlags{NumProcesses: 2}, "need --coordinator"},
		{ProcessFlags{NumProcesses: 2, Coordinator: "nohostport"}, "want HOST:PORT"},
	} {
		if err := c.f.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.f, err, c.want)
		}
	}
	t.Setenv(EnvProcessID, "x")
	if _, err := ProcessFlagsFromEnv(); err == nil || !strings.Contains(err.Error(), "MMFT_PROCESS_ID") {
		t.Errorf("bad env: %v", err)
	}
}
