package distributed

import (
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/qwen2vl"
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
	// Copy: the split layout on one device gets its own copies, through the
	// host on this backend (it cannot copy between devices).
	cp := Syncer{Backend: be, To: 0, Copy: true}
	out, st, err = cp.Push(4, []*tensors.Tensor{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if out[0] == a || out[1] == b || st.Bytes != 32 || st.Tensors != 2 || st.Route != "host" {
		t.Errorf("copying push: %+v", st)
	}
	if got := tensors.MustCopyFlatData[float32](out[0]); got[5] != 6 {
		t.Errorf("copied values %v", got)
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

func TestPushLoRA(t *testing.T) {
	be, err := compute.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	a := tensors.FromFlatDataAndDimensions([]float32{1, 2}, 1, 2)
	b := tensors.FromFlatDataAndDimensions([]float32{3, 4}, 2, 1)
	l := &qwen2vl.LoRA{Modules: map[string]qwen2vl.LoRAModule{"m.q_proj": {A: a, B: b, Scale: 4}}}
	s := Syncer{Backend: be, To: 0}
	got, st, err := s.PushLoRA(5, l)
	if err != nil {
		t.Fatal(err)
	}
	mod := got.Modules["m.q_proj"]
	if st.Tensors != 2 || st.Bytes != 16 || mod.Scale != 4 || mod.A == a {
		t.Errorf("pushed %+v, module %+v", st, mod)
	}
	if v := tensors.MustCopyFlatData[float32](mod.B); v[1] != 4 {
		t.Errorf("B copied as %v", v)
	}
	// Now on the rollout device: a second push shares them (colocated).
	again, st, err := s.PushLoRA(6, got)
	if err != nil || again.Modules["m.q_proj"].A != mod.A || st.Bytes != 0 {
		t.Errorf("second push: %+v, %v", st, err)
	}
	if _, _, err := s.PushLoRA(7, nil); err == nil {
		t.Error("nil adapter accepted")
	}
}
