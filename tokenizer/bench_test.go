package tokenizer

import (
	"math/rand"
	"strings"
	"sync"
	"testing"

	"github.com/dlclark/regexp2"
)

var (
	benchOnce sync.Once
	benchText []string // ~10 MB of varied text in ~4 KB documents
)

// benchCorpus builds, deterministically, about 10 MB of varied text: English-
// like prose over a Zipf-distributed vocabulary of invented words, numbers and
// money, CJK, Cyrillic and Arabic runs, emoji, code with indentation, chat
// markup with special tokens, and runs of white space.
func benchCorpus() []string {
	benchOnce.Do(func() {
		rng := rand.New(rand.NewSource(42))
		letters := "etaoinshrdlcumwfgypbvkjxqz"
		words := make([]string, 50000)
		for i := range words {
			n := 1 + rng.Intn(6) + rng.Intn(6)
			var b strings.Builder
			for j := 0; j < n; j++ {
				b.WriteByte(letters[min(len(letters)-1, int(rng.ExpFloat64()*6))])
			}
			words[i] = b.String()
		}
		zipf := rand.NewZipf(rng, 1.1, 2, uint64(len(words)-1))
		pick := func(s []string) string { return s[rng.Intn(len(s))] }
		cjk := []string{"财务报表显示净利润增长了百分之十五。", "日本語のテキストとカタカナ", "营业收入", "第三季度", "한국어 문장입니다"}
		other := []string{"Привет, мир!", "мир", "مرحبا بالعالم", "Ελληνικά", "naïve café résumé", "ﬁligature"}
		emoji := []string{"😀", "🚀", "📈", "❤️", "👍🏽", "🇫🇷"}
		code := []string{"def f(x):\n    return x**2  # square\n", "\tif err != nil {\n\t\treturn err\n\t}\n", "for (int i = 0; i < n; ++i) {}\n"}
		var docs []string
		total := 0
		for total < 10<<20 {
			var b strings.Builder
			for b.Len() < 4096 {
				switch r := rng.Intn(100); {
				case r < 70:
					w := words[zipf.Uint64()]
					if rng.Intn(8) == 0 {
						w = strings.ToUpper(w[:1]) + w[1:]
					}
					b.WriteString(" " + w)
					if rng.Intn(12) == 0 {
						b.WriteString(pick([]string{".", ",", ";", ":", "?", "!", "'s", "'ll", ")"}))
					}
				case r < 78:
					b.WriteString(pick([]string{" $", " ", " €", " -"}))
					b.WriteString(strings.TrimLeft(strings.Repeat("1234567890", 2)[rng.Intn(10):][:1+rng.Intn(8)], ""))
					b.WriteString(pick([]string{"", ".5", ",000", "%", "M"}))
				case r < 84:
					b.WriteString(pick(cjk))
				case r < 88:
					b.WriteString(" " + pick(other))
				case r < 91:
					b.WriteString(pick(emoji))
				case r < 94:
					b.WriteString("\n" + pick(code))
				case r < 96:
					b.WriteString(pick([]string{"\n\n", "\n", "   ", "\t", " \n  "}))
				case r < 98:
					b.WriteString("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>")
				default:
					b.WriteString("<|im_end|>\n")
				}
			}
			docs = append(docs, b.String())
			total += b.Len()
		}
		benchText = docs
	})
	return benchText
}

func corpusBytes(docs []string) int {
	n := 0
	for _, d := range docs {
		n += len(d)
	}
	return n
}

// BenchmarkEncode encodes the ~10 MB corpus on one goroutine, with the merge
// cache warm after the first pass (the steady state of a long job).
func BenchmarkEncode(b *testing.B) {
	tok := loadQwen(b)
	docs := benchCorpus()
	b.SetBytes(int64(corpusBytes(docs)))
	b.ResetTimer()
	tokens := 0
	for i := 0; i < b.N; i++ {
		for _, d := range docs {
			tokens += len(tok.Encode(d))
		}
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
	b.ReportMetric(float64(tokens)/float64(b.N), "tokens/op")
}

// BenchmarkEncodeColdCache encodes the corpus with an empty merge cache each
// pass, so every distinct pre-token goes through the BPE merge loop once.
func BenchmarkEncodeColdCache(b *testing.B) {
	ref := loadQwen(b)
	docs := benchCorpus()
	b.SetBytes(int64(corpusBytes(docs)))
	b.ResetTimer()
	tokens := 0
	for i := 0; i < b.N; i++ {
		tok := *ref
		tok.cache = newPieceCache(CacheEntries)
		for _, d := range docs {
			tokens += len(tok.Encode(d))
		}
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkEncodeBatch encodes the corpus with EncodeBatch (all cores).
func BenchmarkEncodeBatch(b *testing.B) {
	tok := loadQwen(b)
	docs := benchCorpus()
	b.SetBytes(int64(corpusBytes(docs)))
	b.ResetTimer()
	tokens := 0
	for i := 0; i < b.N; i++ {
		for _, ids := range tok.EncodeBatch(docs) {
			tokens += len(ids)
		}
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkDecode decodes the corpus's ids.
func BenchmarkDecode(b *testing.B) {
	tok := loadQwen(b)
	docs := benchCorpus()
	ids := tok.EncodeBatch(docs)
	b.SetBytes(int64(corpusBytes(docs)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, x := range ids {
			_ = tok.Decode(x, false)
		}
	}
}

// TestBenchCorpusRoundTrips keeps the benchmark honest: the corpus encodes
// and decodes back to itself (it is already NFC).
func TestBenchCorpusRoundTrips(t *testing.T) {
	if testing.Short() {
		t.Skip("10 MB corpus")
	}
	tok := loadQwen(t)
	docs := benchCorpus()[:200]
	for i, ids := range tok.EncodeBatch(docs) {
		if got := tok.Decode(ids, false); got != docs[i] {
			t.Fatalf("doc %d does not round-trip", i)
		}
	}
}

// BenchmarkPreTokenize measures the hand-written pre-tokenizer alone on the
// first MB of the corpus; BenchmarkPreTokenizeRegexp2 runs the same pattern
// with regexp2 for comparison.
func BenchmarkPreTokenize(b *testing.B) {
	text := strings.Join(benchCorpus(), "")[:1<<20]
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		preTokenize(text, func(string) { n++ })
	}
}

func BenchmarkPreTokenizeRegexp2(b *testing.B) {
	text := strings.Join(benchCorpus(), "")[:1<<20]
	re := regexp2.MustCompile(Pattern, regexp2.Unicode)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m, err := re.FindStringMatch(text)
		for ; m != nil && err == nil; m, err = re.FindNextMatch(m) {
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
