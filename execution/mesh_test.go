package execution

import (
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/distributed"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// rowSharding splits every input and output of rank ≥ 1 along axis 0.
type rowSharding struct{ mesh *distributed.DeviceMesh }

func (s rowSharding) Specs(_ string, _ any, in, out []shapes.Shape) (a, b []*distributed.ShardingSpec, err error) {
	spec := func(shs []shapes.Shape) []*distributed.ShardingSpec {
		r := make([]*distributed.ShardingSpec, len(shs))
		for i, sh := range shs {
			if sh.Rank() > 0 {
				axes := make([]distributed.AxisSpec, sh.Rank())
				axes[0] = distributed.AxisSpec{"x"}
				r[i], err = distributed.NewShardingSpec(s.mesh, axes...)
			}
		}
		return r
	}
	return spec(in), spec(out), err
}

func TestMeshSpecsAndShapes(t *testing.T) {
	be, err := simplego.New("parallelism=4")
	if err != nil {
		t.Fatal(err)
	}
	mesh, err := distributed.NewDeviceMesh([]int{4}, []string{"x"})
	if err != nil {
		t.Fatal(err)
	}
	r := New(be, Placement{Mesh: &Mesh{Mesh: mesh, Sharding: rowSharding{mesh}}})
	sum := NewProgram("sum", func(_ any, in []*Node) []*Node { return []*Node{Add(in[0], in[1]), ReduceAllSum(in[0])} })
	in := []shapes.Shape{shapes.Make(dtypes.Float32, 8, 3), shapes.Make(dtypes.Float32, 8, 3)}
	out, err := OutputShapes(be, sum, nil, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || !out[0].Equal(in[0]) || out[1].Rank() != 0 {
		t.Fatalf("output shapes %v", out)
	}
	inSpecs, outSpecs, err := r.Specs(sum, nil, in, out)
	if err != nil {
		t.Fatal(err)
	}
	if inSpecs[0].NumDevicesShardingAxis(0) != 4 || outSpecs[0].NumDevicesShardingAxis(0) != 4 || !outSpecs[1].IsReplicated() {
		t.Errorf("specs in %v out %v", inSpecs, outSpecs)
	}
	// A spec that does not divide its shape is refused, naming the program.
	odd := []shapes.Shape{shapes.Make(dtypes.Float32, 6, 3), shapes.Make(dtypes.Float32, 6, 3)}
	if _, _, err := r.Specs(sum, nil, odd, out); err == nil || !strings.Contains(err.Error(), "6 is not a multiple of 4") || !strings.Contains(err.Error(), "sum") {
		t.Errorf("indivisible: %v", err)
	}
	// The pure-Go backend has one device: a mesh of 4 is refused before anything runs.
	x := tensors.FromFlatDataAndDimensions(make([]float32, 24), 8, 3)
	if _, err := r.Run(sum, nil, x, x); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("mesh of 4 on one device: %v", err)
	}
	if _, err := (Placement{Mesh: &Mesh{Mesh: mesh, Devices: []backends.DeviceNum{0, 0, 0, 0}}}).MeshDevices(be); err == nil {
		t.Error("repeated devices accepted")
	}
	if _, err := (Placement{Mesh: &Mesh{Mesh: mesh, Devices: []backends.DeviceNum{0}}}).MeshDevices(be); err == nil || !strings.Contains(err.Error(), "1 devices for a mesh of 4") {
		t.Errorf("short device list: %v", err)
	}
}

func TestMeshOfOneNeedsAutoSharding(t *testing.T) {
	// A mesh of one takes the sharded path; the pure-Go backend has no
	// AutoSharding, so it fails with an error naming the program (on XLA
	// the same call runs: bench/fsdp compares it with the unsharded step).
	be, err := simplego.New("parallelism=4")
	if err != nil {
		t.Fatal(err)
	}
	mesh, _ := distributed.NewDeviceMesh([]int{1}, []string{"x"})
	r := New(be, Placement{Mesh: &Mesh{Mesh: mesh}})
	p := NewProgram("double", func(_ any, in []*Node) []*Node { return []*Node{MulScalar(in[0], 2)} })
	x := tensors.FromFlatDataAndDimensions([]float32{1, 2}, 2)
	_, err = r.Run(p, nil, x)
	if err == nil || !strings.Contains(err.Error(), "double") {
		t.Fatalf("mesh of one on simplego: %v", err)
	}
	t.Logf("simplego refuses the sharded path: %v", err)
	// A sharded donation on a plain placement is refused clearly.
	plain := New(be, Placement{})
	if _, err := plain.Run(p, nil, Donated{}); err == nil || !strings.Contains(err.Error(), "no mesh") {
		t.Errorf("sharded donation without a mesh: %v", err)
	}
	if _, err := plain.RunSharded(p, nil, x); err == nil || !strings.Contains(err.Error(), "needs a placement with a mesh") {
		t.Errorf("RunSharded without a mesh: %v", err)
	}
}
