package compute

import (
	"fmt"
	"strings"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Limits of BenchMatmul that keep a run bounded in time.
const (
	// MaxMatmulChain is the most matrix products in one timed run.
	MaxMatmulChain = 1000
	// MaxMatmulIters is the most timed runs.
	MaxMatmulIters = 100000
)

// MatmulBytes estimates the peak memory of BenchMatmul for N×N matrices of
// dtype: the two float32 iotas the inputs are made from, the two inputs, and
// two products alive at once; -1 when it overflows.
func MatmulBytes(n int, dtype dtypes.DType) int64 {
	elems := MulBytes(int64(n), int64(n))
	return AddBytes(MulBytes(elems, 2, 4), MulBytes(elems, 4, int64(dtype.Size())))
}

// MatmulResult is one matmul benchmark measurement.
type MatmulResult struct {
	N          int           `json:"n"`
	DType      string        `json:"dtype"`
	Chain      int           `json:"chain"`
	Iterations int           `json:"iterations"`
	PerIter    time.Duration `json:"per_iteration_ns"`
	TFLOPs     float64       `json:"tflops"`
	Compile    time.Duration `json:"compile_and_first_run_ns"`
}

// BenchMatmul times a chain of `chain` dense N×N×N matrix products in dtype on
// b, run iters times after one warm-up (which includes compilation), and
// reports the achieved TFLOP/s (2·N³·chain per iteration). Inputs are made and
// kept on the device; each iteration reads back one scalar so that the timing
// covers the whole computation.
//
// Sizes are checked before anything is allocated: chain and iters are at most
// MaxMatmulChain and MaxMatmulIters, and the matrices must fit in the
// device's available memory (MatmulBytes).
func BenchMatmul(b *Backend, n, chain, iters int, dtype dtypes.DType) (MatmulResult, error) {
	if n < 1 || chain < 1 || iters < 1 {
		return MatmulResult{}, fmt.Errorf("compute: matmul benchmark: n, chain and iterations must be positive (got %d, %d, %d)", n, chain, iters)
	}
	if chain > MaxMatmulChain || iters > MaxMatmulIters {
		return MatmulResult{}, fmt.Errorf("compute: matmul benchmark: chain %d, iterations %d: the limits are %d products per run and %d runs",
			chain, iters, MaxMatmulChain, MaxMatmulIters)
	}
	if err := CheckMemory(fmt.Sprintf("the matmul benchmark with n=%d in %s", n, strings.ToLower(dtype.String())), MatmulBytes(n, dtype), b.AvailableMemory()); err != nil {
		return MatmulResult{}, fmt.Errorf("compute: %w; choose a smaller --n", err)
	}
	res := MatmulResult{N: n, DType: dtype.String(), Chain: chain, Iterations: iters}
	makeInputs, err := NewExec(b.Backend, func(g *Graph) (*Node, *Node) {
		shape := shapes.Make(dtypes.Float32, n, n)
		// Deterministic values of magnitude ~1/sqrt(n), so that long chains stay finite.
		x := Sin(IotaFull(g, shape))
		y := MulScalar(Cos(IotaFull(g, shape)), 1/float64(n))
		return ConvertDType(x, dtype), ConvertDType(y, dtype)
	})
	if err != nil {
		return res, err
	}
	defer makeInputs.Finalize()
	ins, err := makeInputs.Exec()
	if err != nil {
		return res, fmt.Errorf("making matmul inputs: %w", err)
	}
	x, y := ins[0], ins[1]
	defer x.FinalizeAll()
	defer y.FinalizeAll()
	chainExec, err := NewExec(b.Backend, func(x, y *Node) *Node {
		for range chain {
			x = MatMul(x, y)
		}
		return ReduceAllSum(ConvertDType(x, dtypes.Float32))
	})
	if err != nil {
		return res, err
	}
	defer chainExec.Finalize()
	run := func() error {
		out, err := chainExec.Exec(x, y)
		if err != nil {
			return err
		}
		for _, t := range out {
			if _, err := t.ValueSafe(); err != nil {
				return err
			}
			t.FinalizeAll()
		}
		return nil
	}
	start := time.Now()
	if err := run(); err != nil {
		return res, fmt.Errorf("matmul benchmark warm-up: %w", err)
	}
	res.Compile = time.Since(start)
	start = time.Now()
	for range iters {
		if err := run(); err != nil {
			return res, err
		}
	}
	elapsed := time.Since(start)
	res.PerIter = elapsed / time.Duration(iters)
	flops := 2 * float64(n) * float64(n) * float64(n) * float64(chain)
	res.TFLOPs = flops / res.PerIter.Seconds() / 1e12
	return res, nil
}
