package pylit

import (
	"strconv"
	"strings"
	"sync"

	"golang.org/x/text/unicode/runenames"
)

// nameTable is the reverse of runenames.Name, built on the first \N{...} escape.
// It is a read-only cache once built.
var nameTable = sync.OnceValue(func() map[string]rune {
	m := make(map[string]rune, 40000)
	for r := rune(0); r <= unicode_MaxRune; r++ {
		if r >= 0xD800 && r < 0xE000 {
			continue
		}
		n := runenames.Name(r)
		if n == "" || n[0] == '<' {
			continue
		}
		m[n] = r
	}
	return m
})

// algorithmicPrefixes are the name prefixes whose code point is spelled in hex
// at the end of the name (UnicodeData lists them as ranges).
var algorithmicPrefixes = []string{"CJK UNIFIED IDEOGRAPH-", "CJK COMPATIBILITY IDEOGRAPH-", "TANGUT IDEOGRAPH-",
	"KHITAN SMALL SCRIPT CHARACTER-", "NUSHU CHARACTER-"}

// lookupName finds the code point of a Unicode character name, case-insensitively
// as Python's \N{...} does. Hangul syllable names and name aliases are not known.
func lookupName(name string) (rune, bool) {
	up := strings.ToUpper(strings.TrimSpace(name))
	for _, pre := range algorithmicPrefixes {
		if hex, ok := strings.CutPrefix(up, pre); ok {
			v, err := strconv.ParseUint(hex, 16, 32)
			if err != nil || len(hex) < 4 || v > unicode_MaxRune {
				return 0, false
			}
			r := rune(v)
			if n := runenames.Name(r); n == "" || n[0] != '<' && n != up {
				return 0, false
			}
			return r, true
		}
	}
	r, ok := nameTable()[up]
	return r, ok
}
