package hub

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzMatch checks that any pattern compiles or fails cleanly, that a pattern
// without glob characters matches exactly itself, and that "*" matches all.
func FuzzMatch(f *testing.F) {
	for _, s := range []string{"*.json", "[!a]x", "[", "a]b", "sub/", "[]]", "[^x]", `a\b`, "?*?"} {
		f.Add(s, "sub/a.json")
	}
	f.Fuzz(func(t *testing.T, pat, name string) {
		ok, err := Match(pat, name)
		if err != nil || !utf8.ValidString(name) {
			return
		}
		if !strings.ContainsAny(pat, "*?[") && !strings.HasSuffix(pat, "/") && ok != (pat == name) {
			t.Fatalf("literal pattern %q vs %q: %v", pat, name, ok)
		}
		if all, _ := Match("*", name); !all {
			t.Fatalf("* does not match %q", name)
		}
	})
}
