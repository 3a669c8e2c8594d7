// Package shared locates the project's shared reference material (the real
// Qwen2-VL assets and the reference fixtures) that lives beside the checkout in
// ../shared, so that tests can read it and skip cleanly where it is absent.
//
// In CI (the environment variable CI set to true, as CI services set it) an
// absent folder or file fails the test instead: a green CI run means the
// fixture comparisons ran.
package shared

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// EnvVar overrides where the shared folder is (an absolute path).
const EnvVar = "MMFT_SHARED"

// InCI reports whether the tests run in CI: $CI is true (or 1, yes).
func InCI() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv("CI"))) {
	case "true", "1", "yes":
		return true
	}
	return false
}

// absent skips t with msg, or fails it in CI where the reference material
// must be present.
func absent(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true and "+format+"; CI must run the fixture tests: provide ../shared or set $"+EnvVar, args...)
	}
	t.Skipf("skipping: "+format, args...)
}

// Find returns the shared folder: $MMFT_SHARED when set, otherwise the folder
// "shared" beside the repository root (the directory holding go.mod), searched
// upwards from the working directory.
func Find() (string, error) {
	if dir := os.Getenv(EnvVar); dir != "" {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return "", errors.New("$" + EnvVar + "=" + dir + " is not a folder")
		}
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			cand := filepath.Join(filepath.Dir(dir), "shared")
			if st, err := os.Stat(cand); err == nil && st.IsDir() {
				return cand, nil
			}
			return "", errors.New("no shared folder at " + cand + " (set $" + EnvVar + " to its path)")
		}
		if filepath.Dir(dir) == dir {
			return "", errors.New("no go.mod above " + wd + "; set $" + EnvVar)
		}
	}
}

// Path returns the path of rel inside the shared folder, or skips the test
// with a clear message when the shared folder or that file is absent (fails
// it in CI).
func Path(t testing.TB, rel ...string) string {
	t.Helper()
	dir, err := Find()
	if err != nil {
		absent(t, "shared reference material not available: %v", err)
	}
	p := filepath.Join(append([]string{dir}, rel...)...)
	if _, err := os.Stat(p); err != nil {
		absent(t, "%s is absent from the shared folder (%v)", filepath.Join(rel...), err)
	}
	return p
}

// Asset returns the path of a file or folder of the real Qwen2-VL-2B-Instruct
// assets (shared/assets/qwen2-vl-2b-instruct), skipping the test where absent.
func Asset(t testing.TB, rel ...string) string {
	t.Helper()
	return Path(t, append([]string{"assets", "qwen2-vl-2b-instruct"}, rel...)...)
}

// Fixture returns the path of a reference fixture (shared/fixtures/...),
// skipping the test where absent.
func Fixture(t testing.TB, rel ...string) string {
	t.Helper()
	return Path(t, append([]string{"fixtures"}, rel...)...)
}
