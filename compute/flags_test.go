package compute

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
)

// TestCPUWorkersSet checks that the pool size asked for is the one the
// pure-Go backend got (set without simplego's "parallelism=" option).
func TestCPUWorkersSet(t *testing.T) {
	for _, n := range []int{0, MinCPUParallelism, 7} {
		b, err := New(Options{CPUParallelism: n})
		if err != nil {
			t.Fatal(err)
		}
		want := n
		if n == 0 {
			want = max(MinCPUParallelism, defaultWorkers())
		}
		if got := workers(b.Backend); got != want || b.CPUParallelism != want {
			t.Errorf("CPUParallelism %d: pool %d, Backend.CPUParallelism %d, want %d", n, got, b.CPUParallelism, want)
		}
		b.Finalize()
	}
}

// TestCPUSequentialOps checks that Options.CPUSequentialOps reaches the
// pure-Go backend (and that it is off by default).
func TestCPUSequentialOps(t *testing.T) {
	for _, seq := range []bool{false, true} {
		b, err := New(Options{CPUSequentialOps: seq})
		if err != nil {
			t.Fatal(err)
		}
		if got := sequentialOps(b.Backend); got != seq || b.CPUSequentialOps != seq {
			t.Errorf("CPUSequentialOps %v: backend runs operations sequentially: %v, Backend.CPUSequentialOps %v", seq, got, b.CPUSequentialOps)
		}
		b.Finalize()
	}
}

func defaultWorkers() int {
	b, err := NewCPU()
	if err != nil {
		return -1
	}
	defer b.Finalize()
	return b.CPUParallelism
}

// TestNewCPUWritesNothingToStdout opens the CPU backend in a child process
// and checks that its standard output holds only what the child printed
// itself: GoMLX's "parallelism set to" line must not appear, and compute
// must not hide it by swapping os.Stdout.
func TestNewCPUWritesNothingToStdout(t *testing.T) {
	if os.Getenv("MMFT_COMPUTE_CHILD") == "1" {
		saved := os.Stdout
		b, err := New(Options{CPUParallelism: 5})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		b.Finalize()
		if os.Stdout != saved {
			fmt.Fprintln(os.Stderr, "os.Stdout was replaced")
			os.Exit(4)
		}
		fmt.Print("child done")
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNewCPUWritesNothingToStdout$")
	cmd.Env = append(os.Environ(), "MMFT_COMPUTE_CHILD=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v: %s", err, stderr.String())
	}
	if string(out) != "child done" {
		t.Fatalf("the child's stdout is %q, want only %q", out, "child done")
	}
}

// TestFlagsRefuseBadValues checks the shared device flags and variables:
// every malformed value is an error naming the flag or variable and the
// rule, never silently replaced.
func TestFlagsRefuseBadValues(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string // "" = accepted
	}{
		{nil, nil, ""},
		{nil, []string{"--cpu-parallelism", "6"}, ""},
		{map[string]string{EnvCPUParallelism: "5"}, nil, ""},
		{nil, []string{"--cpu-parallelism", "abc"}, "not a whole number"},
		{nil, []string{"--cpu-parallelism", "-4"}, "the minimum is 4"},
		{nil, []string{"--cpu-parallelism", "1"}, "the minimum is 4"},
		{map[string]string{EnvCPUParallelism: "abc"}, nil, EnvCPUParallelism},
		{map[string]string{EnvCPUParallelism: "2"}, nil, "the minimum is 4"},
		{map[string]string{EnvDevice: "tpu"}, nil, EnvDevice},
		{nil, []string{"--device", "tpu"}, "unknown device"},
		{map[string]string{EnvCPUParallelism: "abc"}, []string{"--cpu-parallelism", "6"}, ""}, // the flag wins
	} {
		for _, k := range []string{EnvDevice, EnvCPUParallelism, EnvPlugin} {
			t.Setenv(k, c.env[k])
		}
		var f Flags
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		f.Register(fs)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		_, err := f.Options()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("env %v args %v: %v", c.env, c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("env %v args %v: got %v, want an error mentioning %q", c.env, c.args, err, c.want)
		}
	}
	for _, n := range []int{-4, 1, 3} {
		if _, err := New(Options{CPUParallelism: n}); err == nil || !strings.Contains(err.Error(), "minimum is 4") {
			t.Errorf("New with CPUParallelism %d: %v", n, err)
		}
	}
}

func TestCheckMemory(t *testing.T) {
	if err := CheckMemory("x", 10, 100); err != nil {
		t.Error(err)
	}
	if err := CheckMemory("x", 10, 0); err != nil {
		t.Errorf("unknown availability must pass: %v", err)
	}
	err := CheckMemory("the thing", 3<<30, 1<<30)
	if !errors.Is(err, ErrTooBig) || !strings.Contains(err.Error(), "the thing would take about 3.0 GiB, and 1.0 GiB is available") {
		t.Errorf("got %v", err)
	}
	if err := CheckMemory("y", MulBytes(math.MaxInt64/2, 3), 1<<40); err == nil || !strings.Contains(err.Error(), "more than 8 EiB") {
		t.Errorf("overflow: %v", err)
	}
	if MulBytes(1<<20, 1<<20, 1<<20, 1<<20) != -1 || AddBytes(math.MaxInt64, 1) != -1 || MulBytes(3, 4) != 12 || AddBytes(1, 2) != 3 {
		t.Error("MulBytes/AddBytes overflow handling")
	}
	if HostAvailableMemory() <= 0 {
		t.Error("HostAvailableMemory is unknown on Linux")
	}
}

// TestBenchMatmulRefusesOversized checks that sizes are refused before
// anything is allocated, with the limit or the memory in the message.
func TestBenchMatmulRefusesOversized(t *testing.T) {
	b, err := NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Finalize()
	for _, c := range []struct {
		n, chain, iters int
		want            string
	}{
		{3000000, 1, 1, "would take about 196.5 TiB"},
		{3037000500, 1, 1, "more than 8 EiB"},
		{64, 1, math.MaxInt, "100000 runs"},
		{64, 1 << 30, 1, "1000 products"},
	} {
		_, err := BenchMatmul(b, c.n, c.chain, c.iters, dtypes.Float32)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("n %d chain %d iters %d: got %v, want %q", c.n, c.chain, c.iters, err, c.want)
		}
	}
}
