package compute

import (
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/go-xla/pkg/pjrt"
	"github.com/gomlx/go-xla/pkg/stablehlo"
)

// EnvXLASync chooses how XLA programs are dispatched on the GPU: unset, "0"
// or "off" (the default) returns from each program call once its work is
// enqueued, so the host prepares the next call while the device runs this
// one; "1" or "on" waits for the device after every call, which makes each
// program's host time (execution.Stats.Runs) its device time, for
// profiling. The asynchronous dispatch comes from mmft's patched copy of
// go-xla (third_party/go-xla, see its PATCHES.md): upstream v0.1.4 always
// waits.
const EnvXLASync = "MMFT_XLA_SYNC"

// ConfigureDispatch applies EnvXLASync to the PJRT executions of this
// process and reports whether they wait for the device. A value other than
// the documented ones is an error naming the variable.
func ConfigureDispatch() (sync bool, err error) {
	sync, err = envSwitch(EnvXLASync, "1/on (wait for the device after each program call) or 0/off (the default: asynchronous dispatch)")
	if err != nil {
		return false, err
	}
	pjrt.SetAwaitExecution(sync)
	return sync, nil
}

// envSwitch reads an on/off environment variable: unset, "0", "off",
// "false" or "no" is off; "1", "on", "true" or "yes" is on; anything else
// is an error naming the variable and what it wants.
func envSwitch(name, want string) (bool, error) {
	switch v := strings.ToLower(strings.TrimSpace(os.Getenv(name))); v {
	case "", "0", "off", "false", "no":
		return false, nil
	case "1", "on", "true", "yes":
		return true, nil
	default:
		return false, fmt.Errorf("compute: $%s=%q: want %s", name, v, want)
	}
}

// EnvExactBF16Dots turns on, when "1" or "on", the BF16_BF16_F32 algorithm
// for float32 dot products whose two operands are widened bf16 values (the
// attention scores' and the LM head's products in the bf16 precision policy,
// see qwen2vl): exact products and float32 accumulation at bf16 speed, from
// mmft's patched go-xla (third_party/go-xla, PATCHES.md). Experimental: off by
// default until measured on the GPU.
const EnvExactBF16Dots = "MMFT_XLA_EXACT_BF16_DOTS"

// ConfigureDots applies EnvExactBF16Dots to the programs this process
// compiles and reports whether it is on. A value other than the documented
// ones is an error naming the variable.
func ConfigureDots() (on bool, err error) {
	on, err = envSwitch(EnvExactBF16Dots, "1/on (bf16 products with float32 accumulation for float32 products of widened bf16 values) or 0/off (the default)")
	if err != nil {
		return false, err
	}
	stablehlo.SetExactBF16Dots(on)
	return on, nil
}
