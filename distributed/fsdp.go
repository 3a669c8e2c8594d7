package distributed

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	gdist "github.com/gomlx/gomlx/pkg/core/distributed"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/execution"
)

// Axis is the name of the training mesh's one axis: parameters, gradients,
// optimizer state and the batch are all split along it (ZeRO-3 / FSDP).
const Axis = "fsdp"

// DefaultMinElements is the size below which FSDP replicates a value:
// splitting norms' scales and biases saves nothing worth a collective.
const DefaultMinElements = 1 << 14

// NewMesh returns the one-axis FSDP mesh over n devices.
func NewMesh(n int) (*gdist.DeviceMesh, error) {
	if n < 1 {
		return nil, fmt.Errorf("distributed: a mesh of %d devices: need at least one", n)
	}
	m, err := gdist.NewDeviceMesh([]int{n}, []string{Axis})
	if err != nil {
		return nil, fmt.Errorf("distributed: mesh of %d: %w", n, err)
	}
	return m, nil
}

// TrainPlacement returns the execution placement of the trainer's programs
// for layout l: the FSDP mesh over l.Train with sharding f (f.Mesh is set to
// the new mesh). On a one-GPU layout it is a mesh of one, which runs the
// same sharded path.
func TrainPlacement(l Layout, f FSDP) (execution.Placement, error) {
	if len(l.Train) == 0 {
		return execution.Placement{}, fmt.Errorf("distributed: layout has no training GPU")
	}
	mesh, err := NewMesh(len(l.Train))
	if err != nil {
		return execution.Placement{}, err
	}
	f.Mesh = mesh
	devs := make([]backends.DeviceNum, len(l.Train))
	for i, g := range l.Train {
		devs[i] = backends.DeviceNum(g)
	}
	return execution.Placement{Device: devs[0], Mesh: &execution.Mesh{Mesh: mesh, Devices: devs, Sharding: f}}, nil
}

// Role says how FSDP lays out one input.
type Role struct {
	kind roleKind
	axis int
}

type roleKind int

const (
	roleParam roleKind = iota
	roleReplicated
	roleBatch
)

// Param is the role of parameters and their state (base weights, adapters,
// gradients, Adam moments): split along their largest axis that divides
// evenly over the mesh, replicated when small or when none divides.
var Param = Role{kind: roleParam}

// Replicated is the role of values every device needs whole (learning rate,
// step counters, gathered tables).
var Replicated = Role{kind: roleReplicated}

// Batch is the role of a batch input whose examples run along axis: split
// along it (replicated when it does not divide evenly: still correct, each
// device then computes the whole batch).
func Batch(axis int) Role { return Role{kind: roleBatch, axis: axis} }

// String names the role.
func (r Role) String() string {
	switch r.kind {
	case roleReplicated:
		return "replicated"
	case roleBatch:
		return fmt.Sprintf("batch(axis %d)", r.axis)
	}
	return "param"
}

// FSDP is the ZeRO-3 sharding of the trainer's programs over a one-axis
// mesh: every input gets a Role (from Roles, else Param), outputs are
// treated as Param (so an updated adapter or moment is laid out like the
// input it replaces, and donation reuses its buffers). It implements
// execution.Sharding.
type FSDP struct {
	// Mesh is the one-axis mesh (NewMesh); TrainPlacement sets it.
	Mesh *gdist.DeviceMesh
	// MinElements: values with fewer elements are replicated
	// (0: DefaultMinElements).
	MinElements int
	// Roles gives the roles of a program's inputs (nil or a nil result:
	// Param for all, which is always correct).
	Roles func(program string, variant any, inputs []shapes.Shape) []Role
}

// Specs implements execution.Sharding.
func (f FSDP) Specs(program string, variant any, inputs, outputs []shapes.Shape) (in, out []*gdist.ShardingSpec, err error) {
	if f.Mesh == nil || f.Mesh.Rank() != 1 {
		return nil, nil, fmt.Errorf("distributed: FSDP needs a one-axis mesh, got %v", f.Mesh)
	}
	var roles []Role
	if f.Roles != nil {
		roles = f.Roles(program, variant, inputs)
	}
	if roles != nil && len(roles) != len(inputs) {
		return nil, nil, fmt.Errorf("distributed: program %s: %d roles for %d inputs", program, len(roles), len(inputs))
	}
	in = make([]*gdist.ShardingSpec, len(inputs))
	for i, sh := range inputs {
		r := Param
		if roles != nil {
			r = roles[i]
		}
		if in[i], err = f.Spec(sh, r); err != nil {
			return nil, nil, fmt.Errorf("distributed: program %s input %d: %w", program, i, err)
		}
	}
	out = make([]*gdist.ShardingSpec, len(outputs))
	for i, sh := range outputs {
		if out[i], err = f.Spec(sh, Param); err != nil {
			return nil, nil, fmt.Errorf("distributed: program %s output %d: %w", program, i, err)
		}
	}
	return in, out, nil
}

// Spec returns the spec of a value of shape sh with role r.
func (f FSDP) Spec(sh shapes.Shape, r Role) (*gdist.ShardingSpec, error) {
	n := f.Mesh.NumDevices()
	replicated := gdist.NewReplicatedShardingSpec(f.Mesh)
	split := func(axis int) (*gdist.ShardingSpec, error) {
		axes := make([]gdist.AxisSpec, sh.Rank()) // every axis listed: GoMLX's shard shapes need the full rank
		axes[axis] = gdist.AxisSpec{Axis}
		return gdist.NewShardingSpec(f.Mesh, axes...)
	}
	switch r.kind {
	case roleReplicated:
		return replicated, nil
	case roleBatch:
		if r.axis < 0 || r.axis >= sh.Rank() {
			return nil, fmt.Errorf("batch axis %d of a value %s of rank %d", r.axis, sh, sh.Rank())
		}
		if sh.Dimensions[r.axis]%n != 0 {
			return replicated, nil
		}
		return split(r.axis)
	}
	minimum := f.MinElements
	if minimum == 0 {
		minimum = DefaultMinElements
	}
	if sh.Rank() == 0 || sh.Size() < minimum {
		return replicated, nil
	}
	best := -1
	for axis, d := range sh.Dimensions {
		if d%n == 0 && (best < 0 || d > sh.Dimensions[best]) {
			best = axis
		}
	}
	if best < 0 {
		return replicated, nil
	}
	return split(best)
}

// ShardedBytes is the bytes one device holds of a value of shape sh laid out
// by spec (its shard's size).
func ShardedBytes(spec *gdist.ShardingSpec, sh shapes.Shape) int64 {
	b := int64(sh.Memory())
	for axis := range min(spec.Rank(), sh.Rank()) {
		b /= int64(spec.NumDevicesShardingAxis(axis))
	}
	return b
}

// Shard lays whole tensors out on the mesh by role r, for passing to
// execution.Runner as already-sharded inputs (the trainer's base weights:
// split once, each shard then stays on its device across steps). On a mesh
// of one each tensor is its own shard (no copy); otherwise the split runs
// on the host and the shards reach their devices at the first call.
func (f FSDP) Shard(ts []*tensors.Tensor, r Role) ([]*gdist.Tensor, error) {
	out := make([]*gdist.Tensor, len(ts))
	for i, t := range ts {
		spec, err := f.Spec(t.Shape(), r)
		if err != nil {
			return nil, fmt.Errorf("distributed: tensor %d %s: %w", i, t.Shape(), err)
		}
		if f.Mesh.NumDevices() == 1 {
			out[i], err = gdist.NewTensor(spec, []*tensors.Tensor{t})
		} else {
			out[i], err = gdist.ShardTensor(spec, t)
		}
		if err != nil {
			return nil, fmt.Errorf("distributed: sharding tensor %d %s by %s: %w", i, t.Shape(), spec, err)
		}
	}
	return out, nil
}
