package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// tokenizerJSON is the part of a Hugging Face tokenizer.json this package reads.
type tokenizerJSON struct {
	AddedTokens []struct {
		ID         int    `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	Model        struct {
		Type         string            `json:"type"`
		Vocab        map[string]int    `json:"vocab"`
		Merges       []json.RawMessage `json:"merges"`
		IgnoreMerges bool              `json:"ignore_merges"`
		ByteFallback bool              `json:"byte_fallback"`
		Dropout      *float64          `json:"dropout"`
	} `json:"model"`
}

// component is a normalizer or pre-tokenizer entry of tokenizer.json.
type component struct {
	Type    string `json:"type"`
	Pattern struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
	Behavior      string      `json:"behavior"`
	Invert        bool        `json:"invert"`
	UseRegex      *bool       `json:"use_regex"`
	AddPrefix     bool        `json:"add_prefix_space"`
	Normalizers   []component `json:"normalizers"`
	PreTokenizers []component `json:"pretokenizers"`
}

func loadTokenizerJSON(path string, cfg *config) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var tj tokenizerJSON
	if err := json.Unmarshal(data, &tj); err != nil {
		return nil, fmt.Errorf("tokenizer: %s is not valid tokenizer.json: %w", path, err)
	}
	if tj.Model.Type != "BPE" {
		return nil, fmt.Errorf("tokenizer: %s: model type %q is not supported; only byte-level BPE (Qwen2) is implemented", path, tj.Model.Type)
	}
	if tj.Model.ByteFallback || (tj.Model.Dropout != nil && *tj.Model.Dropout != 0) {
		return nil, fmt.Errorf("tokenizer: %s: BPE with byte_fallback or dropout is not supported; only Qwen2's byte-level BPE is implemented", path)
	}
	if err := checkNormalizer(tj.Normalizer); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	if err := checkPreTokenizer(tj.PreTokenizer); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	merges := make([][2]string, len(tj.Model.Merges))
	for i, raw := range tj.Model.Merges {
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			a, b, ok := strings.Cut(s, " ")
			if !ok || a == "" || b == "" {
				return nil, fmt.Errorf("tokenizer: %s: merge %d %q is not two tokens separated by a space", path, i+1, s)
			}
			merges[i] = [2]string{a, b}
			continue
		}
		var pair []string
		if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("tokenizer: %s: merge %d must be \"a b\" or [\"a\", \"b\"], got %s", path, i+1, raw)
		}
		merges[i] = [2]string{pair[0], pair[1]}
	}
	added := make([]AddedToken, len(tj.AddedTokens))
	for i, a := range tj.AddedTokens {
		added[i] = AddedToken{ID: a.ID, Content: a.Content, Special: a.Special, LStrip: a.LStrip, RStrip: a.RStrip, SingleWord: a.SingleWord, Normalized: a.Normalized}
	}
	// Added tokens may also be in the model vocabulary; build keeps one entry.
	vocab := tj.Model.Vocab
	for _, a := range added {
		if id, ok := vocab[a.Content]; ok && id == a.ID {
			delete(vocab, a.Content)
		}
	}
	return build(vocab, merges, added, cfg, tj.Model.IgnoreMerges)
}

// checkNormalizer accepts NFC (alone or in a one-element sequence), which is
// what this package applies; no normalizer at all is refused, since Encode
// would still normalize.
func checkNormalizer(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return fmt.Errorf("normalizer null is not supported; this package always applies Qwen2's NFC normalizer")
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("normalizer: %w", err)
	}
	if c.Type == "Sequence" && len(c.Normalizers) == 1 {
		c = c.Normalizers[0]
	}
	if c.Type != "NFC" {
		return fmt.Errorf("normalizer %q is not supported; only Qwen2's NFC is implemented", c.Type)
	}
	return nil
}

// checkPreTokenizer accepts Qwen2's pre-tokenizer: Split on Pattern
// (isolated) followed by ByteLevel without its own regex.
func checkPreTokenizer(raw json.RawMessage) error {
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("pre_tokenizer: %w", err)
	}
	unsupported := fmt.Errorf("pre_tokenizer is not Qwen2's (Split on its pattern, then ByteLevel with use_regex=false); only that one is implemented")
	if c.Type != "Sequence" || len(c.PreTokenizers) != 2 {
		return unsupported
	}
	sp, bl := c.PreTokenizers[0], c.PreTokenizers[1]
	if sp.Type != "Split" || sp.Pattern.Regex == nil || *sp.Pattern.Regex != Pattern || sp.Behavior != "Isolated" || sp.Invert {
		return unsupported
	}
	if bl.Type != "ByteLevel" || bl.AddPrefix || bl.UseRegex == nil || *bl.UseRegex {
		return unsupported
	}
	return nil
}
