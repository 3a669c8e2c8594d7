package engine

import (
	"errors"
	"sync"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/mmft-go/mmft/execution"
	"github.com/mmft-go/mmft/qwen2vl"
)

// precompile compiles, Options.CompileWorkers at a time, the programs this
// Generate call needs whose shapes its requests fix: the decode step, each
// prefill batch and the vision tower for every (frames, patches) bucket of
// every prefill batch's images. Compiling them one after the other as the
// call first reaches them (what CompileWorkers 1 does) leaves the host's
// other cores idle while XLA compiles; programs already compiled are
// skipped. Shapes it cannot prepare (a request that will fail) are left to
// the call itself, which reports them. Inputs are given by their shapes
// (zeros are made only for a program not compiled yet) or are the device
// state's own tensors (nothing is donated).
func (g *generation) precompile() error {
	e := g.e
	if e.opts.CompileWorkers <= 1 {
		return nil
	}
	cfg := e.m.Config
	n := len(g.slots)
	jobs := []func() error{func() error {
		args := g.decodeArgs()
		args[0], args[1] = execution.DonatedShape(shapes.Make(dtypes.Int32, n, decodeInts)), shapes.Make(dtypes.Float32, n, decodeFloats)
		args[2] = execution.DonatedShape(shapes.Make(dtypes.Float32, n, g.steps, 3))
		return e.models.compileBound(e.progs.decode, g.bind, g.decodeSettings(), args...)
	}}
	base, err := e.m.Bind(nil)
	if err != nil {
		return err
	}
	zeros := shapes.Make // inputs are given by their shapes: zeros are made only for a compile
	hidden, win := cfg.Text.HiddenSize, cfg.Vision.SpatialMergeSize*cfg.Vision.SpatialMergeSize
	seen := map[any]bool{}
	once := func(key any) bool {
		if seen[key] {
			return false
		}
		seen[key] = true
		return true
	}
	for from := 0; from < len(g.reqs); from += e.opts.PrefillBatch {
		_, b := prefillBatch(g.reqs[from:min(from+e.opts.PrefillBatch, len(g.reqs))], false)
		tb, err := qwen2vl.PrepareText(cfg, b.InputIDs, b.AttentionMask, b.Grids)
		if err != nil {
			continue
		}
		rows := 0
		if len(b.Grids) > 0 {
			rows = prefillRows(b)(tb.ImageTokens + 1)
		}
		vision := e.visionShapes(b.Grids)
		if g.feats != nil {
			vision = nil // the features are given: no vision tower here
		}
		for _, vs := range vision {
			f, p := vs[0], vs[1]
			if once(vs) {
				pd, d := cfg.Vision.PatchDim(), cfg.Vision.HeadDim()
				jobs = append(jobs, func() error {
					return e.models.compileBound(e.progs.vision, base, nil, zeros(dtypes.Float32, f, p, pd), zeros(dtypes.Float32, f, p, d),
						zeros(dtypes.Float32, f, p, d), zeros(dtypes.Bool, f, p))
				})
			}
			if once([3]int{-2, rows, 0}) {
				jobs = append(jobs, func() error { return e.run.CompileZeros(shapes.Make(dtypes.Float32, rows, hidden)) })
			}
			if merged := f * p / win; once([3]int{-1, rows, merged}) {
				jobs = append(jobs, func() error {
					return e.run.Compile(e.progs.place, nil, execution.DonatedShape(zeros(dtypes.Float32, rows, hidden)), zeros(dtypes.Float32, merged, hidden), zeros(dtypes.Int32, merged))
				})
			}
		}
		if once([3]int{tb.B, tb.L, rows}) {
			jobs = append(jobs, func() error {
				args := make([]any, 0, qwen2vl.NumTextInputs)
				for _, t := range tb.Tensors(nil) {
					args = append(args, t)
				}
				if rows > 0 {
					args[len(args)-1] = zeros(dtypes.Float32, rows, hidden)
				}
				return e.models.compileBound(e.progs.prefill, g.bind, nil, args...)
			})
		}
		if once([2]int{tb.B, tb.L}) {
			jobs = append(jobs, func() error { return g.compileAdmit(tb.B, tb.L) })
		}
	}
	return runConcurrently(jobs, e.opts.CompileWorkers)
}

// compileAdmit compiles the program that admits prompts from a prefill
// batch of b rows of length l (admit, or admitGroup with SharedPrefix),
// with the device state's own tensors and zero prompt keys and values.
func (g *generation) compileAdmit(b, l int) error {
	tc := g.e.m.Config.Text
	var args []any // the state as admit donates it (Compile donates nothing)
	if g.shared {
		for _, c := range g.prefix {
			args = append(args, execution.Donate(c))
		}
	}
	for _, c := range g.caches {
		args = append(args, execution.Donate(c))
	}
	args = append(args, execution.Donate(g.presence))
	kv := shapes.Make(g.e.m.DType, b, tc.NumKVHeads, l, tc.HeadDim())
	for range 2 * g.layers {
		args = append(args, kv)
	}
	if g.shared {
		args = append(args, shapes.Make(dtypes.Int32), shapes.Make(dtypes.Int32), shapes.Make(dtypes.Bool, tc.VocabSize))
		return g.e.run.Compile(g.e.progs.admitGroup, admitGroupSpec{layers: g.layers, n: g.n}, args...)
	}
	n := len(g.slots)
	args = append(args, shapes.Make(dtypes.Bool, b, tc.VocabSize), shapes.Make(dtypes.Int32, n), shapes.Make(dtypes.Bool, n))
	return g.e.run.Compile(g.e.progs.admit, len(g.caches), args...)
}

// visionShapes returns the (frames, patches) shapes of the vision tower
// calls DeviceImageFeatures makes for images with these grids, in order
// (per patch bucket, its frames in calls of frameBucket frames), as
// qwen2vl.PlanVision groups them.
func (e *Engine) visionShapes(grids []qwen2vl.Grid) [][2]int {
	frames := map[int]int{}
	var order []int
	for _, gr := range grids {
		pb := e.patchBucket(gr.H * gr.W)
		if _, ok := frames[pb]; !ok {
			order = append(order, pb)
		}
		frames[pb] += gr.T
	}
	var out [][2]int
	for _, pb := range order {
		n := frames[pb]
		f := max(frameBucket(n), 1)
		for done := 0; done < n; done += f {
			out = append(out, [2]int{f, pb})
		}
	}
	return out
}

// runConcurrently runs jobs, at most workers at a time, and returns their
// errors joined.
func runConcurrently(jobs []func() error, workers int) error {
	sem := make(chan struct{}, max(workers, 1))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, job := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = job()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
