// Command gen writes the embedded default model folder (embedded/model): a
// tiny Qwen2-VL configuration and a small byte-level BPE vocabulary trained
// on the text the embedded default sees (the seed's system prompt and
// prefill, the built-in documents' questions and answers), in which the
// think/answer tags are single tokens. Run it with `go generate ./embedded`.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mmft-go/mmft/chattemplate"
	"github.com/mmft-go/mmft/data/synth"
	"github.com/mmft-go/mmft/prompt"
)

// Sizes of the vocabulary: 256 byte tokens plus nMerges merged ones, then the
// added tokens; the model's embedding is padded to vocabSize.
const (
	nMerges   = 480
	vocabSize = 768
)

// added are the added tokens in id order after the regular ones; the first
// eight are Qwen2-VL's special tokens the processor and template need, the
// last four the answer-format tags (added but not special, so decoding keeps
// them).
var added = []struct {
	content string
	special bool
}{
	{"<|endoftext|>", true}, {"<|im_start|>", true}, {"<|im_end|>", true},
	{"<|vision_start|>", true}, {"<|vision_end|>", true}, {"<|vision_pad|>", true},
	{"<|image_pad|>", true}, {"<|video_pad|>", true},
	{"<think>", false}, {"</think>", false}, {"<answer>", false}, {"</answer>", false},
}

func main() {
	out := flag.String("out", "model", "folder to write")
	flag.Parse()
	if err := run(*out); err != nil {
		log.Fatal(err)
	}
}

func run(out string) error {
	corpus, err := buildCorpus()
	if err != nil {
		return err
	}
	merges := trainBPE(corpus, nMerges)
	byteEnc := bytesToUnicode()
	vocab := map[string]int{}
	for b := range 256 {
		vocab[string(byteEnc[b])] = len(vocab)
	}
	for _, m := range merges {
		vocab[m[0]+m[1]] = len(vocab)
	}
	nRegular := len(vocab)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(out, "vocab.json"), vocab); err != nil {
		return err
	}
	var mb strings.Builder
	mb.WriteString("#version: 0.2\n")
	for _, m := range merges {
		mb.WriteString(m[0] + " " + m[1] + "\n")
	}
	if err := os.WriteFile(filepath.Join(out, "merges.txt"), []byte(mb.String()), 0o644); err != nil {
		return err
	}
	dec := map[string]any{}
	ids := map[string]int{}
	var specials []string
	for i, a := range added {
		id := nRegular + i
		ids[a.content] = id
		dec[fmt.Sprint(id)] = map[string]any{"content": a.content, "lstrip": false, "normalized": false,
			"rstrip": false, "single_word": false, "special": a.special}
		if a.special && a.content != "<|endoftext|>" {
			specials = append(specials, a.content)
		}
	}
	if nRegular+len(added) > vocabSize {
		return fmt.Errorf("vocabulary of %d tokens exceeds the model's %d", nRegular+len(added), vocabSize)
	}
	tokCfg := map[string]any{
		"add_prefix_space": false, "added_tokens_decoder": dec, "additional_special_tokens": specials,
		"bos_token": nil, "chat_template": chattemplate.Qwen2VLTemplate, "clean_up_tokenization_spaces": false,
		"eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 4096, "pad_token": "<|endoftext|>",
		"padding_side": "left", "split_special_tokens": false, "tokenizer_class": "Qwen2Tokenizer", "unk_token": nil,
	}
	if err := writeJSON(filepath.Join(out, "tokenizer_config.json"), tokCfg); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(out, "chat_template.json"), map[string]any{"chat_template": chattemplate.Qwen2VLTemplate}); err != nil {
		return err
	}
	// Images are resized to at most 112×112 pixels: 8×8 patches, 16 image tokens.
	pre := map[string]any{
		"min_pixels": 56 * 56, "max_pixels": 112 * 112, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
		"image_mean": []float64{0.48145466, 0.4578275, 0.40821073}, "image_std": []float64{0.26862954, 0.26130258, 0.27577711},
		"image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor",
	}
	if err := writeJSON(filepath.Join(out, "preprocessor_config.json"), pre); err != nil {
		return err
	}
	cfg := map[string]any{
		"architectures": []string{"Qwen2VLForConditionalGeneration"}, "model_type": "qwen2_vl",
		"vocab_size": vocabSize, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
		"num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 1024,
		"rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": false, "hidden_act": "silu",
		"bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
		"vision_start_token_id": ids["<|vision_start|>"], "vision_end_token_id": ids["<|vision_end|>"],
		"vision_token_id": ids["<|vision_pad|>"], "image_token_id": ids["<|image_pad|>"], "video_token_id": ids["<|video_pad|>"],
		"attention_dropout": 0.0, "torch_dtype": "float32",
		"rope_scaling": map[string]any{"type": "mrope", "mrope_section": []int{2, 3, 3}, "rope_theta": 1000000.0, "rope_type": "default"},
		"vision_config": map[string]any{"depth": 1, "embed_dim": 32, "mlp_ratio": 2, "num_heads": 2, "in_chans": 3,
			"hidden_size": 64, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},
	}
	if err := writeJSON(filepath.Join(out, "config.json"), cfg); err != nil {
		return err
	}
	gen := map[string]any{"bos_token_id": ids["<|endoftext|>"], "eos_token_id": []int{ids["<|im_end|>"], ids["<|endoftext|>"]},
		"pad_token_id": ids["<|endoftext|>"]}
	return writeJSON(filepath.Join(out, "generation_config.json"), gen)
}

// buildCorpus returns the texts the vocabulary is trained on.
func buildCorpus() ([]string, error) {
	texts := []string{prompt.DefaultSystemPrompt, prompt.DefaultPrefill, chattemplate.DefaultSystemPrompt,
		"The answer is in the chart. The value for the year is shown in the table.", "system", "user", "assistant"}
	for _, level := range []synth.Level{synth.Normal, synth.Easy} {
		train, test, err := synth.Default(level)
		if err != nil {
			return nil, err
		}
		for _, d := range append(train, test...) {
			for _, qa := range d.QA {
				texts = append(texts, qa.Question, qa.Answer)
			}
		}
	}
	return texts, nil
}

// trainBPE learns n byte-level merges over the corpus, split into words at
// spaces (a space joins the word after it, as GPT-2's pre-tokenizer does).
func trainBPE(corpus []string, n int) [][2]string {
	byteEnc := bytesToUnicode()
	counts := map[string]int{}
	for _, text := range corpus {
		for _, w := range splitWords(text) {
			counts[w]++
		}
	}
	type word struct {
		syms  []string
		count int
	}
	var words []word
	for _, w := range slices.Sorted(func(yield func(string) bool) {
		for k := range counts {
			if !yield(k) {
				return
			}
		}
	}) {
		var syms []string
		for _, b := range []byte(w) {
			syms = append(syms, string(byteEnc[b]))
		}
		words = append(words, word{syms, counts[w]})
	}
	var merges [][2]string
	for len(merges) < n {
		pairs := map[[2]string]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.syms); i++ {
				pairs[[2]string{w.syms[i], w.syms[i+1]}] += w.count
			}
		}
		var best [2]string
		bestN := 0
		for p, c := range pairs {
			if c > bestN || c == bestN && (p[0]+" "+p[1]) < (best[0]+" "+best[1]) {
				best, bestN = p, c
			}
		}
		if bestN < 2 {
			break
		}
		merges = append(merges, best)
		for wi := range words {
			s := words[wi].syms
			var out []string
			for i := 0; i < len(s); i++ {
				if i+1 < len(s) && s[i] == best[0] && s[i+1] == best[1] {
					out = append(out, best[0]+best[1])
					i++
				} else {
					out = append(out, s[i])
				}
			}
			words[wi].syms = out
		}
	}
	return merges
}

// splitWords splits text into letter runs (with a leading space), single
// digits and other runs, roughly as Qwen2's pre-tokenizer does.
func splitWords(text string) []string {
	var out []string
	var cur strings.Builder
	kind := 0 // 1 letters, 3 other
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
		kind = 0
	}
	for _, r := range text {
		switch {
		case r >= '0' && r <= '9':
			flush()
			out = append(out, string(r))
		case r == ' ':
			flush()
			cur.WriteRune(r)
			kind = 1
		case r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
			if kind != 1 {
				flush()
				kind = 1
			}
			cur.WriteRune(r)
		default:
			if kind != 3 {
				flush()
				kind = 3
			}
			cur.WriteRune(r)
		}
	}
	flush()
	return out
}

// bytesToUnicode is GPT-2's reversible map from bytes to printable runes.
func bytesToUnicode() [256]rune {
	var m [256]rune
	n := 0
	for b := range 256 {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF {
			m[b] = rune(b)
		} else {
			m[b] = rune(256 + n)
			n++
		}
	}
	return m
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
