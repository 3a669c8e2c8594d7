package tokenizer

import (
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/mmft-go/mmft/internal/shared"
)

// qwenWithExtraTokens copies the Qwen2-VL tokenizer files into a folder and
// adds three tokens to tokenizer_config.json: "<L>" (lstrip), "<R>" (rstrip)
// and "ﬁx" (a normalized, non-special added token).
func qwenWithExtraTokens(t *testing.T) *Tokenizer {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"vocab.json", "merges.txt"} {
		if err := os.Symlink(shared.Asset(t, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := `{"eos_token": {"content": "<|im_end|>"}, "pad_token": null, "added_tokens_decoder": {
		"151643": {"content": "<|endoftext|>", "special": true, "normalized": false},
		"151645": {"content": "<|im_end|>", "special": true, "normalized": false},
		"151700": {"content": "<L>", "special": true, "lstrip": true, "normalized": false},
		"151701": {"content": "<R>", "special": true, "rstrip": true, "normalized": false},
		"151702": {"content": "café", "special": false}}}`
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestAddedTokenOptions(t *testing.T) {
	ref := loadQwen(t)
	tok := qwenWithExtraTokens(t)
	if s := tok.Special(); s.EOS != 151645 || s.Pad != -1 || s.ImagePad != -1 {
		t.Errorf("Special() = %+v; want EOS from the object form, no pad, no image pad", s)
	}
	enc := func(s string) []int { return ref.Encode(s) }
	cat := func(parts ...[]int) []int {
		var out []int
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	cases := []struct {
		in   string
		want []int
	}{
		// lstrip swallows the white space before <L>, rstrip the one after <R>.
		{"a  <L> b", cat(enc("a"), []int{151700}, enc(" b"))},
		{"a <R>  b", cat(enc("a "), []int{151701}, enc("b"))},
		// A normalized added token matches after NFC: "cafe\u0301" is "café".
		{"le cafe\u0301!", cat(enc("le "), []int{151702}, enc("!"))},
		{"<L><R>", []int{151700, 151701}},
	}
	for _, c := range cases {
		if got := tok.Encode(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	if got := tok.Decode(tok.Encode("x <L> y"), true); got != "x y" {
		t.Errorf("Decode skipping special = %q", got)
	}
	if got := tok.Decode([]int{151702}, true); got != "café" {
		t.Errorf("non-special added token skipped: %q", got)
	}
}

func TestEncodeInvalidUTF8(t *testing.T) {
	tok := loadQwen(t)
	ids := tok.Encode("ok\xff\xfe<|im_end|>\xc3")
	if len(ids) == 0 {
		t.Fatal("no ids")
	}
	if got, want := tok.Decode(ids, false), "ok\uFFFD\uFFFD<|im_end|>\uFFFD"; got != want {
		t.Errorf("Decode = %+q, want %+q", got, want)
	}
	if got := tok.Encode(""); len(got) != 0 {
		t.Errorf("Encode(\"\") = %v", got)
	}
	if got := tok.EncodeBatch(nil); len(got) != 0 {
		t.Errorf("EncodeBatch(nil) = %v", got)
	}
}

// TestSmallCacheConcurrent encodes from many goroutines with a cache so small
// that shards are emptied constantly, and checks every result.
func TestSmallCacheConcurrent(t *testing.T) {
	ref := loadQwen(t)
	tok := *ref
	tok.cache = newPieceCache(cacheShards) // one entry per shard
	cases := readCases(t)
	texts := make([]string, 0, 8*len(cases))
	for i := 0; i < 8; i++ {
		for _, c := range cases {
			texts = append(texts, c.Text)
		}
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, ids := range tok.EncodeBatch(texts) {
				if want := cases[i%len(cases)].IDs; !reflect.DeepEqual(ids, want) {
					t.Errorf("text %d: %v, want %v", i, ids, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestSplitSpecialTokens(t *testing.T) {
	ref := loadQwen(t)
	dir := t.TempDir()
	for _, name := range []string{"vocab.json", "merges.txt"} {
		if err := os.Symlink(shared.Asset(t, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := `{"split_special_tokens": true, "added_tokens_decoder": {"151645": {"content": "<|im_end|>", "special": true}}}`
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := tok.Encode("a<|im_end|>")
	var want []int
	preTokenize("a<|im_end|>", func(piece string) {
		for _, id := range ref.bpeWord(piece, nil) {
			want = append(want, int(id))
		}
	})
	if !reflect.DeepEqual(got, want) {
		t.Errorf("split_special_tokens: %v, want the text tokenized as ordinary text %v", got, want)
	}
	if id, ok := tok.TokenToID("<|im_end|>"); !ok || id != 151645 {
		t.Errorf("the special token is still in the vocabulary: %d %v", id, ok)
	}
}
