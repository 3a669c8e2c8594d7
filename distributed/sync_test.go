package distributed

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/compute"
)

func TestSyncerSharedAndCopied(t *testing.T) {
	be, err := compute.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	a := tensors.FromFlatDataAndDimensions([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	b := tensors.FromFlatDataAndDimensions([]float32{7, 8}, 2, 1)
	for _, x := range []*tensors.Tensor{a, b} {
		if err := x.MaterializeOnDevice(be, false, 0); err != nil {
			t.Fatal(err)
		}
	}
	var logged []SyncStats
	s := Syncer{Backend: be, To: 0, Log: func(st SyncStats) { logged = append(logged, st) }}
	// Colocated: the tensors already are on the rollout device: shared, nothing copied.
	out, st, err := s.Push(1, []*tensors.Tensor{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if out[0] != a || out[1] != b || st.Bytes != 0 || st.Route != "shared" || len(logged) != 1 {
		t.Errorf("colocated push: %+v, same tensors %v", st, out[0] == a)
	}
	// Host tensors (not on the device): copied, bytes counted, values equal,
	// the copies independent of the originals.
	h := tensors.FromFlatDataAndDimensions([]float32{1, 2, 3}, 3)
	out, st, err = s.Push(2, []*tensors.Tensor{h})
	if err != nil {
		t.Fatal(err)
	}
	if out[0] == h || st.Bytes != 12 || st.Tensors != 1 || st.Version != 2 {
		t.Errorf("host push: %+v", st)
	}
	if got := tensors.MustCopyFlatData[float32](out[0]); got[2] != 3 {
		t.Errorf("copied values %v", got)
	}
	if !strings.Contains(st.String(), "v2: 1 tensors, 12 bytes") {
		t.Errorf("log line %q", st)
	}
	if _, _, err := s.Push(3, []*tensors.Tensor{nil}); err == nil || !strings.Contains(err.Error(), "tensor 0 is nil") {
		t.Errorf("nil tensor: %v", err)
	}
}

func TestGateStaleness(t *testing.T) {
	var g Gate
	g.Stepped(3)
	if err := g.Check(3); err != nil {
		t.Errorf("current adapter refused: %v", err)
	}
	if err := g.Check(2); err == nil || !strings.Contains(err.Error(), "1 steps stale, 0 allowed") {
		t.Errorf("stale adapter: %v", err)
	}
	off := Gate{MaxLag: 1}
	off.Stepped(3)
	if err := off.Check(2); err != nil {
		t.Errorf("off-policy lag 1 refused: %v", err)
	}
	if err := off.Check(1); err == nil {
		t.Error("lag 2 allowed with MaxLag 1")
	}
}

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
