package repl

import (
	"path/filepath"
	"testing"
)

func TestComplete(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want bool
	}{
		{"x := 1", true},
		{"x * 2", true},
		{`import "fmt"`, true},
		{"func f(n int) int {", false},
		{"func f(n int) int {\n\treturn n * 2\n}", true},
		{"for i := 0; i < 3; i++ {", false},
		{"fmt.Println(", false},
		{"fmt.Println(1,\n2)", true},
		{"x :=", false},
		{"s := `raw", false},
		{"s := `raw\nstring`", true},
		{"/* comment", false},
		{"type T struct {", false},
		{"x := )", true}, // a syntax error inside the text: evaluate and report it
		{"1 +* 2", true}, // likewise
		{"", true},
		{"var (\n\ta = 1", false},
	} {
		if got := Complete(tc.src); got != tc.want {
			t.Errorf("Complete(%q) = %v, want %v", tc.src, got, tc.want)
		}
	}
}

func TestDefaultHistoryFileIsUnderTheUserCache(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", dir)
	got, err := DefaultHistoryFile()
	if err != nil || got != filepath.Join(dir, "mmft", "repl_history") {
		t.Fatalf("DefaultHistoryFile() = %q, %v", got, err)
	}
}
