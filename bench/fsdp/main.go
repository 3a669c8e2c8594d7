// Command fsdp checks and measures the ZeRO-3/FSDP training step: one fused
// step (LoRA log-prob loss, gradient, AdamW; the input order of grpo.step)
// on random weights of a Qwen2-VL config (2B from the assets by default),
// run unsharded on device 0 and then through execution's mesh placement
// over meshes of 1…N GPUs (distributed.FSDP decisions, GoMLX AutoSharding).
// For each it prints the max relative difference of the updated adapters
// against the unsharded step (per tensor ‖a−b‖∞/‖b‖∞, the largest over
// tensors, and whether they are bit-identical), the same for the Adam
// moments (informational: they hold the raw gradients, whose float32 sums
// change with their order across devices), the step time
// (after a compiling run), and per GPU the weight shard and XLA's compiled
// memory (arguments, outputs, temporaries). A mesh of one must match the
// unsharded step to 1e-6 (issue 11): the exit code is 1 when it does not,
// or when any mesh differs by more than --tol.
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/gomlx/backends"
	gdist "github.com/gomlx/gomlx/pkg/core/distributed"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph DSL
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/bench/internal/benchkit"
	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/distributed"
	"github.com/mmft-go/mmft/execution"
	"github.com/mmft-go/mmft/grpo"
	"github.com/mmft-go/mmft/lora"
	"github.com/mmft-go/mmft/qwen2vl"
)

func main() {
	cfgPath := flag.String("config", "../shared/assets/qwen2-vl-2b-instruct/config.json", "Qwen2-VL config.json")
	device := flag.String("device", "gpu", "cpu or gpu")
	meshes := flag.String("meshes", "all", `mesh sizes to run: "all" (1…GPUs), "none" (unsharded only), or a list like 1,2,4`)
	seqs := flag.Int("seqs", 8, "sequences in the batch (split over the mesh when divisible)")
	length := flag.Int("len", 256, "tokens per sequence")
	completion := flag.Int("completion", 64, "completion tokens scored by the loss (the last ones)")
	rank := flag.Int("lora-r", 16, "LoRA rank (all seven projections)")
	lr := flag.Float64("lr", 1e-4, "learning rate")
	reps := flag.Int("reps", 3, "timed steps after the compiling one")
	tol := flag.Float64("tol", 1e-4, "largest relative difference of the updated adapters accepted for meshes of 2 or more (float32 sums in another order)")
	prealloc := flag.Bool("preallocate", false, "keep XLA's GPU preallocation")
	flag.Parse()
	if err := run(*cfgPath, *device, *meshes, *seqs, *length, *completion, *rank, *lr, *reps, *tol, *prealloc); err != nil {
		fmt.Fprintln(os.Stderr, "fsdp:", err)
		os.Exit(1)
	}
}

// stepProgram is grpo.step's input order: [binding][step, skipped, m…, v…]
// [lr][text][targets, mask] → new A/B…, new state…, loss, grad norm, applied.
func stepProgram(b *qwen2vl.Binding, opt grpo.AdamW, nParams int) *execution.Program {
	return execution.NewProgram("grpo.step", func(_ any, in []*Node) []*Node {
		w, rest := b.Weights(in)
		state := grpo.AdamWStateFromNodes(rest[:2+2*nParams], nParams)
		lr := rest[2+2*nParams]
		ti, rest := qwen2vl.ReadTextInputs(rest[3+2*nParams:])
		targets, mask := rest[0], rest[1]
		logps := w.TokenLogProbs(ti, targets, 0)
		loss := Neg(Div(ReduceAllSum(Mul(logps, mask)), ReduceAllSum(mask)))
		params := in[b.NumInputs()-nParams : b.NumInputs()] // the adapter's A/B, last of the binding
		grads := Gradient(loss, params...)
		res := opt.Update(lr, params, grads, state)
		out := append(append([]*Node{}, res.Params...), res.State.Nodes()...)
		return append(out, loss, res.GradNorm, res.Applied)
	})
}

// result is one configuration's updated state and timings.
type result struct {
	name    string
	outs    []*tensors.Tensor // whole tensors: A/B…, state…, loss, norm, applied
	compile time.Duration
	step    time.Duration
	graph   *Graph
	devs    []backends.DeviceNum
	weights int64 // bytes of base weights per GPU
}

func run(cfgPath, device, meshList string, seqs, length, completion, rank int, lr float64, reps int, tol float64, prealloc bool) error {
	if seqs < 1 || length < 2 || completion < 1 || completion >= length || rank < 1 || reps < 1 {
		return fmt.Errorf("--seqs %d, --len %d, --completion %d, --lora-r %d, --reps %d: need seqs, rank, reps ≥ 1 and 1 ≤ completion < len", seqs, length, completion, rank, reps)
	}
	cfg, err := qwen2vl.LoadConfig(cfgPath)
	if err != nil {
		return err
	}
	backend, err := benchkit.NewBackend(device, prealloc)
	if err != nil {
		return err
	}
	sizes, err := meshSizes(meshList, backend.NumDevices())
	if err != nil {
		return err
	}
	shapeOf := map[string][]int{}
	for _, s := range cfg.ParamSpecs() {
		shapeOf[s.Name] = s.Shape
	}
	m, load, err := benchkit.LoadRandomModel(backend, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("backend %s, %d device(s); random bf16 weights of %s loaded in %v\n", backend.Name(), backend.NumDevices(), cfgPath, load.Round(time.Millisecond))

	// Adapter: PEFT's init with B random too (so that A gets gradients).
	lc := lora.NewConfig(rank, float64(2*rank), grpo.DefaultTargetModules...)
	targets, err := lc.Targets(shapeOf)
	if err != nil {
		return err
	}
	ad, err := lora.NewAdapter(lc, targets, shapeOf, 7)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, mod := range ad.Modules {
		for i := range mod.B {
			mod.B[i] = float32(rng.NormFloat64() * 0.01)
		}
	}
	names, shp := grpo.AdapterParams(ad)
	nParams := len(names)
	fresh := func() (*qwen2vl.LoRA, []*tensors.Tensor, error) {
		l := &qwen2vl.LoRA{Modules: map[string]qwen2vl.LoRAModule{}}
		for _, name := range ad.Names() {
			mod := ad.Modules[name]
			l.Modules[name] = qwen2vl.LoRAModule{A: tensors.FromFlatDataAndDimensions(slices.Clone(mod.A), mod.R, mod.In),
				B: tensors.FromFlatDataAndDimensions(slices.Clone(mod.B), mod.Out, mod.R), Scale: mod.Scale}
		}
		st, err := grpo.NewOptimizerState(names, shp)
		if err != nil {
			return nil, nil, err
		}
		return l, st.Tensors(), nil
	}

	// Batch: random tokens, the last `completion` scored.
	ids := make([][]int32, seqs)
	for i := range ids {
		ids[i] = make([]int32, length)
		for j := range ids[i] {
			ids[i][j] = int32(rng.IntN(min(150000, cfg.Text.VocabSize-8)))
		}
	}
	tb, err := qwen2vl.PrepareText(cfg, ids, nil, nil)
	if err != nil {
		return err
	}
	tgt := make([]int32, seqs*completion)
	maskv := make([]float32, seqs*completion)
	for i := range seqs {
		for j := range completion {
			tgt[i*completion+j] = ids[i][length-completion+j]
			maskv[i*completion+j] = 1
		}
	}
	batch := func() []any {
		var out []any
		for _, t := range tb.Tensors(nil) {
			out = append(out, t)
		}
		return append(out, tensors.FromFlatDataAndDimensions(slices.Clone(tgt), seqs, completion),
			tensors.FromFlatDataAndDimensions(slices.Clone(maskv), seqs, completion))
	}
	opt := grpo.DefaultAdamW()

	// One configuration: fresh adapter and state, a compiling step, then reps
	// timed steps from the same starting state (the compiling step's outputs
	// are discarded so every configuration updates the same values).
	do := func(name string, r *execution.Runner, weights func([]*tensors.Tensor) ([]any, int64, error)) (*result, error) {
		var res result
		res.name = name
		for i := range reps + 1 {
			l, st, err := fresh()
			if err != nil {
				return nil, err
			}
			b, err := m.Bind(l)
			if err != nil {
				return nil, err
			}
			prog := progs[b.Layout()]
			if prog == nil {
				prog = stepProgram(b, opt, nParams)
				progs[b.Layout()] = prog
			}
			ts := b.Tensors()
			args, wb, err := weights(ts[:len(ts)-nParams])
			if err != nil {
				return nil, err
			}
			res.weights = wb
			for _, x := range ts[len(ts)-nParams:] {
				args = append(args, execution.Donate(x))
			}
			for _, x := range st {
				args = append(args, execution.Donate(x))
			}
			args = append(args, tensors.FromScalar(float32(lr)))
			args = append(args, batch()...)
			t := time.Now()
			var outs []*tensors.Tensor
			var souts []*gdist.Tensor
			if r.Placement().Mesh == nil {
				if outs, err = r.Run(prog, nil, args...); err != nil {
					return nil, err
				}
				_ = tensors.ToScalar[float32](outs[len(outs)-3]) // wait for the step
			} else {
				// Sharded outputs stay on their devices while timed.
				if souts, err = r.RunSharded(prog, nil, args...); err != nil {
					return nil, err
				}
				_ = tensors.ToScalar[float32](souts[len(souts)-3].Shards()[0])
			}
			took := time.Since(t)
			if souts != nil {
				for _, d := range souts {
					w, err := d.Merge()
					if err != nil {
						return nil, err
					}
					outs = append(outs, w)
				}
			}
			if i == 0 {
				res.compile = took
				continue
			}
			res.step += took / time.Duration(reps)
			res.outs = outs
		}
		res.graph = r.Graphs()["grpo.step"]
		if r.Placement().Mesh != nil {
			res.devs, _ = r.Placement().MeshDevices(backend)
		} else {
			res.devs = []backends.DeviceNum{r.Placement().Device}
		}
		return &res, nil
	}

	// Unsharded reference.
	var all []*result
	ref, err := do("unsharded", execution.New(backend, execution.Placement{}), func(ts []*tensors.Tensor) ([]any, int64, error) {
		out := make([]any, len(ts))
		var b int64
		for i, t := range ts {
			out[i] = t
			b += int64(t.Shape().Memory())
		}
		return out, b, nil
	})
	if err != nil {
		return fmt.Errorf("unsharded step: %w", err)
	}
	all = append(all, ref)
	failed := false
	for _, n := range sizes {
		l := distributed.Layout{GPUs: backend.NumDevices(), Rollout: []int{backend.NumDevices() - 1}}
		for g := range n {
			l.Train = append(l.Train, g)
		}
		place, err := distributed.TrainPlacement(l, distributed.FSDP{Roles: distributed.GRPORoles(len(m.ParamNames()), nParams)})
		if err != nil {
			return err
		}
		f := place.Mesh.Sharding.(distributed.FSDP)
		var sharded []any // the weights sharded once per mesh (shards stay on their devices between steps)
		res, err := do(fmt.Sprintf("mesh of %d", n), execution.New(backend, place), func(ts []*tensors.Tensor) ([]any, int64, error) {
			var b int64
			if sharded == nil {
				ds, err := f.Shard(ts, distributed.Param)
				if err != nil {
					return nil, 0, err
				}
				for _, d := range ds {
					sharded = append(sharded, d)
				}
			}
			for _, d := range sharded {
				b += int64(d.(*gdist.Tensor).ShardShape().Memory())
			}
			return slices.Clone(sharded), b, nil
		})
		if err != nil {
			fmt.Printf("%-10s FAILED: %v\n", fmt.Sprintf("mesh of %d", n), err)
			failed = true
			continue
		}
		all = append(all, res)
	}

	fmt.Printf("\n%d sequences × %d tokens (%d scored), LoRA r=%d on %d modules, AdamW lr %g\n", seqs, length, completion, rank, len(targets), lr)
	fmt.Printf("%-10s %10s %10s %13s %9s %13s %12s %s\n", "config", "compile", "step", "adapters diff", "identical", "moments diff", "weights/GPU", "XLA memory per GPU (args + out − aliased + temp)")
	for _, r := range all {
		diff, same := maxRelDiff(r.outs[:nParams], ref.outs[:nParams])
		mdiff, _ := maxRelDiff(r.outs[nParams:3*nParams+2], ref.outs[nParams:3*nParams+2])
		mem := "n/a"
		if st, ok := benchkit.CompiledMemory(r.graph); ok {
			mem = fmt.Sprintf("%s (args %s, out %s, temp %s)", compute.FormatBytes(st.Requirements()), compute.FormatBytes(st.Inputs),
				compute.FormatBytes(st.Outputs), compute.FormatBytes(st.Temporary))
		}
		fmt.Printf("%-10s %10v %10v %13.3g %9v %13.3g %12s %s   devices %v\n", r.name, r.compile.Round(time.Millisecond), r.step.Round(time.Microsecond),
			diff, same, mdiff, compute.FormatBytes(r.weights), mem, r.devs)
		limit := tol
		if r.name == "mesh of 1" {
			limit = 1e-6
		}
		if diff > limit || math.IsNaN(diff) || math.IsNaN(mdiff) {
			fmt.Printf("%-10s updated adapters differ from the unsharded step by %.3g > %g\n", r.name, diff, limit)
			failed = true
		}
	}
	l0, _, err := fresh()
	if err != nil {
		return err
	}
	b0, err := m.Bind(l0)
	if err != nil {
		return err
	}
	t0s := b0.Tensors()
	moved, _ := maxRelDiff(ref.outs[:nParams], t0s[len(t0s)-nParams:])
	fmt.Printf("loss %g, grad norm %g, adapter update ‖Δ‖∞/‖A‖∞ up to %.3g (0 would mean the step changed nothing)\n",
		tensors.ToScalar[float32](ref.outs[3*nParams+2]), tensors.ToScalar[float32](ref.outs[3*nParams+3]), moved)
	if moved == 0 {
		return fmt.Errorf("the unsharded step did not change the adapters")
	}
	if failed {
		return fmt.Errorf("some configurations failed or differ (see above)")
	}
	return nil
}

// progs holds one step program per adapter layout (a program's pointer is its identity).
var progs = map[string]*execution.Program{}

// maxRelDiff is the largest ‖a−b‖∞/‖b‖∞ over float32 tensors (others
// compared exactly) and whether all are bit-identical.
func maxRelDiff(a, b []*tensors.Tensor) (float64, bool) {
	worst, same := 0.0, true
	for i := range b {
		if b[i].DType() != dtypes.Float32 {
			if !a[i].Shape().Equal(b[i].Shape()) || fmt.Sprint(a[i].Value()) != fmt.Sprint(b[i].Value()) {
				return math.Inf(1), false
			}
			continue
		}
		x, y := tensors.MustCopyFlatData[float32](a[i]), tensors.MustCopyFlatData[float32](b[i])
		var d, n float64
		for k := range y {
			if x[k] != y[k] {
				same = false
			}
			d = max(d, math.Abs(float64(x[k])-float64(y[k])))
			n = max(n, math.Abs(float64(y[k])))
		}
		if n > 0 {
			worst = max(worst, d/n)
		} else if d > 0 {
			worst = math.Inf(1)
		}
	}
	return worst, same
}

// meshSizes parses --meshes for a backend of n devices.
func meshSizes(s string, n int) ([]int, error) {
	switch s {
	case "none":
		return nil, nil
	case "all":
		out := make([]int, n)
		for i := range out {
			out[i] = i + 1
		}
		return out, nil
	}
	var out []int
	for _, p := range strings.Split(s, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || k < 1 || k > n {
			return nil, fmt.Errorf("--meshes %q: %q is not a mesh size from 1 to %d (the devices found)", s, p, n)
		}
		out = append(out, k)
	}
	return out, nil
}
