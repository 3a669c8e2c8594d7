package compute

import (
	"strings"
	"testing"

	"github.com/gomlx/go-xla/pkg/pjrt"
	"github.com/gomlx/go-xla/pkg/stablehlo"
	xladtypes "github.com/gomlx/go-xla/pkg/types/dtypes"
	xlashapes "github.com/gomlx/go-xla/pkg/types/shapes"
)

func TestConfigureDispatch(t *testing.T) {
	defer pjrt.SetAwaitExecution(false)
	for _, c := range []struct {
		value string
		sync  bool
	}{{"", false}, {"off", false}, {"0", false}, {"1", true}, {" ON ", true}, {"true", true}} {
		t.Setenv(EnvXLASync, c.value)
		got, err := ConfigureDispatch()
		if err != nil || got != c.sync || pjrt.AwaitExecution() != c.sync {
			t.Errorf("%s=%q: got sync=%v (pjrt %v), err %v; want %v", EnvXLASync, c.value, got, pjrt.AwaitExecution(), err, c.sync)
		}
	}
	t.Setenv(EnvXLASync, "sometimes")
	if _, err := ConfigureDispatch(); err == nil || !strings.Contains(err.Error(), EnvXLASync) {
		t.Errorf("a malformed %s gave %v, want an error naming it", EnvXLASync, err)
	}
}

// TestExactBF16Dots builds StableHLO programs with the patched go-xla
// builder: a float32 product of two widened bf16 values (one through a
// transpose) gets the BF16_BF16_F32 algorithm when MMFT_XLA_EXACT_BF16_DOTS
// is on, and not when it is off or when an operand was float32 already (its
// rounding would not be exact).
func TestExactBF16Dots(t *testing.T) {
	defer stablehlo.SetExactBF16Dots(false)
	program := func(widenRight bool) string {
		b := stablehlo.New("dots")
		fn := b.Main()
		x, err := fn.Input(xlashapes.Make(xladtypes.BFloat16, 2, 3))
		if err != nil {
			t.Fatal(err)
		}
		var y *stablehlo.Value
		if widenRight {
			y, err = fn.Input(xlashapes.Make(xladtypes.BFloat16, 4, 3))
		} else {
			y, err = fn.Input(xlashapes.Make(xladtypes.Float32, 4, 3))
		}
		if err != nil {
			t.Fatal(err)
		}
		xf, err := stablehlo.Convert(x, xladtypes.Float32)
		if err != nil {
			t.Fatal(err)
		}
		if widenRight {
			if y, err = stablehlo.Convert(y, xladtypes.Float32); err != nil {
				t.Fatal(err)
			}
		}
		yt, err := stablehlo.Transpose(y, 1, 0) // [3, 4]
		if err != nil {
			t.Fatal(err)
		}
		out, err := stablehlo.DotGeneral(xf, []int{1}, nil, yt, []int{0}, nil).Done()
		if err != nil {
			t.Fatal(err)
		}
		if err := fn.Return(out); err != nil {
			t.Fatal(err)
		}
		text, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		return string(text)
	}
	for _, c := range []struct {
		env        string
		widenRight bool
		want       bool
	}{{"", true, false}, {"1", true, true}, {"1", false, false}, {"off", true, false}} {
		t.Setenv(EnvExactBF16Dots, c.env)
		if _, err := ConfigureDots(); err != nil {
			t.Fatal(err)
		}
		text := program(c.widenRight)
		got := strings.Contains(text, "dot_algorithm") && strings.Contains(text, "lhs_precision_type = bf16")
		if got != c.want {
			t.Errorf("%s=%q, right operand widened from bf16: %v: BF16_BF16_F32 algorithm %v, want %v\n%s", EnvExactBF16Dots, c.env, c.widenRight, got, c.want, text)
		}
	}
	t.Setenv(EnvExactBF16Dots, "maybe")
	if _, err := ConfigureDots(); err == nil || !strings.Contains(err.Error(), EnvExactBF16Dots) {
		t.Errorf("a malformed %s gave %v, want an error naming it", EnvExactBF16Dots, err)
	}
}

// TestDeviceMemoryElsewhere: the allocator statistics exist on XLA backends
// only; the pure-Go backend gets ok=false, not a panic.
func TestDeviceMemoryElsewhere(t *testing.T) {
	be, err := New(Options{Device: CPU})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Backend.Finalize()
	if st, ok := DeviceMemory(be.Backend, 0); ok {
		t.Errorf("pure-Go backend: got statistics %+v, want none", st)
	}
}
