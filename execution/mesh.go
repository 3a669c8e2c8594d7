package execution

import (
	"fmt"
	"time"

	"github.com/gomlx/gomlx/backends"
	gdist "github.com/gomlx/gomlx/pkg/core/distributed"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// meshKey identifies one compiled program on a mesh: its program and
// variant, and a hash of its inputs' logical shapes and specs.
type meshKey struct {
	execKey
	sig uint64
}

// meshExec is a program compiled for a mesh, with the specs it was
// compiled for.
type meshExec struct {
	exec    *graph.Exec
	in, out []*gdist.ShardingSpec
}

// meshArg is one argument of a mesh call: a whole tensor to shard, or a
// tensor already sharded; donated or not.
type meshArg struct {
	whole   *tensors.Tensor
	sharded *gdist.Tensor
	donate  bool
}

func (a meshArg) shape() shapes.Shape {
	if a.sharded != nil {
		return a.sharded.Shape()
	}
	return a.whole.Shape()
}

// MeshDevices returns the backend devices of the placement's mesh positions
// (Devices, or 0…n−1), checked against the mesh and the backend.
func (p Placement) MeshDevices(backend backends.Backend) ([]backends.DeviceNum, error) {
	if p.Mesh == nil || p.Mesh.Mesh == nil {
		return nil, fmt.Errorf("execution: placement has no mesh")
	}
	n := p.Mesh.Mesh.NumDevices()
	devs := p.Mesh.Devices
	if devs == nil {
		devs = make([]backends.DeviceNum, n)
		for i := range devs {
			devs[i] = backends.DeviceNum(i)
		}
	}
	if len(devs) != n {
		return nil, fmt.Errorf("execution: placement lists %d devices for a mesh of %d: give one device per mesh position", len(devs), n)
	}
	seen := map[backends.DeviceNum]bool{}
	for _, d := range devs {
		if int(d) < 0 || int(d) >= backend.NumDevices() {
			return nil, fmt.Errorf("execution: mesh device %d is out of range: backend %s has %d device(s)", d, backend.Name(), backend.NumDevices())
		}
		if seen[d] {
			return nil, fmt.Errorf("execution: mesh device %d is listed twice", d)
		}
		seen[d] = true
	}
	return devs, nil
}

// RunSharded executes prog over the placement's mesh and returns its
// outputs sharded as the Sharding decided (shards on their devices, nothing
// gathered). Args are *tensors.Tensor (split on the host by the decided
// spec), *gdist.Tensor (used as sharded) or Donated values of either. It
// needs a mesh placement and a backend with AutoSharding (XLA); GoMLX's
// pure-Go backend has neither several devices nor AutoSharding.
func (r *Runner) RunSharded(prog *Program, variant any, args ...any) (outs []*gdist.Tensor, err error) {
	if r.place.Mesh == nil || r.place.Mesh.Mesh == nil {
		return nil, fmt.Errorf("execution: program %s: RunSharded needs a placement with a mesh", prog.name)
	}
	mesh := r.place.Mesh.Mesh
	defer func() {
		if rec := recover(); rec != nil {
			err = fmt.Errorf("execution: program %s on mesh %v: %v", prog.name, mesh, rec)
		}
	}()
	devs, err := r.place.MeshDevices(r.backend)
	if err != nil {
		return nil, fmt.Errorf("execution: program %s: %w", prog.name, err)
	}
	margs := make([]meshArg, len(args))
	inShapes := make([]shapes.Shape, len(args))
	sig := uint64(14695981039346656037)
	mix := func(v int) { sig = (sig ^ uint64(v)) * 1099511628211 }
	mixString := func(s string) {
		for _, c := range []byte(s) {
			mix(int(c))
		}
		mix(-1)
	}
	for i, a := range args {
		switch v := a.(type) {
		case *tensors.Tensor:
			margs[i] = meshArg{whole: v}
		case *gdist.Tensor:
			margs[i] = meshArg{sharded: v}
		case Donated:
			margs[i] = meshArg{whole: v.T, sharded: v.S, donate: true}
		default:
			return nil, fmt.Errorf("execution: program %s: argument %d is a %T, want *tensors.Tensor, *distributed.Tensor or Donated", prog.name, i, a)
		}
		if margs[i].sharded != nil {
			if margs[i].sharded.Mesh() != mesh {
				return nil, fmt.Errorf("execution: program %s: argument %d is sharded over another mesh (%v), not the placement's %v", prog.name, i, margs[i].sharded.Mesh(), mesh)
			}
			mixString(margs[i].sharded.ShardingSpec().String())
		} else if margs[i].whole == nil {
			return nil, fmt.Errorf("execution: program %s: argument %d is a nil tensor", prog.name, i)
		}
		sh := margs[i].shape()
		inShapes[i] = sh
		mix(int(sh.DType))
		mix(len(sh.Dimensions))
		for _, d := range sh.Dimensions {
			mix(d)
		}
	}
	key := meshKey{execKey{prog, variant, 0}, sig}
	r.mu.Lock()
	me, ok := r.meshes[key]
	r.mu.Unlock()
	var t0 time.Time
	if !ok {
		// Compiled at its first call: CompileTime counts the deciding, the
		// compilation and that first run.
		t0 = time.Now()
		if me, err = r.compileMesh(prog, variant, margs, inShapes, devs); err != nil {
			return nil, err
		}
		r.mu.Lock()
		if prev, dup := r.meshes[key]; dup {
			me, t0 = prev, time.Time{}
		} else {
			r.meshes[key] = me
			r.stats.Programs++
			r.stats.ByProgram[prog.name]++
		}
		r.mu.Unlock()
	}

	// Flatten device-major: [device 0's inputs…, device 1's inputs…, …].
	n := len(devs)
	flat := make([]any, n*len(margs))
	for i, a := range margs {
		dt := a.sharded
		switch {
		case dt == nil && n == 1:
			// A mesh of one: the tensor is its own shard (no host copy).
			if dt, err = gdist.NewTensor(me.in[i], []*tensors.Tensor{a.whole}); err != nil {
				return nil, fmt.Errorf("execution: program %s: argument %d: %w", prog.name, i, err)
			}
		case dt == nil:
			if dt, err = gdist.ShardTensor(me.in[i], a.whole); err != nil {
				return nil, fmt.Errorf("execution: program %s: sharding argument %d (%s) by %s: %w", prog.name, i, a.whole.Shape(), me.in[i], err)
			}
		case dt.ShardingSpec().String() != me.in[i].String():
			return nil, fmt.Errorf("execution: program %s: argument %d is sharded %s, compiled for %s", prog.name, i, dt.ShardingSpec(), me.in[i])
		}
		for d, shard := range dt.Shards() {
			if !a.donate {
				flat[d*len(margs)+i] = shard
				continue
			}
			if flat[d*len(margs)+i], err = graph.DonateTensorBuffer(shard, r.backend, devs[d]); err != nil {
				return nil, fmt.Errorf("execution: program %s: donating argument %d shard %d: %w", prog.name, i, d, err)
			}
		}
	}
	tRun := time.Now()
	res, g, err := me.exec.ExecWithGraphOnDevice(devs[0], flat...)
	wall := time.Since(tRun)
	if err != nil {
		return nil, fmt.Errorf("execution: running %s on mesh %v: %w", prog.name, mesh, err)
	}
	nOut := len(me.out)
	if len(res) != n*nOut {
		return nil, fmt.Errorf("execution: program %s: %d outputs from %d devices, want %d per device", prog.name, len(res), n, nOut)
	}
	outs = make([]*gdist.Tensor, nOut)
	for j := range nOut {
		shards := make([]*tensors.Tensor, n)
		for d := range n {
			shards[d] = res[d*nOut+j]
		}
		if outs[j], err = gdist.NewTensor(me.out[j], shards); err != nil {
			return nil, fmt.Errorf("execution: program %s: output %d: %w", prog.name, j, err)
		}
	}
	r.ran(prog.name, g, wall)
	if !t0.IsZero() {
		r.mu.Lock()
		r.stats.CompileTime += time.Since(t0)
		r.mu.Unlock()
	}
	return outs, nil
}

// compileMesh decides the specs of a program's inputs and outputs and
// compiles it over the mesh.
func (r *Runner) compileMesh(prog *Program, variant any, margs []meshArg, inShapes []shapes.Shape, devs []backends.DeviceNum) (*meshExec, error) {
	mesh := r.place.Mesh.Mesh
	outShapes, err := OutputShapes(r.backend, prog, variant, inShapes)
	if err != nil {
		return nil, err
	}
	in, out, err := r.Specs(prog, variant, inShapes, outShapes)
	if err != nil {
		return nil, err
	}
	for i, a := range margs {
		if a.sharded != nil {
			in[i] = a.sharded.ShardingSpec()
		}
	}
	exec, err := graph.NewExec(r.backend, func(nodes []*graph.Node) []*graph.Node { return prog.build(variant, nodes) })
	if err != nil {
		return nil, fmt.Errorf("execution: program %s: %w", prog.name, err)
	}
	exec = exec.WithName(prog.name).SetMaxCache(1).AutoSharding(mesh).WithDeviceAssignment(devs).
		WithInputShardingSpecs(in...).WithOutputShardingSpecs(out...)
	return &meshExec{exec: exec, in: in, out: out}, nil
}

// Specs returns the full input and output specs the runner compiles prog
// with on its mesh for the given logical shapes: the Sharding's decisions
// with replicated specs in place of nil, each checked against its shape
// (a sharded axis must divide evenly). It is how a tool or test sees the
// layout without compiling.
func (r *Runner) Specs(prog *Program, variant any, inShapes, outShapes []shapes.Shape) (in, out []*gdist.ShardingSpec, err error) {
	if r.place.Mesh == nil || r.place.Mesh.Mesh == nil {
		return nil, nil, fmt.Errorf("execution: program %s: no mesh to shard over", prog.name)
	}
	mesh := r.place.Mesh.Mesh
	if r.place.Mesh.Sharding != nil {
		if in, out, err = r.place.Mesh.Sharding.Specs(prog.name, variant, inShapes, outShapes); err != nil {
			return nil, nil, fmt.Errorf("execution: program %s: sharding: %w", prog.name, err)
		}
	}
	if in, err = completeSpecs(mesh, in, inShapes); err != nil {
		return nil, nil, fmt.Errorf("execution: program %s: input %w", prog.name, err)
	}
	if out, err = completeSpecs(mesh, out, outShapes); err != nil {
		return nil, nil, fmt.Errorf("execution: program %s: output %w", prog.name, err)
	}
	return in, out, nil
}

// completeSpecs fills nil (or missing) specs with replicated ones and checks
// each against its shape.
func completeSpecs(mesh *gdist.DeviceMesh, specs []*gdist.ShardingSpec, shs []shapes.Shape) ([]*gdist.ShardingSpec, error) {
	if len(specs) > len(shs) {
		return nil, fmt.Errorf("specs: %d given for %d values", len(specs), len(shs))
	}
	out := make([]*gdist.ShardingSpec, len(shs))
	for i, sh := range shs {
		var s *gdist.ShardingSpec
		if i < len(specs) {
			s = specs[i]
		}
		if s == nil {
			out[i] = gdist.NewReplicatedShardingSpec(mesh)
			continue
		}
		if err := CheckSpec(s, sh); err != nil {
			return nil, fmt.Errorf("%d: %w", i, err)
		}
		out[i] = s
	}
	return out, nil
}

// CheckSpec reports whether spec can shard a value of shape sh: no more
// axes than its rank, and every sharded axis divisible by the mesh axes it
// is split over.
func CheckSpec(spec *gdist.ShardingSpec, sh shapes.Shape) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("spec %s: %w", spec, err)
	}
	if spec.Rank() > sh.Rank() {
		return fmt.Errorf("spec %s has %d axes, the value %s only %d", spec, spec.Rank(), sh, sh.Rank())
	}
	for axis := range spec.Rank() {
		if n := spec.NumDevicesShardingAxis(axis); n > 1 && sh.Dimensions[axis]%n != 0 {
			return fmt.Errorf("spec %s splits axis %d of %s over %d devices: %d is not a multiple of %d", spec, axis, sh, n, sh.Dimensions[axis], n)
		}
	}
	return nil
}

// OutputShapes builds prog's graph for inputs of the given shapes without
// compiling it and returns its outputs' shapes.
func OutputShapes(backend backends.Backend, prog *Program, variant any, inShapes []shapes.Shape) (out []shapes.Shape, err error) {
	g := graph.NewGraph(backend, prog.name+".shapes")
	defer g.Finalize()
	defer func() {
		if rec := recover(); rec != nil {
			err = fmt.Errorf("execution: program %s: building for shapes: %v", prog.name, rec)
		}
	}()
	nodes := make([]*graph.Node, len(inShapes))
	for i, sh := range inShapes {
		nodes[i] = graph.Parameter(g, fmt.Sprintf("arg%d", i), sh)
	}
	for _, o := range prog.build(variant, nodes) {
		out = append(out, o.Shape())
	}
	return out, nil
}

// wholeTensors returns sharded outputs as whole tensors: a one-device
// tensor's shard as is, larger ones merged on the host.
func wholeTensors(name string, ds []*gdist.Tensor) ([]*tensors.Tensor, error) {
	out := make([]*tensors.Tensor, len(ds))
	for i, d := range ds {
		if d.NumShards() == 1 {
			out[i] = d.Shards()[0]
			continue
		}
		t, err := d.Merge()
		if err != nil {
			return nil, fmt.Errorf("execution: program %s: gathering output %d: %w", name, i, err)
		}
		out[i] = t
	}
	return out, nil
}
