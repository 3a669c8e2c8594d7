package hub

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// pattern is one compiled fnmatch-style glob, with Python fnmatch's rules:
// "*" matches any run of characters including "/", "?" one character,
// "[seq]" and "[!seq]" a character class; a pattern ending in "/" matches
// everything below that folder (as huggingface_hub's filter_repo_objects).
type pattern struct {
	src string
	re  *regexp.Regexp
}

func compilePattern(p string) (pattern, error) {
	src := p
	if !utf8.ValidString(p) {
		return pattern{}, fmt.Errorf("hub: file pattern %q is not valid UTF-8", p)
	}
	if strings.HasSuffix(p, "/") {
		p += "*"
	}
	var b strings.Builder
	b.WriteString(`(?s)^`)
	rs := []rune(p)
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '[':
			j := i + 1
			if j < len(rs) && rs[j] == '!' {
				j++
			}
			if j < len(rs) && rs[j] == ']' {
				j++
			}
			for j < len(rs) && rs[j] != ']' {
				j++
			}
			if j >= len(rs) {
				b.WriteString(`\[`)
				continue
			}
			body := string(rs[i+1 : j])
			if strings.HasPrefix(body, "!") {
				body = "^" + body[1:]
			} else if strings.HasPrefix(body, "^") {
				body = `\` + body
			}
			body = strings.ReplaceAll(body, `\`, `\\`)
			body = strings.ReplaceAll(body, `[`, `\[`)
			b.WriteString("[" + body + "]")
			i = j
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`$`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		return pattern{}, fmt.Errorf("hub: bad file pattern %q: %w", src, err)
	}
	return pattern{src: src, re: re}, nil
}

func compilePatterns(ps []string) ([]pattern, error) {
	out := make([]pattern, 0, len(ps))
	for _, p := range ps {
		c, err := compilePattern(p)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Match reports whether name (a slash-separated repository path) matches the
// fnmatch-style glob pattern, with the rules Options.Include uses.
func Match(glob, name string) (bool, error) {
	p, err := compilePattern(glob)
	if err != nil {
		return false, err
	}
	return p.re.MatchString(name), nil
}

// filterFiles keeps the files matching an include pattern (all when there is
// none) and no exclude pattern; unmatched lists include patterns that matched
// nothing.
func filterFiles(files []string, include, exclude []pattern) (kept, unmatched []string) {
	used := make([]bool, len(include))
	for _, f := range files {
		ok := len(include) == 0
		for i, p := range include {
			if p.re.MatchString(f) {
				ok, used[i] = true, true
			}
		}
		if !ok {
			continue
		}
		for _, p := range exclude {
			if p.re.MatchString(f) {
				ok = false
				break
			}
		}
		if ok {
			kept = append(kept, f)
		}
	}
	for i, u := range used {
		if !u {
			unmatched = append(unmatched, include[i].src)
		}
	}
	return kept, unmatched
}
