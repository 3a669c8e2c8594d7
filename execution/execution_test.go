package execution

import (
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

func TestBucketLadder(t *testing.T) {
	for _, c := range []struct{ n, least, multiple, want int }{
		{1, 16, 1, 16}, {16, 16, 1, 16}, {17, 16, 1, 24}, {25, 16, 1, 32}, {33, 16, 1, 48}, {49, 16, 1, 64},
		{100, 1, 1, 128}, {3, 1, 1, 3}, {5, 1, 1, 6}, {24, 64, 4, 64}, {65, 64, 4, 96}, {97, 64, 4, 128}, {7, 5, 4, 8},
	} {
		if got := Bucket(c.n, c.least, c.multiple); got != c.want {
			t.Errorf("Bucket(%d, %d, %d) = %d, want %d", c.n, c.least, c.multiple, got, c.want)
		}
	}
	// Every size up to 10,000 falls into few buckets, none less than the size
	// nor more than half again as large (beyond the least).
	seen := map[int]bool{}
	for n := 1; n <= 10000; n++ {
		b := Bucket(n, 64, 4)
		if b < n || (n > 64 && float64(b) > 1.5*float64(n)+4) || b%4 != 0 {
			t.Fatalf("Bucket(%d, 64, 4) = %d", n, b)
		}
		seen[b] = true
	}
	if len(seen) > 16 {
		t.Errorf("sizes 1…10000 use %d buckets, want ≤ 16", len(seen))
	}
}

func TestBucketFineLadder(t *testing.T) {
	for _, c := range []struct{ n, least, multiple, want int }{
		{1, 64, 64, 64}, {64, 64, 64, 64}, {65, 64, 1, 80}, {81, 64, 1, 96}, {113, 64, 1, 128}, {129, 64, 1, 160},
		{426, 64, 64, 448}, {449, 64, 64, 512}, {513, 64, 64, 640}, {700, 64, 64, 768}, {3, 1, 1, 3}, {5, 4, 1, 5},
	} {
		if got := BucketFine(c.n, c.least, c.multiple); got != c.want {
			t.Errorf("BucketFine(%d, %d, %d) = %d, want %d", c.n, c.least, c.multiple, got, c.want)
		}
	}
	// Sizes up to 10,000: never less than the size, at most a quarter more
	// (beyond the rounding), and about twice Bucket's number of buckets.
	seen := map[int]bool{}
	for n := 1; n <= 10000; n++ {
		b := BucketFine(n, 64, 64)
		if b < n || (n > 64 && float64(b) > 1.25*float64(n)+64) || b%64 != 0 {
			t.Fatalf("BucketFine(%d, 64, 64) = %d", n, b)
		}
		seen[b] = true
	}
	if len(seen) > 30 {
		t.Errorf("sizes 1…10000 use %d buckets, want ≤ 30", len(seen))
	}
}

func TestRunnerKeysAndDonation(t *testing.T) {
	be, err := simplego.New("parallelism=4")
	if err != nil {
		t.Fatal(err)
	}
	r := New(be, Placement{})
	// Two programs with the same name never share a compiled graph.
	double := NewProgram("p", func(_ any, in []*Node) []*Node { return []*Node{MulScalar(in[0], 2)} })
	triple := NewProgram("p", func(_ any, in []*Node) []*Node { return []*Node{MulScalar(in[0], 3)} })
	scaled := NewProgram("scaled", func(v any, in []*Node) []*Node { return []*Node{MulScalar(in[0], float64(v.(int)))} })
	x := tensors.FromFlatDataAndDimensions([]float32{1, 2}, 2)
	for _, c := range []struct {
		p    *Program
		v    any
		want float32
	}{{double, nil, 4}, {triple, nil, 6}, {scaled, 5, 10}, {scaled, 7, 14}, {double, nil, 4}} {
		outs, err := r.Run(c.p, c.v, x)
		if err != nil {
			t.Fatal(err)
		}
		if got := tensors.MustCopyFlatData[float32](outs[0])[1]; got != c.want {
			t.Errorf("program %s variant %v: got %g, want %g", c.p.Name(), c.v, got, c.want)
		}
	}
	if st := r.Stats(); st.Programs != 4 || st.Calls != 5 {
		t.Errorf("stats %+v: want 4 programs compiled, 5 calls", st)
	}
	// Calls and their time are kept by program name (two programs named p).
	if st := r.Stats(); st.Runs["p"].Calls != 3 || st.Runs["scaled"].Calls != 2 || st.Runs["p"].Time <= 0 {
		t.Errorf("runs by program %+v: want p 3 calls, scaled 2, with their time", st.Runs)
	}
	// A new input shape compiles once more.
	if _, err := r.Run(double, nil, tensors.FromFlatDataAndDimensions([]float32{1, 2, 3}, 3)); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Programs != 5 {
		t.Errorf("%d programs after a new shape, want 5", st.Programs)
	}
	// Donated state replaced each call.
	acc := accumulator()
	state := accumulate(t, r, acc, x, 3)
	if got := tensors.MustCopyFlatData[float32](state); got[0] != 3 || got[1] != 6 {
		t.Errorf("accumulated %v, want [3 6]", got)
	}
	// Errors name the program; a non-comparable variant is refused.
	if _, err := r.Run(acc, nil, x); err == nil || !strings.Contains(err.Error(), "acc") {
		t.Errorf("a missing input: error %v, want one naming the program", err)
	}
	if _, err := r.Run(acc, []int{1}, x, x); err == nil || !strings.Contains(err.Error(), "not comparable") {
		t.Errorf("slice variant: error %v", err)
	}
}

// TestConcurrentCompile compiles several shapes of one program (and each
// shape twice) from concurrent goroutines: each shape is compiled once, runs
// afterwards compile nothing more, and give the right values.
func TestConcurrentCompile(t *testing.T) {
	be, err := simplego.New("parallelism=4")
	if err != nil {
		t.Fatal(err)
	}
	r := New(be, Placement{})
	p := NewProgram("sumsq", func(_ any, in []*Node) []*Node { return []*Node{ReduceAllSum(Mul(in[0], in[0]))} })
	sizes := []int{1, 2, 3, 5, 8, 13}
	input := func(n int) *tensors.Tensor {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(i + 1)
		}
		return tensors.FromFlatDataAndDimensions(x, n)
	}
	errs := make(chan error, 2*len(sizes))
	for i := range 2 {
		for _, n := range sizes {
			if i == 0 {
				go func() { errs <- r.Compile(p, nil, Donate(input(n))) }()
			} else { // by shape alone
				go func() { errs <- r.Compile(p, nil, DonatedShape(shapes.Make(dtypes.Float32, n))) }()
			}
		}
	}
	for range 2 * len(sizes) {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if st := r.Stats(); st.Programs != len(sizes) || st.ByProgram["sumsq"] != len(sizes) || st.Calls != 0 {
		t.Fatalf("after compiling %d shapes twice each: %+v", len(sizes), st)
	}
	for _, n := range sizes {
		outs, err := r.Run(p, nil, Donate(input(n)))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := outs[0].Value().(float32), float32(n*(n+1)*(2*n+1)/6); got != want {
			t.Errorf("size %d: %v, want %v", n, got, want)
		}
	}
	if st := r.Stats(); st.Programs != len(sizes) || st.Calls != len(sizes) {
		t.Errorf("runs after Compile compiled again: %+v", st)
	}
	// Donation is compiled in: the same shape not donated is another program.
	if _, err := r.Run(p, nil, input(2)); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Programs != len(sizes)+1 {
		t.Errorf("a run without donation used the donated program: %+v", st)
	}
	if err := r.Compile(p, nil, shapes.Make(dtypes.Float32, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(p, nil, DonatedShape(shapes.Make(dtypes.Float32, 2))); err == nil || !strings.Contains(err.Error(), "donated shape") {
		t.Errorf("Run with a donated shape: %v", err)
	}
	if st := r.Stats(); st.Programs != len(sizes)+1 {
		t.Errorf("compiling a compiled shape again: %+v", st)
	}
	if _, err := r.Run(p, nil, shapes.Make(dtypes.Float32, 2)); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("Run with a shape argument: %v", err)
	}
	// A shape that cannot build is an error naming the program, and is
	// tried again (not remembered) by the next call.
	bad := NewProgram("bad", func(_ any, in []*Node) []*Node { return []*Node{Reshape(in[0], 7)} })
	for range 2 {
		if err := r.Compile(bad, nil, input(3)); err == nil || !strings.Contains(err.Error(), "bad") {
			t.Errorf("compiling a bad graph: %v", err)
		}
	}
}

// accumulator is a program adding its second input to its first (the
// state, donated by accumulate).
func accumulator() *Program {
	return NewProgram("acc", func(_ any, in []*Node) []*Node { return []*Node{Add(in[0], in[1])} })
}

// accumulate runs acc n times from a zero float32 [2] state, donating the
// state each call, and returns the last state.
func accumulate(t *testing.T, r *Runner, acc *Program, x *tensors.Tensor, n int) *tensors.Tensor {
	t.Helper()
	state := tensors.FromShape(shapes.Make(dtypes.Float32, 2))
	for range n {
		outs, err := r.Run(acc, nil, Donate(state), x)
		if err != nil {
			t.Fatal(err)
		}
		state = outs[0]
	}
	return state
}

// TestUpload places slices of three dtypes on the device, runs a program on
// them and reads back what went in; the source slice may change afterwards.
// Wrong sizes and non-slices are errors naming the shape or the type.
func TestUpload(t *testing.T) {
	be, err := simplego.New("parallelism=4")
	if err != nil {
		t.Fatal(err)
	}
	r := New(be, Placement{})
	px := []float32{1, 2, 3, 4, 5, 6}
	ids := []int32{7, 8}
	ok := []bool{true, false, true}
	tp, err := r.Upload(px, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	ti, err := r.Upload(ids, 2)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := r.Upload(ok, 3)
	if err != nil {
		t.Fatal(err)
	}
	px[0], ids[0], ok[1] = -1, -1, true // the uploads hold their own copies
	mix := NewProgram("mix", func(_ any, in []*Node) []*Node {
		return []*Node{ReduceSum(in[0], 1), MulScalar(in[1], 2), LogicalNot(in[2])}
	})
	outs, err := r.Run(mix, nil, tp, ti, tb)
	if err != nil {
		t.Fatal(err)
	}
	if got := tensors.MustCopyFlatData[float32](outs[0]); got[0] != 6 || got[1] != 15 {
		t.Errorf("float32 rows summed: %v, want [6 15]", got)
	}
	if got := tensors.MustCopyFlatData[int32](outs[1]); got[0] != 14 || got[1] != 16 {
		t.Errorf("int32 doubled: %v, want [14 16]", got)
	}
	if got := tensors.MustCopyFlatData[bool](outs[2]); got[0] || !got[1] || got[2] {
		t.Errorf("bool negated: %v, want [false true false]", got)
	}
	if _, err := r.Upload(px, 4, 2); err == nil || !strings.Contains(err.Error(), "6 values") {
		t.Errorf("6 values as [4, 2]: %v, want an error", err)
	}
	if _, err := r.Upload(3.5, 1); err == nil || !strings.Contains(err.Error(), "float64") {
		t.Errorf("a scalar: %v, want an error naming its type", err)
	}
}

// TestZeros: Zeros makes zeros of any dtype and shape on the device, one
// program per shape, and refuses a shape of more axes than it keys.
func TestZeros(t *testing.T) {
	be, err := simplego.New("parallelism=4")
	if err != nil {
		t.Fatal(err)
	}
	r := New(be, Placement{})
	for _, s := range []shapes.Shape{shapes.Make(dtypes.Float32, 2, 3), shapes.Make(dtypes.Int32, 4), shapes.Make(dtypes.Float32, 2, 3)} {
		z, err := r.Zeros(s)
		if err != nil {
			t.Fatal(err)
		}
		if !z.Shape().Equal(s) {
			t.Fatalf("Zeros(%s) has shape %s", s, z.Shape())
		}
		switch s.DType {
		case dtypes.Float32:
			for _, v := range tensors.MustCopyFlatData[float32](z) {
				if v != 0 {
					t.Fatalf("Zeros(%s) holds %v", s, v)
				}
			}
		case dtypes.Int32:
			for _, v := range tensors.MustCopyFlatData[int32](z) {
				if v != 0 {
					t.Fatalf("Zeros(%s) holds %v", s, v)
				}
			}
		}
	}
	if got := r.Stats().ByProgram["execution.zeros"]; got != 2 {
		t.Errorf("two shapes compiled %d zeros programs, want 2", got)
	}
	if _, err := r.Zeros(shapes.Make(dtypes.Float32, 1, 1, 1, 1, 1, 1, 1, 1, 1)); err == nil || !strings.Contains(err.Error(), "at most 8 axes") {
		t.Errorf("9 axes: %v, want an error", err)
	}
}
