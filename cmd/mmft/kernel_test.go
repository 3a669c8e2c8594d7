package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKernelInstallPrefix(t *testing.T) {
	prefix := t.TempDir()
	root, _ := filepath.Abs("../..")
	code, out, errOut := runCLI(t, "", "kernel", "install", "--prefix", prefix, "--source", root)
	if code != 0 {
		t.Fatalf("install: exit %d, %s %s", code, out, errOut)
	}
	dir := filepath.Join(prefix, "share", "jupyter", "kernels", "mmft")
	data, err := os.ReadFile(filepath.Join(dir, "kernel.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Argv     []string `json:"argv"`
		Language string   `json:"language"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	argv := strings.Join(spec.Argv, " ")
	for _, want := range []string{"kernel run", "--source " + root, "--goimports " + filepath.Join(dir, "bin", "goimports"), "{connection_file}"} {
		if !strings.Contains(argv, want) {
			t.Errorf("argv %q lacks %q", argv, want)
		}
	}
	if spec.Language != "go" {
		t.Errorf("language %q", spec.Language)
	}
	if fi, err := os.Stat(filepath.Join(dir, "bin", "goimports")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("goimports not built: %v", err)
	}
}

func TestKernelCommandErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "conn.json")
	os.WriteFile(bad, []byte("{not json"), 0o600)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"kernel"}, 2, "Usage: mmft kernel"},
		{[]string{"kernel", "frobnicate"}, 2, `"frobnicate"`},
		{[]string{"kernel", "install", "--user", "--prefix", "x"}, 2, "exclude each other"},
		{[]string{"kernel", "install", "--source", t.TempDir()}, 1, "go.mod"},
		{[]string{"kernel", "run"}, 2, "--connection-file is required"},
		{[]string{"kernel", "run", "-f", bad}, 1, "connection file"},
	}
	for _, c := range cases {
		code, out, errOut := runCLI(t, "", c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.want) {
			t.Errorf("mmft %s: exit %d (want %d), output %q lacks %q", strings.Join(c.args, " "), code, c.code, out+errOut, c.want)
		}
	}
}
