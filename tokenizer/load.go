package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Load reads the tokenizer of the model folder dir: tokenizer.json when
// present, otherwise vocab.json, merges.txt (with or without a "#version"
// first line) and tokenizer_config.json (its added_tokens_decoder gives the
// added and special tokens). The names of the EOS and pad tokens come from
// tokenizer_config.json (eos_token, pad_token) when it is there.
func Load(dir string) (*Tokenizer, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: model folder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("tokenizer: %s is not a folder; pass the model folder that holds tokenizer.json or vocab.json + merges.txt", dir)
	}
	cfg, cfgErr := readConfig(filepath.Join(dir, "tokenizer_config.json"))
	if cfgErr != nil && !errors.Is(cfgErr, fs.ErrNotExist) {
		return nil, cfgErr
	}
	tjPath := filepath.Join(dir, "tokenizer.json")
	if _, err := os.Stat(tjPath); err == nil {
		return loadTokenizerJSON(tjPath, cfg)
	}
	if cfgErr != nil {
		return nil, fmt.Errorf("tokenizer: %s has neither tokenizer.json nor tokenizer_config.json (with vocab.json + merges.txt the config is needed for the added and special tokens); pass the model folder that holds them", dir)
	}
	// vocab.json + merges.txt do not say how text is pre-tokenized; the class
	// named in the config does. Refuse classes other than Qwen2's rather than
	// silently tokenizing with the wrong pattern.
	switch cfg.TokenizerClass {
	case "", "Qwen2Tokenizer", "Qwen2TokenizerFast":
	default:
		return nil, fmt.Errorf("tokenizer: %s names tokenizer_class %q; only Qwen2Tokenizer is implemented (a tokenizer.json with Qwen2's pre-tokenizer is also accepted)", cfg.path, cfg.TokenizerClass)
	}
	vocab, err := readVocab(filepath.Join(dir, "vocab.json"))
	if err != nil {
		return nil, err
	}
	merges, err := readMerges(filepath.Join(dir, "merges.txt"))
	if err != nil {
		return nil, err
	}
	added, err := cfg.addedTokens()
	if err != nil {
		return nil, err
	}
	return build(vocab, merges, added, cfg, false)
}

// config is the part of tokenizer_config.json the tokenizer uses.
type config struct {
	path               string
	AddedTokensDecoder map[string]struct {
		Content    string `json:"content"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		SingleWord bool   `json:"single_word"`
		Normalized *bool  `json:"normalized"`
		Special    bool   `json:"special"`
	} `json:"added_tokens_decoder"`
	EOSToken       json.RawMessage `json:"eos_token"`
	TokenizerClass string          `json:"tokenizer_class"`
	// SplitSpecialTokens makes special tokens in the text be tokenized as
	// ordinary text instead of being matched (false for Qwen2).
	SplitSpecialTokens bool            `json:"split_special_tokens"`
	PadToken           json.RawMessage `json:"pad_token"`
}

func readConfig(path string) (*config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	cfg := &config{path: path}
	if err := json.Unmarshal(data, cfg); err != nil {
		return nil, fmt.Errorf("tokenizer: %s is not valid tokenizer_config JSON: %w", path, err)
	}
	return cfg, nil
}

// tokenName returns the content of a token entry that is either a string or
// an AddedToken object {"content": ...}; "" when null or absent.
func tokenName(raw json.RawMessage, field, path string) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", fmt.Errorf("tokenizer: %s: %s must be a string or an object with \"content\": %w", path, field, err)
	}
	return obj.Content, nil
}

func (c *config) addedTokens() ([]AddedToken, error) {
	var out []AddedToken
	for k, v := range c.AddedTokensDecoder {
		id, err := strconv.Atoi(k)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("tokenizer: %s: added_tokens_decoder key %q is not a token id", c.path, k)
		}
		if v.Content == "" {
			return nil, fmt.Errorf("tokenizer: %s: added token %d has empty content", c.path, id)
		}
		// transformers' AddedToken defaults normalized to the opposite of special.
		normalized := !v.Special
		if v.Normalized != nil {
			normalized = *v.Normalized
		}
		out = append(out, AddedToken{ID: id, Content: v.Content, Special: v.Special, LStrip: v.LStrip, RStrip: v.RStrip, SingleWord: v.SingleWord, Normalized: normalized})
	}
	return out, nil
}

func readVocab(path string) (map[string]int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: vocabulary: %w", err)
	}
	var vocab map[string]int
	if err := json.Unmarshal(data, &vocab); err != nil {
		return nil, fmt.Errorf("tokenizer: %s must be a JSON object of token -> id: %w", path, err)
	}
	return vocab, nil
}

func readMerges(path string) ([][2]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: merges: %w", err)
	}
	defer f.Close()
	var merges [][2]string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimRight(sc.Text(), "\r")
		if line == 1 && strings.HasPrefix(s, "#version") {
			continue
		}
		if s == "" {
			continue
		}
		a, b, ok := strings.Cut(s, " ")
		if !ok || a == "" || b == "" || strings.Contains(b, " ") {
			return nil, fmt.Errorf("tokenizer: %s line %d: a merge must be two tokens separated by one space, got %q", path, line, s)
		}
		merges = append(merges, [2]string{a, b})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokenizer: reading %s: %w", path, err)
	}
	return merges, nil
}

// maxTokenID is the largest token id Load accepts. The tokenizer keeps a table
// indexed by id, so a corrupt file naming an id in the billions would otherwise
// exhaust memory; real vocabularies stay far below this (Qwen2's ends at 151664).
const maxTokenID = 1<<22 - 1

// build assembles a Tokenizer from its parts.
func build(vocab map[string]int, merges [][2]string, added []AddedToken, cfg *config, ignoreMerges bool) (*Tokenizer, error) {
	t := &Tokenizer{vocab: vocab, ignoreMerges: ignoreMerges, cache: newPieceCache(CacheEntries)}
	maxID := -1
	for tok, id := range vocab {
		if id < 0 || id > maxTokenID {
			return nil, fmt.Errorf("tokenizer: vocabulary token %q has id %d; ids must be in 0..%d (is the vocabulary file corrupt?)", tok, id, maxTokenID)
		}
		maxID = max(maxID, id)
	}
	for _, a := range added {
		if a.ID < 0 || a.ID > maxTokenID {
			return nil, fmt.Errorf("tokenizer: added token %q has id %d; ids must be in 0..%d (is the tokenizer file corrupt?)", a.Content, a.ID, maxTokenID)
		}
		maxID = max(maxID, a.ID)
	}
	t.idToken = make([]string, maxID+1)
	t.idBytes = make([][]byte, maxID+1)
	t.special = make([]bool, maxID+1)
	for tok, id := range vocab {
		if tok == "" {
			return nil, fmt.Errorf("tokenizer: vocabulary has an empty token (id %d)", id)
		}
		if t.idToken[id] != "" {
			return nil, fmt.Errorf("tokenizer: vocabulary gives id %d to both %q and %q", id, t.idToken[id], tok)
		}
		t.idToken[id] = tok
		t.idBytes[id] = tokenBytes(tok)
	}
	for b := 0; b < 256; b++ {
		s := string(byteToRune[b])
		id, ok := vocab[s]
		if !ok {
			return nil, fmt.Errorf("tokenizer: vocabulary lacks the byte-level token %q for byte 0x%02x; not a byte-level BPE vocabulary", s, b)
		}
		t.byteIDs[b] = int32(id)
	}
	t.merges = make(map[uint64]merge, len(merges))
	for rank, m := range merges {
		a, okA := vocab[m[0]]
		b, okB := vocab[m[1]]
		ab, okAB := vocab[m[0]+m[1]]
		if !okA || !okB || !okAB {
			return nil, fmt.Errorf("tokenizer: merge %d (%q %q) uses a token missing from the vocabulary", rank+1, m[0], m[1])
		}
		k := pairKey(int32(a), int32(b))
		if _, dup := t.merges[k]; !dup { // the first (lowest) rank wins
			t.merges[k] = merge{rank: int32(rank), id: int32(ab)}
		}
	}
	t.addedByStr = make(map[string]int, len(added))
	for _, a := range added {
		if prev, dup := t.addedByStr[a.Content]; dup {
			return nil, fmt.Errorf("tokenizer: added token %q appears twice (ids %d and %d)", a.Content, t.added[prev].ID, a.ID)
		}
		if old := t.idToken[a.ID]; old != "" && old != a.Content {
			return nil, fmt.Errorf("tokenizer: added token %q has id %d, already used by vocabulary token %q", a.Content, a.ID, old)
		}
		t.addedByStr[a.Content] = len(t.added)
		t.added = append(t.added, a)
		t.idToken[a.ID] = a.Content
		// An added token decodes to its content. (Hugging Face's tokenizers
		// before the 2026 fix of issue #1996 sent added tokens through the
		// ByteLevel decoder, mangling contents with Latin-1 letters; for
		// ASCII contents such as all of Qwen2's the two agree.)
		t.idBytes[a.ID] = []byte(a.Content)
		t.special[a.ID] = a.Special
	}
	matchable := t.added
	if cfg != nil && cfg.SplitSpecialTokens {
		matchable = make([]AddedToken, len(t.added))
		copy(matchable, t.added)
		for i := range matchable {
			if matchable[i].Special {
				matchable[i].Content = "" // never matched
			}
		}
	}
	for _, tok := range t.idToken {
		if tok != "" {
			t.size++
		}
	}
	t.rawMatch = newAddedMatcher(matchable, false)
	t.normMatch = newAddedMatcher(matchable, true)

	id := func(name string) int {
		if v, ok := t.TokenToID(name); ok && name != "" {
			return v
		}
		return -1
	}
	t.specials = SpecialIDs{
		EOS: -1, Pad: -1,
		EndOfText: id("<|endoftext|>"), ImStart: id("<|im_start|>"), ImEnd: id("<|im_end|>"),
		VisionStart: id("<|vision_start|>"), VisionEnd: id("<|vision_end|>"), VisionPad: id("<|vision_pad|>"),
		ImagePad: id("<|image_pad|>"), VideoPad: id("<|video_pad|>"),
	}
	if cfg != nil {
		eos, err := tokenName(cfg.EOSToken, "eos_token", cfg.path)
		if err != nil {
			return nil, err
		}
		pad, err := tokenName(cfg.PadToken, "pad_token", cfg.path)
		if err != nil {
			return nil, err
		}
		if eos != "" {
			if t.specials.EOS = id(eos); t.specials.EOS < 0 {
				return nil, fmt.Errorf("tokenizer: %s: eos_token %q is not in the vocabulary", cfg.path, eos)
			}
		}
		if pad != "" {
			if t.specials.Pad = id(pad); t.specials.Pad < 0 {
				return nil, fmt.Errorf("tokenizer: %s: pad_token %q is not in the vocabulary", cfg.path, pad)
			}
		}
	}
	return t, nil
}
