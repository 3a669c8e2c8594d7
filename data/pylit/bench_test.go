package pylit

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkParseQAPairs parses a qa_pairs literal of 10 pairs as the Sujet
// dataset stores them.
func BenchmarkParseQAPairs(b *testing.B) {
	var parts []string
	for i := range 10 {
		parts = append(parts, fmt.Sprintf(`{'question': '<image>What was the company\'s revenue in Q%d?', "answer": "It's $%d.5 million"}`, i%4+1, i*13))
	}
	src := "[" + strings.Join(parts, ", ") + "]"
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(src); err != nil {
			b.Fatal(err)
		}
	}
}
