package tokenizer

import (
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"golang.org/x/text/unicode/norm"
)

// addSeeds adds the fixture texts and a few hand-picked strings to f.
func addSeeds(f *testing.F) {
	for _, c := range readCases(f) {
		f.Add(c.Text)
	}
	for _, s := range []string{"", " ", "\r\n\r\n  x", "a\u0301", ">\u0338", "<|im_end|>\u0301", "'S 'LL 'Re", "x\u00a0 \u3000y", "\U0001F600\U0001F4C8abc", "\xff\xfe", "\u2028\u2029 \u0085"} {
		f.Add(s)
	}
}

// expectedRoundTrip is what decoding the encoding of s must give: s with the
// text between added tokens normalized to NFC (added tokens are matched on the
// raw text, so NFC never composes across them).
func expectedRoundTrip(t *Tokenizer, s string) string {
	var b strings.Builder
	t.rawMatch.split(s, func(seg string, added int) {
		if added >= 0 {
			b.WriteString(seg)
			return
		}
		b.WriteString(norm.NFC.String(seg))
	})
	return b.String()
}

// FuzzRoundTrip checks that valid UTF-8 text survives encode then decode,
// after NFC normalization, and that EncodeBatch agrees with Encode.
func FuzzRoundTrip(f *testing.F) {
	tok := loadQwen(f)
	addSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		ids := tok.Encode(s)
		if got, want := tok.Decode(ids, false), expectedRoundTrip(tok, s); got != want {
			t.Fatalf("round trip of %+q: got %+q, want %+q (ids %v)", s, got, want, ids)
		}
		if batch := tok.EncodeBatch([]string{s, s}); !reflect.DeepEqual(batch[0], ids) || !reflect.DeepEqual(batch[1], ids) {
			t.Fatalf("EncodeBatch of %+q = %v, Encode = %v", s, batch, ids)
		}
		if strings.Contains(s, "<|") {
			return
		}
		if got, want := tok.Decode(ids, false), norm.NFC.String(s); got != want {
			t.Fatalf("round trip of %+q: got %+q, want NFC %+q", s, got, want)
		}
	})
}

// FuzzPreTokenizeMatchesRegexp checks the hand-written scanner against the
// pattern run by regexp2 (a backtracking engine with lookahead). regexp2's
// case-insensitive matching does not fold U+017F (long s) to "s" as
// Oniguruma does, so inputs holding it are left out.
func FuzzPreTokenizeMatchesRegexp(f *testing.F) {
	re := regexp2.MustCompile(Pattern, regexp2.Unicode)
	re.MatchTimeout = 2 * time.Second
	addSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0x017F) {
			return
		}
		if err := comparePreTokenize(t, re, s); err != nil {
			t.Skipf("regexp2 on %+q: %v", s, err)
		}
	})
}

// comparePreTokenize fails t when the scanner and regexp2 split s
// differently. It returns regexp2's error (a match timeout) when regexp2
// could not split s, and then compares nothing.
func comparePreTokenize(t *testing.T, re *regexp2.Regexp, s string) error {
	t.Helper()
	var want []string
	m, err := re.FindStringMatch(s)
	for ; m != nil && err == nil; m, err = re.FindNextMatch(m) {
		want = append(want, m.String())
	}
	if err != nil {
		return err
	}
	var got []string
	preTokenize(s, func(p string) { got = append(got, p) })
	if strings.Join(want, "") != s {
		t.Fatalf("regexp2 matches %+q do not cover the input %+q", want, s)
	}
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		t.Fatalf("%+q: scanner %+q, regexp2 %+q", s, got, want)
	}
	return nil
}

// TestPreTokenizeMatchesRegexpRandom compares the scanner with regexp2 on
// many random strings over an alphabet of the classes the pattern tells apart.
func TestPreTokenizeMatchesRegexpRandom(t *testing.T) {
	re := regexp2.MustCompile(Pattern, regexp2.Unicode)
	re.MatchTimeout = 5 * time.Second
	alpha := []rune("aZ0٣½Ⅻ \t\n\r\v\f'sStTrRvVmMlLdDe.,-$😀📈é\u00a0\u0301\u0338日本\u2028\u2029\u3000\u0085\u200b\u1680ǅʰ\U0001D400\U0001F1FA")
	rng := rand.New(rand.NewSource(1))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	failed := 0
	for i := 0; i < n; i++ {
		rs := make([]rune, rng.Intn(16))
		for j := range rs {
			rs[j] = alpha[rng.Intn(len(alpha))]
		}
		if err := comparePreTokenize(t, re, string(rs)); err != nil {
			failed++
			t.Logf("regexp2 could not split %+q: %v", string(rs), err)
		}
	}
	// A regexp2 timeout on one string (a loaded machine) skips that string
	// only; the comparison must still have run on nearly every case.
	if failed > n/100 {
		t.Fatalf("regexp2 failed on %d of %d strings: the comparison did not run", failed, n)
	}
}

func TestContractionFolding(t *testing.T) {
	var got []string
	preTokenize("it'S we'LL x'ſ", func(p string) { got = append(got, p) })
	want := []string{"it", "'S", " we", "'LL", " x", "'ſ"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}
