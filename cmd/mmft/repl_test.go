package main

import (
	"strings"
	"testing"
)

// Piped input is read plainly: no prompts, no history; errors do not end it.
// (The terminal mode is tested through a pseudo-terminal in package repl.)
func TestReplCommandReadsPipedInput(t *testing.T) {
	in := "import \"fmt\"\nfmt.Println(\"printed\")\nx := 2\nfunc triple(n int) int {\n\treturn 3 * n\n}\nx * 21\nnope + 1\ntriple(x)\n"
	code, stdout, stderr := runCLI(t, in, "repl", "--no-history")
	if code != 0 || stdout != "printed\n42\n6\n" || !strings.Contains(stderr, "undefined: nope") {
		t.Fatalf("exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	if code, _, stderr := runCLI(t, "", "repl", "extra"); code != 2 || !strings.Contains(stderr, "unexpected argument") {
		t.Fatalf("extra argument: exit %d, %q", code, stderr)
	}
}
