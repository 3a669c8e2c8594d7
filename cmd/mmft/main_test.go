package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/cudainfo"
	"github.com/mmft-go/mmft/internal/shared"
)

// runCLI runs one mmft command line in-process and returns its exit code and output.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{ctx: context.Background(), stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb}
	code := c.main(args)
	return code, out.String(), errb.String()
}

func TestHelpListsEveryCommand(t *testing.T) {
	code, out, _ := runCLI(t, "", "help")
	if code != 0 {
		t.Fatalf("help exit %d", code)
	}
	for _, cmd := range commands() {
		if !strings.Contains(out, "  "+cmd.name) {
			t.Errorf("help does not list %q", cmd.name)
		}
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	for _, cmd := range commands() {
		if cmd.run == nil {
			continue
		}
		code, out, errOut := runCLI(t, "", cmd.name, "--help")
		if code != 0 || !strings.Contains(out, "Usage: mmft "+cmd.name) {
			t.Errorf("mmft %s --help: exit %d, stdout %q, stderr %q", cmd.name, code, out, errOut)
		}
	}
}

func TestUnknownAndUnbuiltCommands(t *testing.T) {
	if code, _, errOut := runCLI(t, "", "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command: exit %d, %q", code, errOut)
	}
	for _, cmd := range commands() {
		if cmd.run != nil {
			continue
		}
		code, _, errOut := runCLI(t, "", cmd.name)
		if code != 1 || !strings.Contains(errOut, "not built yet") {
			t.Errorf("mmft %s: exit %d, %q", cmd.name, code, errOut)
		}
		code, out, _ := runCLI(t, "", cmd.name, "--help")
		if code != 0 || !strings.Contains(out, "Not built yet") {
			t.Errorf("mmft %s --help: exit %d, %q; want exit 0 and what brings it", cmd.name, code, out)
		}
	}
	if code, _, errOut := runCLI(t, "", "env", "--no-such-flag"); code != 2 || !strings.Contains(errOut, "no-such-flag") {
		t.Fatalf("bad flag: exit %d, %q", code, errOut)
	}
}

func TestUnknownSubcommandsSayWhich(t *testing.T) {
	for _, args := range [][]string{{"bench", "frobnicate"}, {"data", "frobnicate"}} {
		code, _, errOut := runCLI(t, "", args...)
		if code != 2 || !strings.Contains(errOut, `unknown`) || !strings.Contains(errOut, `"frobnicate"`) {
			t.Errorf("mmft %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
		}
	}
}

func TestEnvCPU(t *testing.T) {
	code, out, errOut := runCLI(t, "", "env", "--device", "cpu", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var info compute.Info
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("env --json is not JSON: %v\n%s", err, out)
	}
	if info.Device != "cpu" || len(info.Devices) != 1 || info.Versions["gomlx"] == "" {
		t.Fatalf("unexpected env: %+v", info)
	}
	// The CUDA driver's answer: its report, or why there is none.
	var cuda struct {
		CUDA      *cudainfo.Report `json:"cuda"`
		CUDAError string           `json:"cuda_error"`
	}
	if err := json.Unmarshal([]byte(out), &cuda); err != nil || (cuda.CUDA == nil) == (cuda.CUDAError == "") {
		t.Fatalf("env --json: want exactly one of cuda and cuda_error: %v\n%s", err, out)
	}
	_, text, _ := runCLI(t, "", "env", "--device", "cpu")
	want := "cuda driver:  not asked (this mmft was built without -tags cuda)"
	if cudainfo.Built {
		want = "cuda driver:  "
	}
	if !strings.Contains(text, want) {
		t.Fatalf("env does not say %q:\n%s", want, text)
	}
}

func TestBenchMatmulCPU(t *testing.T) {
	code, out, errOut := runCLI(t, "", "bench", "matmul", "--device", "cpu", "--n", "32", "--iters", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil || res["tflops"].(float64) <= 0 {
		t.Fatalf("bad output %q: %v", out, err)
	}
	if code, _, _ := runCLI(t, "", "bench", "matmul", "--dtype", "int3"); code != 1 {
		t.Fatalf("bad dtype accepted")
	}
}

func TestDeviceFlagsReachTheBackend(t *testing.T) {
	t.Setenv(compute.EnvCPUParallelism, "5")
	for flags, want := range map[string]int{"": 5, "--cpu-parallelism=7": 7} {
		args := []string{"env", "--json"}
		if flags != "" {
			args = append(args, flags)
		}
		code, out, errOut := runCLI(t, "", args...)
		var info compute.Info
		if code != 0 || json.Unmarshal([]byte(out), &info) != nil || info.CPUParallelism != want {
			t.Errorf("mmft %s: exit %d, cpu_parallelism %d, want %d (stderr %q)", strings.Join(args, " "), code, info.CPUParallelism, want, errOut)
		}
	}
}

// computingCommands are the command lines (all else valid) of every command
// that computes on a backend; a new one (train, rollout, eval, worker) joins
// this list and TestDeviceSettingsMeanTheSame checks it.
func computingCommands(t *testing.T) [][]string {
	dir := shared.Fixture(t, "qwen2vl-tiny")
	return [][]string{
		{"env"},
		{"bench", "matmul", "--n", "8", "--iters", "1"},
		{"forward", "--model", dir, "--inputs", filepath.Join(dir, "reference.safetensors"), "--out", filepath.Join(t.TempDir(), "o.safetensors")},
		{"grpo", "loss", "--cases", shared.Fixture(t, "grpo", "loss_cases.json")},
		{"train", "--steps", "1", "--quiet", "--output-dir", filepath.Join(t.TempDir(), "run")},
		{"eval", "--max-samples", "1", "--max-new-tokens", "2"},
		{"rollout", "--model", dir, "--greedy", "--inputs", filepath.Join(dir, "reference.safetensors"), "--max-new-tokens", "2"},
	}
}

// TestDeviceSettingsMeanTheSame runs every computing command with each bad
// device setting, from a flag and from the environment: each is refused with
// exit 1, a message naming it, and nothing on stdout. A GPU asked for where no
// CUDA plugin is installed fails the same way in every command.
func TestDeviceSettingsMeanTheSame(t *testing.T) {
	noPlugin := true
	if _, err := compute.FindCUDAPlugin(""); err == nil {
		noPlugin = false
	}
	for _, c := range []struct {
		name  string
		env   map[string]string
		flags []string
		want  string
	}{
		{"gpu from env", map[string]string{compute.EnvDevice: "gpu"}, nil, "no PJRT CUDA plugin found"},
		{"gpu flag", nil, []string{"--device", "gpu"}, "no PJRT CUDA plugin found"},
		{"plugin flag", nil, []string{"--device", "gpu", "--plugin", "/nonexistent/cuda.so"}, "/nonexistent/cuda.so"},
		{"plugin env", map[string]string{compute.EnvDevice: "gpu", compute.EnvPlugin: "/nonexistent/cuda.so"}, nil, "/nonexistent/cuda.so"},
		{"device env", map[string]string{compute.EnvDevice: "tpu"}, nil, compute.EnvDevice},
		{"device flag", nil, []string{"--device", "tpu"}, "unknown device \"tpu\""},
		{"parallelism env abc", map[string]string{compute.EnvCPUParallelism: "abc"}, nil, compute.EnvCPUParallelism},
		{"parallelism flag abc", nil, []string{"--cpu-parallelism", "abc"}, "not a whole number"},
		{"parallelism flag -4", nil, []string{"--cpu-parallelism", "-4"}, "the minimum is 4"},
		{"parallelism flag 1", nil, []string{"--cpu-parallelism", "1"}, "the minimum is 4"},
		{"parallelism env 1", map[string]string{compute.EnvCPUParallelism: "1"}, nil, "the minimum is 4"},
	} {
		if strings.Contains(c.want, "PJRT") && !noPlugin {
			continue // a CUDA plugin is installed here
		}
		for _, k := range []string{compute.EnvDevice, compute.EnvPlugin, compute.EnvCPUParallelism} {
			t.Setenv(k, c.env[k])
		}
		for _, args := range computingCommands(t) {
			code, out, errOut := runCLI(t, "", append(args, c.flags...)...)
			if code != 1 || !strings.Contains(errOut, c.want) || out != "" {
				t.Errorf("%s: mmft %s: exit %d, stdout %q, stderr %q; want exit 1 and %q",
					c.name, strings.Join(append(args[:1:1], c.flags...), " "), code, out, errOut, c.want)
			}
		}
	}
	for _, args := range computingCommands(t) {
		code, out, _ := runCLI(t, "", append(args[:len(args):len(args)], "--help")...)
		for _, flag := range []string{"-device", "-plugin", "-cpu-parallelism", compute.EnvDevice, compute.EnvPlugin, compute.EnvCPUParallelism} {
			if code != 0 || !strings.Contains(out, flag) {
				t.Errorf("mmft %s --help: exit %d, does not mention %s", args[0], code, flag)
			}
		}
	}
}

func TestInterspersedFlags(t *testing.T) {
	c := &cli{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	fs := c.newFlags("x", "", "")
	out := fs.String("out", "", "")
	verbose := fs.Bool("v", false, "")
	n := fs.Int("n", 0, "")
	if err := c.parse(fs, []string{"a.png", "--out", "o.st", "b.png", "-v", "--n=3", "--", "--not-a-flag"}); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(fs.Args(), ",")
	if *out != "o.st" || !*verbose || *n != 3 || got != "a.png,b.png,--not-a-flag" {
		t.Fatalf("out=%q v=%v n=%d args=%q", *out, *verbose, *n, got)
	}
}

// TestMessages checks messages a new user met: no doubled package prefix,
// bad --pixel-limit values refused, an unwritable preprocess-image --out
// failing before any success line, and offline hints that name only flags
// the command has.
func TestMessages(t *testing.T) {
	code, _, errOut := runCLI(t, "", "data", "inspect", filepath.Join(t.TempDir(), "missing"))
	if code != 1 || strings.Contains(errOut, "data: data:") || !strings.HasPrefix(errOut, "mmft data: ") {
		t.Errorf("data inspect of a missing folder: exit %d, %q", code, errOut)
	}
	for _, v := range []string{"0", "-2"} {
		code, _, errOut := runCLI(t, "", "data", "inspect", t.TempDir(), "--pixel-limit", v)
		if code != 2 || !strings.Contains(errOut, "--pixel-limit "+v+": give a positive pixel count, or -1 for no limit") {
			t.Errorf("--pixel-limit %s: exit %d, %q", v, code, errOut)
		}
	}
	img, err := filepath.Abs(filepath.Join("..", "..", "imageproc", "testdata", "exif6.png"))
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "", "preprocess-image", img, "--out", t.TempDir())
	if code != 1 || out != "" || !strings.Contains(errOut, "--out: cannot write") {
		t.Errorf("preprocess-image --out FOLDER: exit %d, stdout %q, stderr %q; want exit 1 and no success line", code, out, errOut)
	}
	t.Setenv("HF_HUB_OFFLINE", "1")
	t.Setenv("HF_HUB_CACHE", t.TempDir())
	code, _, errOut = runCLI(t, "", "tokenize", "--model", "someorg/somemodel")
	if code != 1 || strings.Contains(errOut, "--offline") || !strings.Contains(errOut, "HF_HUB_OFFLINE=1") || !strings.Contains(errOut, "`mmft download someorg/somemodel`") {
		t.Errorf("tokenize offline: exit %d, %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "", "data", "inspect", "someorg/somedata")
	if code != 1 || !strings.Contains(errOut, "`mmft download --dataset someorg/somedata`") {
		t.Errorf("data inspect offline: exit %d, %q", code, errOut)
	}
}
