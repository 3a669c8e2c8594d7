package distributed

import (
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	gdist "github.com/gomlx/gomlx/pkg/core/distributed"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/execution"
)

// TestPlaceTrainingOnCPU maps layouts to placements on GoMLX's pure-Go
// backend, which has one device and no AutoSharding: the one training
// device without a mesh; several training devices or GPUs beyond the
// backend's are refused with the reason.
func TestPlaceTrainingOnCPU(t *testing.T) {
	be, err := compute.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	if CanShard(be) {
		t.Fatal("the pure-Go backend claims AutoSharding")
	}
	p, err := PlaceTraining(be, Layout{GPUs: 1, Rollout: []int{0}, Train: []int{0}}, FSDP{})
	if err != nil || p.Mesh != nil || p.Device != 0 {
		t.Errorf("colocated on the CPU: %+v, %v", p, err)
	}
	for _, c := range []struct {
		l    Layout
		want string
	}{
		{Layout{GPUs: 2, Rollout: []int{1}, Train: []int{0}}, "GPU 1 of layout"},
		{Layout{GPUs: 1, Rollout: []int{0}}, "no training GPU"},
	} {
		if _, err := PlaceTraining(be, c.l, FSDP{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.l, err, c.want)
		}
	}
	// A backend of 4 devices without AutoSharding cannot train on 3.
	four := fourDevices{be}
	if _, err := PlaceTraining(four, Layout{GPUs: 4, Rollout: []int{3}, Train: []int{0, 1, 2}}, FSDP{}); err == nil ||
		!strings.Contains(err.Error(), "cannot shard a program over 3 training devices") {
		t.Errorf("3 training devices without AutoSharding: %v", err)
	}
	p, err = PlaceTraining(four, Layout{GPUs: 4, Rollout: []int{3}, Train: []int{2}}, FSDP{})
	if err != nil || p.Mesh != nil || p.Device != 2 {
		t.Errorf("split 2+3 without AutoSharding: %+v, %v", p, err)
	}
}

// fourDevices claims four devices (for the layout checks only; nothing runs).
type fourDevices struct{ backends.Backend }

func (fourDevices) NumDevices() int { return 4 }

// TestTrainPlacementMesh checks the mesh a sharding backend gets: one
// "fsdp" axis over the training GPUs in order, FSDP's specs, device 0 of the
// mesh as the placement's device.
func TestTrainPlacementMesh(t *testing.T) {
	p, err := TrainPlacement(Layout{GPUs: 4, Rollout: []int{0}, Train: []int{1, 2, 3}}, FSDP{Roles: GRPORoles(3, 2)})
	if err != nil {
		t.Fatal(err)
	}
	if p.Mesh == nil || p.Mesh.Mesh.NumDevices() != 3 || p.Device != 1 || len(p.Mesh.Devices) != 3 || p.Mesh.Devices[2] != 3 {
		t.Fatalf("placement %+v", p)
	}
	f, ok := p.Mesh.Sharding.(FSDP)
	if !ok || f.Mesh != p.Mesh.Mesh || f.Roles == nil {
		t.Errorf("sharding %T %+v is not the FSDP of the mesh", p.Mesh.Sharding, f)
	}
}

// TestTrainWeights lays base weights out for the trainer: shared on the
// same device, wrapped as shards on a mesh of one, split on a mesh of two;
// the engine's tensors are never replaced.
func TestTrainWeights(t *testing.T) {
	be, err := compute.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	w := tensors.FromFlatDataAndDimensions(make([]float32, 64*512), 64, 512) // 32 Ki elements: split by FSDP
	small := tensors.FromFlatDataAndDimensions([]float32{1, 2, 3}, 3)
	for _, x := range []*tensors.Tensor{w, small} {
		if err := x.MaterializeOnDevice(be, false, 0); err != nil {
			t.Fatal(err)
		}
	}
	out, copied, err := TrainWeights(be, execution.Placement{}, []*tensors.Tensor{w, small})
	if err != nil || copied != 0 || out[0] != any(w) || out[1] != any(small) {
		t.Errorf("same device: %v copied %d, %v", out, copied, err)
	}
	// A host-only tensor is copied to the training device.
	h := tensors.FromFlatDataAndDimensions([]float32{4, 5}, 2)
	out, copied, err = TrainWeights(be, execution.Placement{}, []*tensors.Tensor{h})
	if err != nil || copied != 8 || out[0] == any(h) {
		t.Errorf("host tensor: copied %d, %v", copied, err)
	}
	for _, n := range []int{1, 2} {
		l := Layout{GPUs: n + 1, Rollout: []int{n}}
		for g := range n {
			l.Train = append(l.Train, g)
		}
		p, err := TrainPlacement(l, FSDP{})
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := TrainWeights(fourDevices{be}, p, []*tensors.Tensor{w, small})
		if err != nil {
			t.Fatalf("mesh of %d: %v", n, err)
		}
		d, ok := out[0].(*gdist.Tensor)
		if !ok || d.NumShards() != n || d.ShardShape().Dimensions[1] != 512/n {
			t.Errorf("mesh of %d: weight laid out as %v", n, out[0])
		}
		if n == 1 && d.Shards()[0] != w {
			t.Error("mesh of one: the weight is not its own shard")
		}
		if s := out[1].(*gdist.Tensor); !s.ShardingSpec().IsReplicated() {
			t.Errorf("mesh of %d: a 3-element tensor is %s, want replicated", n, s.ShardingSpec())
		}
	}
	if _, _, err := TrainWeights(be, execution.Placement{Mesh: &execution.Mesh{}}, []*tensors.Tensor{w}); err == nil ||
		!strings.Contains(err.Error(), "want the FSDP") {
		t.Errorf("mesh without FSDP: %v", err)
	}
}
