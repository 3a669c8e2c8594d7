package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/mmft-go/mmft/internal/shared"
)

var (
	qwenOnce sync.Once
	qwenTok  *Tokenizer
	qwenErr  error
)

// loadQwen loads the real Qwen2-VL tokenizer from the shared assets once.
func loadQwen(t testing.TB) *Tokenizer {
	t.Helper()
	dir := shared.Asset(t)
	shared.Asset(t, "vocab.json")
	qwenOnce.Do(func() { qwenTok, qwenErr = Load(dir) })
	if qwenErr != nil {
		t.Fatalf("Load(%s): %v", dir, qwenErr)
	}
	return qwenTok
}

type tokCase struct {
	Text    string `json:"text"`
	IDs     []int  `json:"ids"`
	Decoded string `json:"decoded"`
}

func readCases(t testing.TB) []tokCase {
	t.Helper()
	f, err := os.Open(shared.Fixture(t, "tokenizer", "cases.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []tokCase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c tokCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("bad case line %d: %v", len(cases)+1, err)
		}
		cases = append(cases, c)
	}
	if len(cases) == 0 {
		t.Fatal("no cases in cases.jsonl")
	}
	return cases
}

func TestFixtureCases(t *testing.T) {
	tok := loadQwen(t)
	cases := readCases(t)
	fails := 0
	for i, c := range cases {
		got := tok.Encode(c.Text)
		if !reflect.DeepEqual(got, c.IDs) {
			fails++
			t.Errorf("case %d %q:\n got  %v\n want %v", i+1, c.Text, got, c.IDs)
		}
		if dec := tok.Decode(c.IDs, false); dec != c.Decoded {
			fails++
			t.Errorf("case %d: Decode = %q, want %q", i+1, dec, c.Decoded)
		}
		if fails > 10 {
			t.Fatal("too many failures")
		}
	}
	t.Logf("%d fixture cases checked", len(cases))
}

func TestEncodeBatchMatchesEncode(t *testing.T) {
	tok := loadQwen(t)
	cases := readCases(t)
	texts := make([]string, len(cases))
	for i, c := range cases {
		texts[i] = c.Text
	}
	got := tok.EncodeBatch(texts)
	for i, c := range cases {
		if !reflect.DeepEqual(got[i], c.IDs) {
			t.Fatalf("EncodeBatch[%d] = %v, want %v", i, got[i], c.IDs)
		}
	}
}

func TestSpecialIDs(t *testing.T) {
	tok := loadQwen(t)
	want := SpecialIDs{EOS: 151645, Pad: 151643, EndOfText: 151643, ImStart: 151644, ImEnd: 151645,
		VisionStart: 151652, VisionEnd: 151653, VisionPad: 151654, ImagePad: 151655, VideoPad: 151656}
	if got := tok.Special(); got != want {
		t.Fatalf("Special() = %+v, want %+v", got, want)
	}
	if n := tok.VocabSize(); n != 151657 {
		t.Errorf("VocabSize() = %d, want 151657 (len(tokenizer) in transformers)", n)
	}
	if id, ok := tok.TokenToID("Ġhello"); !ok || id != 23811 {
		t.Errorf("TokenToID(Ġhello) = %d, %v; want 23811", id, ok)
	}
	if s, ok := tok.IDToToken(151655); !ok || s != "<|image_pad|>" {
		t.Errorf("IDToToken(151655) = %q, %v", s, ok)
	}
	if _, ok := tok.IDToToken(10_000_000); ok {
		t.Error("IDToToken of an out-of-range id reported ok")
	}
	if !tok.IsSpecial(151645) || tok.IsSpecial(9707) {
		t.Error("IsSpecial wrong")
	}
}

func TestDecodeSkipSpecialAndUnknown(t *testing.T) {
	tok := loadQwen(t)
	ids := tok.Encode("<|im_start|>user\nHi<|im_end|>")
	if got := tok.Decode(ids, true); got != "user\nHi" {
		t.Errorf("Decode(skipSpecial) = %q", got)
	}
	if got := tok.Decode([]int{9707, -5, 99_999_999, 1879}, false); got != "Hello world" {
		t.Errorf("Decode with unknown ids = %q, want them skipped", got)
	}
}

func TestDecodeReplacement(t *testing.T) {
	// Expected values are Python's bytes.decode("utf-8", errors="replace").
	cases := []struct {
		in   []byte
		want string
	}{
		{[]byte("abc"), "abc"},
		{[]byte{0xE2, 0x82}, "\uFFFD"},
		{[]byte{0xE2, 0x82, 'A'}, "\uFFFDA"},
		{[]byte{0xF0, 0x9F, 0x98}, "\uFFFD"},
		{[]byte{0xF0, 0x9F, 0x98, 0xF0, 0x9F, 0x98, 0x80}, "\uFFFD😀"},
		{[]byte{0x80, 0x80}, "\uFFFD\uFFFD"},
		{[]byte{0xC0, 0xAF}, "\uFFFD\uFFFD"},
		{[]byte{0xED, 0xA0, 0x80}, "\uFFFD\uFFFD\uFFFD"},
		{[]byte{0xE0, 0x80, 0x80}, "\uFFFD\uFFFD\uFFFD"},
		{[]byte{0xF4, 0x90, 0x80, 0x80}, "\uFFFD\uFFFD\uFFFD\uFFFD"},
		{[]byte{0xF5, 'x'}, "\uFFFDx"},
		{[]byte{0xE2, 0x82, 0xAC, 0xE2}, "€\uFFFD"},
	}
	for _, c := range cases {
		if got := decodeReplace(c.in); got != c.want {
			t.Errorf("decodeReplace(% x) = %+q, want %+q", c.in, got, c.want)
		}
	}
	// Through the tokenizer: the 3 byte tokens of "€" cut after two bytes.
	tok := loadQwen(t)
	var ids []int
	for _, b := range []byte("€") {
		ids = append(ids, int(tok.byteIDs[b]))
	}
	if got := tok.Decode(ids[:2], false); got != "\uFFFD" {
		t.Errorf("Decode of a cut character = %+q, want one U+FFFD", got)
	}
}

// TestTokenizerJSON writes a tokenizer.json in Qwen2's layout, built from the
// assets' vocab.json, merges.txt and tokenizer_config.json, and checks that
// loading it gives the same tokenizer.
func TestTokenizerJSON(t *testing.T) {
	ref := loadQwen(t)
	vocab, err := readVocab(shared.Asset(t, "vocab.json"))
	if err != nil {
		t.Fatal(err)
	}
	merges, err := readMerges(shared.Asset(t, "merges.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var added []map[string]any
	for _, a := range ref.AddedTokens() {
		added = append(added, map[string]any{"id": a.ID, "content": a.Content, "single_word": a.SingleWord,
			"lstrip": a.LStrip, "rstrip": a.RStrip, "normalized": a.Normalized, "special": a.Special})
	}
	for _, arrays := range []bool{false, true} {
		var ms []any
		for _, m := range merges {
			if arrays {
				ms = append(ms, []string{m[0], m[1]})
			} else {
				ms = append(ms, m[0]+" "+m[1])
			}
		}
		tj := map[string]any{
			"version":      "1.0",
			"added_tokens": added,
			"normalizer":   map[string]any{"type": "NFC"},
			"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
				map[string]any{"type": "Split", "pattern": map[string]any{"Regex": Pattern}, "behavior": "Isolated", "invert": false},
				map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
			}},
			"decoder": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
			"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
				"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
				"vocab": vocab, "merges": ms},
		}
		dir := t.TempDir()
		data, err := json.Marshal(tj)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := os.ReadFile(shared.Asset(t, "tokenizer_config.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644); err != nil {
			t.Fatal(err)
		}
		tok, err := Load(dir)
		if err != nil {
			t.Fatalf("Load(tokenizer.json, arrays=%v): %v", arrays, err)
		}
		if tok.Special() != ref.Special() || tok.VocabSize() != ref.VocabSize() {
			t.Errorf("tokenizer.json: specials %+v size %d, want %+v %d", tok.Special(), tok.VocabSize(), ref.Special(), ref.VocabSize())
		}
		for i, c := range readCases(t) {
			if got := tok.Encode(c.Text); !reflect.DeepEqual(got, c.IDs) {
				t.Fatalf("tokenizer.json (arrays=%v) case %d: %v, want %v", arrays, i+1, got, c.IDs)
			}
			if got := tok.Decode(c.IDs, false); got != c.Decoded {
				t.Fatalf("tokenizer.json case %d: decode %q, want %q", i+1, got, c.Decoded)
			}
		}
	}
}

func TestMergesVersionLine(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"vocab.json", "tokenizer_config.json"} {
		data, err := os.ReadFile(shared.Asset(t, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	merges, err := os.ReadFile(shared.Asset(t, "merges.txt"))
	if err != nil {
		t.Fatal(err)
	}
	withVersion := append([]byte("#version: 0.2\n"), merges...)
	if err := os.WriteFile(filepath.Join(dir, "merges.txt"), withVersion, 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ref := loadQwen(t)
	text := "What was the total revenue in 2023? 财务报表 😀"
	if got, want := tok.Encode(text), ref.Encode(text); !reflect.DeepEqual(got, want) {
		t.Fatalf("with #version line: %v, want %v", got, want)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Load of a missing folder succeeded")
	}
	dir := t.TempDir()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "tokenizer_config.json") {
		t.Errorf("Load of an empty folder: %v", err)
	}
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("tokenizer_config.json", `{"added_tokens_decoder": {}}`)
	write("vocab.json", `{"a": 0}`)
	write("merges.txt", "a b\n")
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "byte-level") {
		t.Errorf("Load of a non-byte-level vocabulary: %v", err)
	}
	write("tokenizer_config.json", `{"tokenizer_class": "GPT2Tokenizer", "added_tokens_decoder": {}}`)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "GPT2Tokenizer") {
		t.Errorf("Load of a GPT-2 tokenizer folder: %v", err)
	}
	// An id far beyond any real vocabulary is refused before the id table is
	// allocated (it would exhaust memory), as is a negative one.
	write("tokenizer_config.json", `{"added_tokens_decoder": {"100000000000": {"content": "<|huge|>", "special": true}}}`)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "<|huge|>") || !strings.Contains(err.Error(), "100000000000") {
		t.Errorf("Load with an added token id of 1e11: %v", err)
	}
	write("vocab.json", `{"a": 9000000000}`)
	write("tokenizer_config.json", `{"added_tokens_decoder": {}}`)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "9000000000") {
		t.Errorf("Load with a vocabulary id of 9e9: %v", err)
	}
	write("vocab.json", `{"a": 0}`)
	pattern, err := json.Marshal(Pattern)
	if err != nil {
		t.Fatal(err)
	}
	write("tokenizer.json", `{"added_tokens": [{"id": -1, "content": "<x>"}], "normalizer": {"type": "NFC"},
		"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
			{"type": "Split", "pattern": {"Regex": `+string(pattern)+`}, "behavior": "Isolated"},
			{"type": "ByteLevel", "use_regex": false}]},
		"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), `"<x>" has id -1`) {
		t.Errorf("Load of a tokenizer.json with a negative added token id: %v", err)
	}
	write("tokenizer.json", `{"model": {"type": "WordPiece"}}`)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "WordPiece") {
		t.Errorf("Load of a WordPiece tokenizer.json: %v", err)
	}
	write("tokenizer.json", `{not json`)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "tokenizer.json") {
		t.Errorf("Load of a corrupt tokenizer.json: %v", err)
	}
}
