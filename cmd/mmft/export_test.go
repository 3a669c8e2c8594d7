package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestExportCommand(t *testing.T) {
	tmp := t.TempDir()
	nb := filepath.Join(tmp, "n.ipynb")
	src := `{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
	 {"cell_type": "code", "metadata": {}, "outputs": [], "source": ["func double(x int) int { return 2 * x }\n"]},
	 {"cell_type": "code", "metadata": {}, "outputs": [], "source": ["%%\n", "fmt.Println(\"doubled\", double(21))"]}]}`
	if err := os.WriteFile(nb, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "out")
	code, stdout, stderr := runCLI(t, "", "export", nb, "-o", out)
	if code != 0 || !strings.Contains(stdout, filepath.Join(out, "run.sh")) {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if _, err := exec.LookPath("go"); err == nil {
		build := exec.Command("go", "build", "-o", "prog", ".")
		build.Dir = out
		build.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod")
		if b, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, b)
		}
		got, err := exec.Command(filepath.Join(out, "prog")).Output()
		if err != nil || string(got) != "doubled 42\n" {
			t.Fatalf("program printed %q, %v", got, err)
		}
	}

	// Usage errors exit 2; a foreign folder is refused with a hint at --force.
	if code, _, stderr := runCLI(t, "", "export", nb); code != 2 || !strings.Contains(stderr, "-o DIR is required") {
		t.Fatalf("no -o: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, "", "export", "-o", out); code != 2 || !strings.Contains(stderr, "give one notebook") {
		t.Fatalf("no notebook: exit %d, %q", code, stderr)
	}
	foreign := filepath.Join(tmp, "foreign")
	os.Mkdir(foreign, 0o755)
	os.WriteFile(filepath.Join(foreign, "x"), nil, 0o644)
	if code, _, stderr := runCLI(t, "", "export", nb, "-o", foreign); code != 1 || !strings.Contains(stderr, "--force") {
		t.Fatalf("foreign folder: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, "", "export", nb, "-o", foreign, "--force"); code != 0 {
		t.Fatalf("--force: exit %d, %q", code, stderr)
	}
}
