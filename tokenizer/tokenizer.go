package tokenizer

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// AddedToken is a token matched in the text before pre-tokenization and never
// split: a special token (<|im_end|>) or another added token.
type AddedToken struct {
	ID      int
	Content string
	// Special tokens are dropped by Decode when skipSpecial is set.
	Special bool
	// LStrip and RStrip make the token absorb the white space on its left or right.
	LStrip, RStrip bool
	// SingleWord matches the token only when it is not inside a word.
	SingleWord bool
	// Normalized tokens are matched in the NFC-normalized text; the others
	// (all of Qwen2's) in the raw text.
	Normalized bool
}

// SpecialIDs holds the ids of the tokens that other packages need by name, as
// found in the model's configuration; an id is -1 when the model lacks it.
type SpecialIDs struct {
	EOS         int // eos_token of tokenizer_config.json (<|im_end|> for Qwen2-VL Instruct)
	Pad         int // pad_token (<|endoftext|>)
	EndOfText   int // <|endoftext|>
	ImStart     int // <|im_start|>
	ImEnd       int // <|im_end|>
	VisionStart int // <|vision_start|>
	VisionEnd   int // <|vision_end|>
	VisionPad   int // <|vision_pad|>
	ImagePad    int // <|image_pad|>
	VideoPad    int // <|video_pad|>
}

// Tokenizer is a loaded Qwen2 byte-level BPE tokenizer. It is immutable after
// Load and safe for concurrent use.
type Tokenizer struct {
	vocab        map[string]int // regular (model) tokens
	merges       map[uint64]merge
	byteIDs      [256]int32
	ignoreMerges bool

	added      []AddedToken
	addedByStr map[string]int // content -> index in added
	rawMatch   *addedMatcher  // added tokens matched before normalization
	normMatch  *addedMatcher  // added tokens matched after normalization

	idToken []string // id -> token string (regular or added); "" where absent
	idBytes [][]byte // id -> bytes it decodes to
	special []bool   // id -> is a special added token

	size     int // number of ids in use
	specials SpecialIDs
	cache    *pieceCache
}

// CacheEntries is the number of pre-tokens whose merge results a Tokenizer
// keeps (about 30 MB at most for typical text).
const CacheEntries = 1 << 18

// VocabSize returns the number of ids, regular and added tokens together
// (len(tokenizer) in transformers: 151657 for Qwen2-VL). It is smaller than the
// model's embedding size, which is padded.
func (t *Tokenizer) VocabSize() int { return t.size }

// Special returns the named special-token ids.
func (t *Tokenizer) Special() SpecialIDs { return t.specials }

// AddedTokens returns the added and special tokens, ordered by id.
func (t *Tokenizer) AddedTokens() []AddedToken {
	out := append([]AddedToken(nil), t.added...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// TokenToID returns the id of a token given in its vocabulary form (byte-level
// runes for regular tokens, e.g. "Ġhello"; the content for added tokens).
func (t *Tokenizer) TokenToID(tok string) (int, bool) {
	if i, ok := t.addedByStr[tok]; ok {
		return t.added[i].ID, true
	}
	id, ok := t.vocab[tok]
	return id, ok
}

// IDToToken returns the vocabulary form of an id.
func (t *Tokenizer) IDToToken(id int) (string, bool) {
	if id < 0 || id >= len(t.idToken) || t.idToken[id] == "" {
		return "", false
	}
	return t.idToken[id], true
}

// IsSpecial reports whether id is a special added token (one that Decode
// drops with skipSpecial).
func (t *Tokenizer) IsSpecial(id int) bool {
	return id >= 0 && id < len(t.special) && t.special[id]
}

// Encode returns the ids of text, as Hugging Face's tokenizer does with
// add_special_tokens=False (Qwen2 adds no BOS/EOS anyway). Special-token text
// such as "<|im_end|>" in the input becomes its special id.
func (t *Tokenizer) Encode(text string) []int {
	return t.encodeAppend(text, make([]int, 0, len(text)/3+1))
}

// EncodeBatch encodes texts in parallel on up to GOMAXPROCS goroutines; the
// result is in the order of texts.
func (t *Tokenizer) EncodeBatch(texts []string) [][]int {
	out := make([][]int, len(texts))
	workers := min(runtime.GOMAXPROCS(0), len(texts))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(texts) {
					return
				}
				out[i] = t.Encode(texts[i])
			}
		}()
	}
	wg.Wait()
	return out
}

func (t *Tokenizer) encodeAppend(text string, out []int) []int {
	t.rawMatch.split(text, func(seg string, added int) {
		if added >= 0 {
			out = append(out, t.added[added].ID)
			return
		}
		seg = norm.NFC.String(seg)
		t.normMatch.split(seg, func(seg2 string, added2 int) {
			if added2 >= 0 {
				out = append(out, t.added[added2].ID)
				return
			}
			preTokenize(seg2, func(piece string) {
				out = t.encodePiece(piece, out)
			})
		})
	})
	return out
}

func (t *Tokenizer) encodePiece(piece string, out []int) []int {
	if len(piece) == 1 {
		return append(out, int(t.byteIDs[piece[0]]))
	}
	if len(piece) <= maxCachedPiece {
		if ids, ok := t.cache.get(piece); ok {
			for _, id := range ids {
				out = append(out, int(id))
			}
			return out
		}
	}
	var buf [32]int32
	ids := t.bpeWord(piece, buf[:0])
	if len(piece) <= maxCachedPiece {
		t.cache.put(piece, append([]int32(nil), ids...))
	}
	for _, id := range ids {
		out = append(out, int(id))
	}
	return out
}

// Decode returns the text of ids; an added token decodes to its content. Ids
// that are not in the vocabulary are
// skipped (as Hugging Face does); with skipSpecial, special tokens are skipped
// too. Byte sequences that are not valid UTF-8 (a multi-byte character cut
// between tokens) become U+FFFD, one per maximal invalid subpart, as Python's
// errors="replace" does.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	var buf []byte
	for _, id := range ids {
		if id < 0 || id >= len(t.idBytes) || t.idToken[id] == "" {
			continue
		}
		if skipSpecial && t.special[id] {
			continue
		}
		buf = append(buf, t.idBytes[id]...)
	}
	return decodeReplace(buf)
}

// addedMatcher finds added tokens in text, leftmost first and longest among
// those starting at the same place, as Hugging Face's AddedVocabulary does.
type addedMatcher struct {
	first  [256]bool
	tokens []AddedToken
	index  []int          // index of tokens[i] in Tokenizer.added
	byByte map[byte][]int // first byte -> indexes into tokens, longest first
}

func newAddedMatcher(all []AddedToken, normalized bool) *addedMatcher {
	m := &addedMatcher{byByte: map[byte][]int{}}
	for i, a := range all {
		if a.Normalized != normalized || a.Content == "" {
			continue
		}
		m.tokens = append(m.tokens, a)
		m.index = append(m.index, i)
		k := len(m.tokens) - 1
		m.first[a.Content[0]] = true
		m.byByte[a.Content[0]] = append(m.byByte[a.Content[0]], k)
	}
	for _, l := range m.byByte {
		sort.SliceStable(l, func(i, j int) bool {
			return len(m.tokens[l[i]].Content) > len(m.tokens[l[j]].Content)
		})
	}
	return m
}

// split calls fn with the pieces of s in order: text between added tokens with
// added = -1, and each matched added token with its index in Tokenizer.added.
// White space absorbed by LStrip/RStrip tokens is dropped.
func (m *addedMatcher) split(s string, fn func(seg string, added int)) {
	if len(m.tokens) == 0 {
		if s != "" {
			fn(s, -1)
		}
		return
	}
	start := 0 // start of the pending text
	for i := 0; i < len(s); i++ {
		if !m.first[s[i]] {
			continue
		}
		for _, k := range m.byByte[s[i]] {
			a := &m.tokens[k]
			if !strings.HasPrefix(s[i:], a.Content) {
				continue
			}
			end := i + len(a.Content)
			if a.SingleWord && (isWordBefore(s, i) || isWordAfter(s, end)) {
				continue
			}
			left := i
			if a.LStrip {
				left = start + len(strings.TrimRightFunc(s[start:i], unicode.IsSpace))
			}
			if a.RStrip {
				end += len(s[end:]) - len(strings.TrimLeftFunc(s[end:], unicode.IsSpace))
			}
			if left > start {
				fn(s[start:left], -1)
			}
			fn(s[i:i+len(a.Content)], m.index[k])
			start = end
			i = end - 1
			break
		}
	}
	if start < len(s) {
		fn(s[start:], -1)
	}
}

func isWordRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

func isWordBefore(s string, i int) bool {
	if i == 0 {
		return false
	}
	r := []rune(s[max(0, i-4):i])
	return len(r) > 0 && isWordRune(r[len(r)-1])
}

func isWordAfter(s string, i int) bool {
	for _, r := range s[i:] {
		return isWordRune(r)
	}
	return false
}

// String describes the tokenizer briefly.
func (t *Tokenizer) String() string {
	return fmt.Sprintf("Qwen2 byte-level BPE tokenizer (%d tokens, %d merges, %d added)", t.VocabSize(), len(t.merges), len(t.added))
}
