package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInterruptLeavesNoTempFiles builds the mmft binary, starts a `data
// synth` large enough to be writing its parquet through a temporary file,
// stops it with SIGTERM and then with SIGINT, and checks that each run exits
// with 128 + the signal and leaves no temporary file behind.
func TestInterruptLeavesNoTempFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "mmft")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		out := t.TempDir()
		cmd := exec.Command(bin, "data", "synth", "--out", out, "--n", "100000", "--level", "easy")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		temps := func() []string {
			m, _ := filepath.Glob(filepath.Join(out, "data", ".*.tmp-*"))
			return m
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		deadline := time.After(60 * time.Second)
	wait:
		for len(temps()) == 0 {
			select {
			case err := <-done:
				t.Fatalf("%v: mmft ended before writing (%v); stderr %s", sig, err, stderr.String())
			case <-deadline:
				cmd.Process.Kill()
				<-done
				t.Fatalf("%v: no temporary file appeared within 60 s; stderr %s", sig, stderr.String())
			case <-time.After(50 * time.Millisecond):
				continue wait
			}
		}
		time.Sleep(300 * time.Millisecond) // some documents into the file
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		err := <-done
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 128+int(sig) {
			t.Errorf("%v: exit %v, want %d; stderr %s", sig, err, 128+int(sig), stderr.String())
		}
		if left := temps(); len(left) > 0 {
			t.Errorf("%v: temporary files left behind: %v", sig, left)
		}
		entries, _ := os.ReadDir(filepath.Join(out, "data"))
		for _, e := range entries {
			if strings.Contains(e.Name(), ".tmp-") || strings.HasSuffix(e.Name(), ".parquet") {
				t.Errorf("%v: %s left in the output folder", sig, e.Name())
			}
		}
		if !strings.Contains(stderr.String(), "stopping") {
			t.Errorf("%v: stderr does not say it is stopping: %s", sig, stderr.String())
		}
	}
}
