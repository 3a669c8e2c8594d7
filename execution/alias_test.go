package execution

import (
	"strings"
	"testing"

	"github.com/gomlx/go-xla/pkg/stablehlo"
	xladtypes "github.com/gomlx/go-xla/pkg/types/dtypes"
	xlashapes "github.com/gomlx/go-xla/pkg/types/shapes"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// TestPairDonated pairs donated parameters with outputs of their shape, in
// order, each output once; parameters not donated and shapes without an
// output stay unpaired.
func TestPairDonated(t *testing.T) {
	f := func(d ...int) shapes.Shape { return shapes.Make(dtypes.Float32, d...) }
	b := shapes.Make(dtypes.Bool, 4)
	params := []shapes.Shape{f(2, 3), f(4), b, f(2, 3), f(2, 3), f(5)}
	outputs := []shapes.Shape{f(1), b, f(2, 3), f(2, 3), f(4)}
	got := pairDonated(params, outputs, []bool{true, false, true, true, true, true})
	want := []int{2, -1, 1, 3, -1, -1}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pairs %v, want %v", got, want)
		}
	}
}

// TestAliasOnlyOnXLA: on the pure-Go backend (no StableHLO) nothing is
// declared and donated state still runs right; the attribute itself is
// written in the form XLA reads (checked on go-xla's StableHLO builder).
func TestAliasOnlyOnXLA(t *testing.T) {
	be, err := simplego.New("parallelism=2")
	if err != nil {
		t.Fatal(err)
	}
	r := New(be, Placement{})
	x := tensors.FromFlatDataAndDimensions([]float32{1, 2}, 2)
	state := accumulate(t, r, accumulator(), x, 2)
	if got := tensors.MustCopyFlatData[float32](state); got[0] != 2 || got[1] != 4 {
		t.Errorf("accumulated %v, want [2 4]", got)
	}
	if n := r.Stats().Aliased; n != 0 {
		t.Errorf("%d arguments aliased on the pure-Go backend, want 0", n)
	}

	bld := stablehlo.New("alias")
	fn := bld.Main()
	sh := xlashapes.Make(xladtypes.Float32, 2)
	a, err := fn.InputWithAttributes(sh, map[string]any{aliasAttribute: int32(0)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := fn.Input(sh)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := stablehlo.Add(a, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := fn.Return(sum); err != nil {
		t.Fatal(err)
	}
	text, err := bld.Build()
	if err != nil {
		t.Fatal(err)
	}
	if want := "tf.aliasing_output = 0 : i32"; !strings.Contains(string(text), want) {
		t.Errorf("StableHLO lacks %q:\n%s", want, text)
	}
}
