// Package execution compiles and runs GoMLX graphs for the packages that
// build on the model (engine, trainer, distributed worker): compiled programs
// keyed by graph identity and input shapes, their placement on a device or
// a mesh of devices (sharded with GoMLX AutoSharding, see Placement and
// RunSharded), donation of buffers that a call replaces, and shape buckets
// that bound how many programs a dataset compiles.
//
// A Program is a graph definition; its identity is the *Program value plus a
// comparable variant (e.g. an adapter layout or a cache capacity) that the
// builder bakes into the graph. Two programs never share a compiled graph,
// whatever their names. Within one (program, variant), GoMLX compiles once
// per distinct list of input shapes; callers pad shapes with Bucket so that
// this list stays short.
package execution

import (
	"fmt"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/gomlx/gomlx/backends"
	gdist "github.com/gomlx/gomlx/pkg/core/distributed"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Builder builds a graph's outputs from its inputs (in call order) and the
// variant the program was run with.
type Builder func(variant any, inputs []*graph.Node) []*graph.Node

// Program is a graph definition. Create each one once (e.g. when an engine or
// trainer is built) and run it many times: its pointer is its identity.
type Program struct {
	name  string
	build Builder
}

// NewProgram defines a program; name is used in messages and compiled
// program names only, never as a cache key.
func NewProgram(name string, build Builder) *Program {
	return &Program{name: name, build: build}
}

// Name returns the program's name.
func (p *Program) Name() string { return p.name }

// Placement says where programs run: one device (Mesh nil), or every device
// of a mesh with GoMLX's AutoSharding (XLA Shardy over PJRT): the program is
// written once for the whole batch and XLA partitions it and inserts the
// collectives from the sharding specs of its inputs and outputs. Placement
// values are comparable (the zero value: device 0, no mesh).
type Placement struct {
	// Device is the backend device the inputs are placed on and the
	// programs run on when Mesh is nil.
	Device backends.DeviceNum
	// Mesh, when set, runs every program over all its devices (a mesh of
	// one included: the same sharded path, no special case).
	Mesh *Mesh
}

// Mesh is a mesh placement: the devices and how values are laid out on them.
type Mesh struct {
	// Mesh is GoMLX's device mesh (axes and their sizes).
	Mesh *gdist.DeviceMesh
	// Devices are the backend devices of the mesh's positions, in order
	// (nil: 0…n−1); len(Devices) must equal the mesh's device count.
	Devices []backends.DeviceNum
	// Sharding decides the specs of each program's inputs and outputs; nil
	// replicates everything (correct, no memory saved). Inputs given as
	// *gdist.Tensor keep their own spec.
	Sharding Sharding
}

// Sharding decides how a program's inputs and outputs are laid out over a
// mesh. Any valid decision gives the same values (XLA inserts what is
// needed); decisions only change memory and communication.
type Sharding interface {
	// Specs returns one spec per input and one per output of program name
	// with variant, given their logical (whole) shapes; a nil entry means
	// replicated.
	Specs(program string, variant any, inputs, outputs []shapes.Shape) (in, out []*gdist.ShardingSpec, err error)
}

// Donated marks a tensor whose device buffer the call may reuse for its
// outputs (state replaced each call: a KV cache, optimizer moments). The
// tensor must not be used after the call. Exactly one of T and S is set,
// or neither for a DonatedShape.
type Donated struct {
	T *tensors.Tensor
	// S is a sharded tensor (mesh placements only), from DonateSharded.
	S *gdist.Tensor
	// shape is a DonatedShape's shape.
	shape *shapes.Shape
}

// DonatedShape stands, in a Compile, for a tensor of shape s that Run will
// donate: a program is compiled for its arguments' shapes and for which of
// them are donated (donated ones share their buffers with outputs).
func DonatedShape(s shapes.Shape) Donated { return Donated{shape: &s} }

// Donate wraps t for donation to the next Run.
func Donate(t *tensors.Tensor) Donated { return Donated{T: t} }

// DonateSharded wraps a sharded tensor for donation to the next RunSharded
// or Run on a mesh: each shard's buffer may be reused.
func DonateSharded(s *gdist.Tensor) Donated { return Donated{S: s} }

// Stats counts what a Runner compiled and ran.
type Stats struct {
	// Programs is the number of compiled graphs (one per program, variant
	// and list of input shapes).
	Programs int `json:"programs_compiled"`
	// CompileTime is the total time spent building and compiling them.
	CompileTime time.Duration `json:"compile_ns"`
	// Calls is the number of runs.
	Calls int `json:"calls"`
	// Aliased counts the donated arguments compiled to share their buffer
	// with an output (XLA backend only; see alias.go), over all programs.
	Aliased int `json:"aliased_arguments"`
	// ByProgram counts compiled graphs per program name.
	ByProgram map[string]int `json:"by_program"`
	// Runs holds, per program name, its calls and the wall time they spent
	// inside the backend's execution (argument donation, execution and the
	// wait for its results; not compilation): what a call costs the host,
	// beside what the device profile says it costs the device.
	Runs map[string]RunTime `json:"runs_by_program"`
}

// RunTime is the number of calls of one program and their total wall time
// inside the backend.
type RunTime struct {
	Calls int           `json:"calls"`
	Time  time.Duration `json:"wall_ns"`
}

// Runner compiles and runs programs on one backend and placement. It is safe
// for concurrent use.
type Runner struct {
	backend backends.Backend
	place   Placement

	mu     sync.Mutex
	meshes map[meshKey]*meshExec // mesh placements: one exec per program, variant, shapes and specs
	// execs holds one exec per program, variant and input shapes: a GoMLX
	// Exec compiles its graphs one at a time, so separate execs let
	// different shapes of one program compile concurrently (Compile).
	execs  map[execKey]*shapeExec
	stats  Stats
	graphs map[string]*graph.Graph // the last graph each program ran, by name
	// noAlias turns off the input–output aliasing of donated arguments
	// (alias.go) when MMFT_XLA_ALIAS=off: a switch for comparing, kept
	// since aliasing is new (on an H200 it removed the decode program's 56
	// cache copies per call and took the rollout from 9,201 to 11,161 new
	// tokens/s; bench/results/2026-12-02-h200-session5.md).
	noAlias bool
	// zeros is the program behind Zeros.
	zeros *Program
}

// execKey identifies one compiled graph: a program, its variant and a hash
// of its input shapes.
type execKey struct {
	prog    *Program
	variant any
	shapes  uint64
}

// shapeExec is the exec of one execKey; once is done when its graph
// compiled (err: how it failed).
type shapeExec struct {
	exec *graph.Exec
	once sync.Once
	err  error
}

// New returns a runner on backend at place. A mesh placement is checked
// when the first program runs (see Run).
func New(backend backends.Backend, place Placement) *Runner {
	return &Runner{backend: backend, place: place, execs: map[execKey]*shapeExec{}, noAlias: os.Getenv("MMFT_XLA_ALIAS") == "off",
		meshes: map[meshKey]*meshExec{}, stats: Stats{ByProgram: map[string]int{}, Runs: map[string]RunTime{}}, graphs: map[string]*graph.Graph{},
		zeros: NewProgram("execution.zeros", func(variant any, in []*graph.Node) []*graph.Node {
			z := variant.(zeroShape)
			return []*graph.Node{graph.Zeros(in[0].Graph(), shapes.Make(z.dt, z.dims[:z.rank]...))}
		})}
}

// CompileZeros compiles the program Zeros runs for shape ahead of its first
// use (as Compile does for a program).
func (r *Runner) CompileZeros(shape shapes.Shape) error {
	z, err := zeroVariant(shape)
	if err != nil {
		return err
	}
	return r.Compile(r.zeros, z, tensors.FromScalar(int32(0)))
}

// zeroVariant is the Zeros program's variant for shape.
func zeroVariant(shape shapes.Shape) (zeroShape, error) {
	z := zeroShape{dt: shape.DType, rank: shape.Rank()}
	if z.rank > len(z.dims) {
		return z, fmt.Errorf("execution: zeros %s: at most %d axes", shape, len(z.dims))
	}
	copy(z.dims[:], shape.Dimensions)
	return z, nil
}

// zeroShape is Zeros' program variant: a shape as a comparable value.
type zeroShape struct {
	dt   dtypes.DType
	rank int
	dims [8]int
}

// Zeros returns a tensor of zeros of the given shape made on the runner's
// device (a program per shape; its one input, a scalar, anchors the graph):
// no host buffer is allocated, zeroed and copied, as with tensors.FromShape
// (a few milliseconds per tens of megabytes, on the host's critical path).
func (r *Runner) Zeros(shape shapes.Shape) (*tensors.Tensor, error) {
	z, err := zeroVariant(shape)
	if err != nil {
		return nil, err
	}
	outs, err := r.Run(r.zeros, z, tensors.FromScalar(int32(0)))
	if err != nil {
		return nil, fmt.Errorf("execution: zeros %s: %w", shape, err)
	}
	return outs[0], nil
}

// Backend returns the runner's backend.
func (r *Runner) Backend() backends.Backend { return r.backend }

// Placement returns where the runner runs programs.
func (r *Runner) Placement() Placement { return r.place }

// Stats returns a snapshot of what was compiled and run so far.
func (r *Runner) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.ByProgram = make(map[string]int, len(r.stats.ByProgram))
	for k, v := range r.stats.ByProgram {
		s.ByProgram[k] = v
	}
	s.Runs = make(map[string]RunTime, len(r.stats.Runs))
	for k, v := range r.stats.Runs {
		s.Runs[k] = v
	}
	return s
}

// Graphs returns the last compiled graph each program ran, by program name:
// a tool can inspect their backend executables (e.g. compiled memory
// statistics).
func (r *Runner) Graphs() map[string]*graph.Graph {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]*graph.Graph, len(r.graphs))
	for k, v := range r.graphs {
		out[k] = v
	}
	return out
}

// Run executes prog with variant (a comparable value, nil for none) on args:
// *tensors.Tensor values, or Donated ones. The first call with a new list of
// input shapes compiles (counted in Stats). GoMLX panics during building or
// running come back as errors naming the program.
//
// On a mesh placement args may also be *gdist.Tensor values, and the
// outputs come back whole: on a mesh of one the single shard itself (no
// copy), on larger meshes gathered through the host (use RunSharded to keep
// them sharded on the devices).
func (r *Runner) Run(prog *Program, variant any, args ...any) (outs []*tensors.Tensor, err error) {
	if variant != nil && !reflect.TypeOf(variant).Comparable() {
		return nil, fmt.Errorf("execution: program %s: variant of type %T is not comparable", prog.name, variant)
	}
	if r.place.Mesh != nil {
		sharded, err := r.RunSharded(prog, variant, args...)
		if err != nil {
			return nil, err
		}
		return wholeTensors(prog.name, sharded)
	}
	defer func() {
		if rec := recover(); rec != nil {
			err = fmt.Errorf("execution: program %s: %v", prog.name, rec)
		}
	}()
	se, err := r.compile(prog, variant, args, false)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	call := make([]any, len(args))
	for i, a := range args {
		if d, ok := a.(Donated); ok {
			if call[i], err = graph.DonateTensorBuffer(d.T, r.backend, r.place.Device); err != nil {
				return nil, fmt.Errorf("execution: program %s: donating argument %d: %w", prog.name, i, err)
			}
			continue
		}
		call[i] = a
	}
	outs, g, err := se.exec.ExecWithGraphOnDevice(r.place.Device, call...)
	if err != nil {
		return nil, fmt.Errorf("execution: running %s: %w", prog.name, err)
	}
	r.ran(prog.name, g, time.Since(t0))
	return outs, nil
}

// ran records one finished call of the program name: its graph and its wall
// time inside the backend.
func (r *Runner) ran(name string, g *graph.Graph, wall time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.graphs[name] = g
	r.stats.Calls++
	rt := r.stats.Runs[name]
	rt.Calls++
	rt.Time += wall
	r.stats.Runs[name] = rt
}

// Compile compiles prog for variant and the shapes of args (as Run would
// take them, or shapes.Shape and DonatedShape values for which zeros are
// made only when a compile is needed; values are not read, and Donated ones
// are not donated, but an argument Run will donate must be Donated here too:
// donation is compiled in)
// without running it, unless it was compiled already. Compiles of different
// programs, variants or shapes may run concurrently from several goroutines
// (PJRT compiles are independent); a later Run with the same shapes finds
// the program compiled. Single-device placements only (a mesh placement
// compiles on first run).
func (r *Runner) Compile(prog *Program, variant any, args ...any) (err error) {
	if variant != nil && !reflect.TypeOf(variant).Comparable() {
		return fmt.Errorf("execution: program %s: variant of type %T is not comparable", prog.name, variant)
	}
	if r.place.Mesh != nil {
		return nil
	}
	defer func() {
		if rec := recover(); rec != nil {
			err = fmt.Errorf("execution: compiling %s: %v", prog.name, rec)
		}
	}()
	_, err = r.compile(prog, variant, args, true)
	return err
}

// compile returns the exec of prog, variant and the shapes of args,
// compiling it first when no call did (concurrent callers of one key wait
// for one compile; a failed compile is tried again by the next caller).
func (r *Runner) compile(prog *Program, variant any, args []any, compileOnly bool) (*shapeExec, error) {
	plain := make([]any, len(args))
	donated := make([]bool, len(args))
	sig := uint64(14695981039346656037) // FNV-1a over every input's dtype and dimensions
	mix := func(v int) { sig = (sig ^ uint64(v)) * 1099511628211 }
	for i, a := range args {
		var sh shapes.Shape
		switch v := a.(type) {
		case *tensors.Tensor:
			plain[i], sh = v, v.Shape()
		case Donated:
			switch {
			case v.shape != nil:
				if !compileOnly {
					return nil, fmt.Errorf("execution: program %s: argument %d is a donated shape; Run needs tensors", prog.name, i)
				}
				sh = *v.shape // zeros are made only if it compiles
			case v.T == nil:
				return nil, fmt.Errorf("execution: program %s: argument %d is a donated sharded tensor, but the placement has no mesh", prog.name, i)
			default:
				plain[i], sh = v.T, v.T.Shape()
			}
			donated[i] = true
			mix(-1) // donation is part of the key: donated arguments are aliased
		case shapes.Shape:
			if !compileOnly {
				return nil, fmt.Errorf("execution: program %s: argument %d is a shape; Run needs tensors", prog.name, i)
			}
			sh = v // zeros are made only if it compiles
		default:
			return nil, fmt.Errorf("execution: program %s: argument %d is a %T, want *tensors.Tensor or Donated", prog.name, i, a)
		}
		mix(int(sh.DType))
		mix(len(sh.Dimensions))
		for _, d := range sh.Dimensions {
			mix(d)
		}
	}
	key := execKey{prog, variant, sig}
	r.mu.Lock()
	se, ok := r.execs[key]
	if !ok {
		exec, err := graph.NewExec(r.backend, func(in []*graph.Node) []*graph.Node {
			out := prog.build(variant, in)
			if !r.noAlias {
				n := aliasDonated(in, out, donated)
				r.mu.Lock()
				r.stats.Aliased += n
				r.mu.Unlock()
			}
			return out
		})
		if err != nil {
			r.mu.Unlock()
			return nil, fmt.Errorf("execution: program %s: %w", prog.name, err)
		}
		se = &shapeExec{exec: exec.WithName(prog.name).SetMaxCache(-1)}
		r.execs[key] = se
	}
	r.mu.Unlock()
	se.once.Do(func() {
		t0 := time.Now()
		for i, a := range args {
			switch v := a.(type) {
			case shapes.Shape:
				plain[i] = tensors.FromShape(v)
			case Donated:
				if v.shape != nil {
					plain[i] = tensors.FromShape(*v.shape)
				}
			}
		}
		se.err = exceptionsToError(func() error { return se.exec.PreCompile(plain...) })
		if se.err != nil {
			se.err = fmt.Errorf("execution: compiling %s: %w", prog.name, se.err)
			r.mu.Lock()
			delete(r.execs, key)
			r.mu.Unlock()
			return
		}
		r.mu.Lock()
		r.stats.Programs++
		r.stats.ByProgram[prog.name]++
		r.stats.CompileTime += time.Since(t0)
		r.mu.Unlock()
	})
	if se.err != nil {
		return nil, se.err
	}
	return se, nil
}

// exceptionsToError runs f, turning a panic into an error.
func exceptionsToError(f func() error) (err error) {
	defer func() {
		if rec := recover(); rec != nil {
			err = fmt.Errorf("%v", rec)
		}
	}()
	return f()
}

// Upload returns flat (a slice of a GoMLX dtype's Go type, e.g. []float32)
// shaped dims as a tensor on the runner's device, copied from the slice
// straight into device memory: no host tensor holds a second copy, as
// tensors.FromFlatDataAndDimensions makes one (for a vision call's 24 MB of
// pixels, an allocation and a copy). With a mesh placement it keeps a host
// copy too and materializes it on the placement's Device (Run shards it from
// there). The slice may be reused once Upload returns.
func (r *Runner) Upload(flat any, dims ...int) (*tensors.Tensor, error) {
	v := reflect.ValueOf(flat)
	if v.Kind() != reflect.Slice {
		return nil, fmt.Errorf("execution: Upload of a %T: want a slice", flat)
	}
	dt := dtypes.FromGoType(v.Type().Elem())
	if dt == dtypes.InvalidDType {
		return nil, fmt.Errorf("execution: Upload of a %T: no GoMLX dtype holds %s", flat, v.Type().Elem())
	}
	shape := shapes.Make(dt, dims...)
	if shape.Size() != v.Len() {
		return nil, fmt.Errorf("execution: Upload of %d values as %s (%d values)", v.Len(), shape, shape.Size())
	}
	if r.place.Mesh != nil {
		t := tensors.FromShape(shape)
		if err := t.MutableFlatData(func(dst any) { reflect.Copy(reflect.ValueOf(dst), v) }); err != nil {
			return nil, fmt.Errorf("execution: Upload of %s: %w", shape, err)
		}
		if err := t.MaterializeOnDevice(r.backend, false, r.place.Device); err != nil {
			return nil, fmt.Errorf("execution: Upload of %s: %w", shape, err)
		}
		return t, nil
	}
	buf, err := r.backend.BufferFromFlatData(r.place.Device, flat, shape)
	if err != nil {
		return nil, fmt.Errorf("execution: Upload of %s: %w", shape, err)
	}
	t, err := tensors.FromBuffer(r.backend, buf)
	if err != nil {
		return nil, fmt.Errorf("execution: Upload of %s: %w", shape, err)
	}
	return t, nil
}
