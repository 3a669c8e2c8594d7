package dotgrad

import (
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/compute"
)

// TestMatchesGoMLXRule compares the gradients with GoMLX's own rule on
// DotGenerals with batch axes, several contracting axes and free axes on
// both sides, in permuted orders.
func TestMatchesGoMLXRule(t *testing.T) {
	be, err := compute.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name             string
		lhsDims, rhsDims []int
		lc, lb, rc, rb   []int
	}{
		{"matmul", []int{5, 7}, []int{7, 3}, []int{1}, nil, []int{0}, nil},
		{"linear x·Wᵀ", []int{2, 4, 6}, []int{5, 6}, []int{2}, nil, []int{1}, nil},
		{"batched attention", []int{2, 3, 4, 8}, []int{2, 3, 5, 8}, []int{3}, []int{0, 1}, []int{3}, []int{0, 1}},
		{"permuted batch and two contractions", []int{4, 3, 2, 5}, []int{5, 3, 6, 4}, []int{0, 3}, []int{1}, []int{3, 0}, []int{1}},
		{"free axis before batch", []int{6, 2, 4}, []int{4, 2, 3, 5}, []int{2}, []int{1}, []int{0}, []int{1}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	randT := func(dims []int) *tensors.Tensor {
		n := 1
		for _, d := range dims {
			n *= d
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return tensors.FromFlatDataAndDimensions(x, dims...)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, r := randT(tc.lhsDims), randT(tc.rhsDims)
			run := func(useOurs bool) []float32 {
				exec, err := NewExec(be.Backend, func(a, b *Node) (*Node, *Node) {
					out := DotGeneral(a, tc.lc, tc.lb, b, tc.rc, tc.rb)
					w := IotaFull(a.Graph(), out.Shape())
					loss := ReduceAllSum(Mul(Sin(ConvertDType(w, out.DType())), out))
					if useOurs {
						g := Gradient(loss, a, b)
						return g[0], g[1]
					}
					saved := VJPRegistration[NodeTypeDotGeneral]
					VJPRegistration[NodeTypeDotGeneral] = generic
					defer func() { VJPRegistration[NodeTypeDotGeneral] = saved }()
					g := Gradient(loss, a, b)
					return g[0], g[1]
				})
				if err != nil {
					t.Fatal(err)
				}
				outs, err := exec.Exec(l, r)
				if err != nil {
					t.Fatal(err)
				}
				if !outs[0].Shape().Equal(l.Shape()) || !outs[1].Shape().Equal(r.Shape()) {
					t.Fatalf("gradient shapes %s, %s; want %s, %s", outs[0].Shape(), outs[1].Shape(), l.Shape(), r.Shape())
				}
				a, _ := tensors.CopyFlatData[float32](outs[0])
				b, _ := tensors.CopyFlatData[float32](outs[1])
				return append(a, b...)
			}
			ours, theirs := run(true), run(false)
			for i := range ours {
				if math.Abs(float64(ours[i]-theirs[i])) > 1e-4*(1+math.Abs(float64(theirs[i]))) {
					t.Fatalf("gradient entry %d: %g, GoMLX's rule %g", i, ours[i], theirs[i])
				}
			}
		})
	}
}

func TestAxesAreRead(t *testing.T) {
	be, err := compute.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	g := NewGraph(be.Backend, "axes")
	a := Parameter(g, "a", tensors.FromFlatDataAndDimensions(make([]float32, 24), 2, 3, 4).Shape())
	b := Parameter(g, "b", tensors.FromFlatDataAndDimensions(make([]float32, 40), 2, 4, 5).Shape())
	out := DotGeneral(a, []int{2}, []int{0}, b, []int{1}, []int{0})
	ax, err := axesOf(out)
	if err != nil {
		t.Fatal(err)
	}
	if ax.LhsContracting[0] != 2 || ax.LhsBatch[0] != 0 || ax.RhsContracting[0] != 1 || ax.RhsBatch[0] != 0 {
		t.Fatalf("read %+v", ax)
	}
}
