package compute

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// EnvAutotuneCache configures XLA's persistent autotune cache on the GPU:
// unset or empty means a folder under the user's cache folder
// (os.UserCacheDir()/mmft/xla-autotune), "off" disables it, any other value
// is the folder to use.
const EnvAutotuneCache = "MMFT_XLA_AUTOTUNE_CACHE"

// autotuneFlag is XLA's flag naming the folder where its GPU autotuner keeps
// one result per fusion across processes: a second process compiling the
// same programs skips the measurements (a prefill warm-up went from 35 s to
// 19 s on an H200).
const autotuneFlag = "xla_gpu_per_fusion_autotune_cache_dir"

// PrepareXLA sets the process's XLA_FLAGS before an XLA backend is opened
// (XLA reads them once, when the plugin first compiles): it adds XLA's
// persistent autotune cache (see EnvAutotuneCache) unless the user's
// XLA_FLAGS already set one, keeping every flag the user gave. It returns
// the cache folder in use ("" when disabled). A folder that cannot be
// created is an error when the user named it, and skipped (no cache, no
// error) when it is the default: the cache only saves time.
func PrepareXLA() (string, error) {
	flags := os.Getenv("XLA_FLAGS")
	if dir, ok := flagValue(flags, autotuneFlag); ok {
		return dir, nil
	}
	setting := strings.TrimSpace(os.Getenv(EnvAutotuneCache))
	if strings.EqualFold(setting, "off") {
		return "", nil
	}
	dir := setting
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", nil
		}
		dir = filepath.Join(base, "mmft", "xla-autotune")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		if setting != "" {
			return "", fmt.Errorf("compute: $%s: creating the XLA autotune cache folder: %w (set it to a writable folder, or to off)", EnvAutotuneCache, err)
		}
		return "", nil
	}
	if err := os.Setenv("XLA_FLAGS", mergeXLAFlags(flags, dir)); err != nil {
		return "", fmt.Errorf("compute: setting XLA_FLAGS: %w", err)
	}
	return dir, nil
}

// mergeXLAFlags returns the XLA_FLAGS value flags with
// --xla_gpu_per_fusion_autotune_cache_dir=dir appended, unless flags
// already set that flag (the user's choice is kept, never duplicated).
func mergeXLAFlags(flags, dir string) string {
	if _, ok := flagValue(flags, autotuneFlag); ok {
		return flags
	}
	add := "--" + autotuneFlag + "=" + dir
	if strings.TrimSpace(flags) == "" {
		return add
	}
	return strings.TrimRight(flags, " \t") + " " + add
}

// flagValue finds flag name (without dashes) among the space-separated
// flags of an XLA_FLAGS value and returns its value.
func flagValue(flags, name string) (string, bool) {
	for _, f := range strings.Fields(flags) {
		key, value, _ := strings.Cut(strings.TrimLeft(f, "-"), "=")
		if key == name {
			return value, true
		}
	}
	return "", false
}
