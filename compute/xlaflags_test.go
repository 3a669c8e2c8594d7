package compute

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMergeXLAFlags checks that the autotune cache flag is added to the
// user's XLA_FLAGS without losing any of them, and never added twice.
func TestMergeXLAFlags(t *testing.T) {
	add := "--xla_gpu_per_fusion_autotune_cache_dir=/c"
	for _, c := range []struct{ in, want string }{
		{"", add},
		{"  ", add},
		{"--xla_gpu_enable_command_buffer=", "--xla_gpu_enable_command_buffer= " + add},
		{"--xla_dump_to=/tmp/d --xla_gpu_autotune_level=2 ", "--xla_dump_to=/tmp/d --xla_gpu_autotune_level=2 " + add},
		{"--xla_gpu_per_fusion_autotune_cache_dir=/mine", "--xla_gpu_per_fusion_autotune_cache_dir=/mine"},
		{"--xla_dump_to=/x --xla_gpu_per_fusion_autotune_cache_dir=/mine", "--xla_dump_to=/x --xla_gpu_per_fusion_autotune_cache_dir=/mine"},
		// A longer flag sharing the prefix is another flag.
		{"--xla_gpu_per_fusion_autotune_cache_dir_x=1", "--xla_gpu_per_fusion_autotune_cache_dir_x=1 " + add},
	} {
		got := mergeXLAFlags(c.in, "/c")
		if got != c.want {
			t.Errorf("mergeXLAFlags(%q) = %q, want %q", c.in, got, c.want)
		}
		if n := strings.Count(got, "xla_gpu_per_fusion_autotune_cache_dir="); n != 1 {
			t.Errorf("mergeXLAFlags(%q) = %q: the flag appears %d times", c.in, got, n)
		}
	}
}

// TestPrepareXLA checks the environment handling: the default folder is
// created (0700) under the user's cache folder and added, a user's own flag
// wins, "off" disables, and a named folder that cannot be made is an error
// naming the variable.
func TestPrepareXLA(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", home) // os.UserCacheDir on Linux
	t.Setenv("HOME", home)
	t.Setenv(EnvAutotuneCache, "")
	t.Setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
	base, err := os.UserCacheDir()
	if err != nil {
		t.Skip("no user cache folder on this system:", err)
	}
	dir, err := PrepareXLA()
	want := filepath.Join(base, "mmft", "xla-autotune")
	if err != nil || dir != want {
		t.Fatalf("PrepareXLA() = %q, %v; want %q", dir, err, want)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
		t.Errorf("cache folder %s: %v, %v (want a 0700 folder)", dir, st, err)
	}
	if got := os.Getenv("XLA_FLAGS"); got != "--xla_dump_to=/tmp/x --xla_gpu_per_fusion_autotune_cache_dir="+want {
		t.Errorf("XLA_FLAGS = %q", got)
	}
	// Preparing again (a second backend) changes nothing.
	if _, err := PrepareXLA(); err != nil || strings.Count(os.Getenv("XLA_FLAGS"), "autotune_cache_dir") != 1 {
		t.Errorf("second PrepareXLA: %v, XLA_FLAGS = %q", err, os.Getenv("XLA_FLAGS"))
	}

	t.Setenv("XLA_FLAGS", "")
	t.Setenv(EnvAutotuneCache, "off")
	if dir, err := PrepareXLA(); dir != "" || err != nil || os.Getenv("XLA_FLAGS") != "" {
		t.Errorf("off: PrepareXLA() = %q, %v, XLA_FLAGS = %q", dir, err, os.Getenv("XLA_FLAGS"))
	}

	mine := filepath.Join(home, "mine")
	t.Setenv(EnvAutotuneCache, mine)
	if dir, err := PrepareXLA(); dir != mine || err != nil || os.Getenv("XLA_FLAGS") != "--xla_gpu_per_fusion_autotune_cache_dir="+mine {
		t.Errorf("named folder: PrepareXLA() = %q, %v, XLA_FLAGS = %q", dir, err, os.Getenv("XLA_FLAGS"))
	}

	file := filepath.Join(home, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XLA_FLAGS", "")
	t.Setenv(EnvAutotuneCache, filepath.Join(file, "sub"))
	if _, err := PrepareXLA(); err == nil || !strings.Contains(err.Error(), EnvAutotuneCache) {
		t.Errorf("unwritable named folder: error %v, want one naming $%s", err, EnvAutotuneCache)
	}
	if os.Getenv("XLA_FLAGS") != "" {
		t.Errorf("XLA_FLAGS set to %q after a failure", os.Getenv("XLA_FLAGS"))
	}
}
