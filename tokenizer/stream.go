package tokenizer

import "unicode/utf8"

// StreamDecoder decodes ids one at a time, as a generation loop produces
// them, returning text as soon as it is complete: the bytes of a character cut
// between tokens are held back until the rest arrives. The concatenation of
// everything Add and Flush return equals Decode of all the ids. A
// StreamDecoder is not safe for concurrent use.
type StreamDecoder struct {
	t           *Tokenizer
	skipSpecial bool
	pending     []byte
}

// NewStreamDecoder returns a StreamDecoder; skipSpecial leaves special tokens
// out as in Decode.
func (t *Tokenizer) NewStreamDecoder(skipSpecial bool) *StreamDecoder {
	return &StreamDecoder{t: t, skipSpecial: skipSpecial}
}

// Add decodes one more id and returns the text it completes (possibly "").
// Unknown ids are skipped, as in Decode.
func (d *StreamDecoder) Add(id int) string {
	t := d.t
	if id < 0 || id >= len(t.idBytes) || t.idToken[id] == "" || (d.skipSpecial && t.special[id]) {
		return ""
	}
	d.pending = append(d.pending, t.idBytes[id]...)
	n := completePrefix(d.pending)
	if n == 0 {
		return ""
	}
	out := decodeReplace(d.pending[:n])
	d.pending = append(d.pending[:0], d.pending[n:]...)
	return out
}

// Flush returns the held-back bytes, an unfinished character becoming U+FFFD,
// and resets the decoder.
func (d *StreamDecoder) Flush() string {
	out := decodeReplace(d.pending)
	d.pending = d.pending[:0]
	return out
}

// completePrefix returns the length of the longest prefix of b that decodes
// the same whatever bytes follow: all of b except a trailing sequence that is
// a valid but unfinished start of a character.
func completePrefix(b []byte) int {
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		if r, w := utf8.DecodeRune(b[i:]); r != utf8.RuneError || w > 1 {
			i += w
			continue
		}
		n := maximalSubpart(b[i:])
		if i+n == len(b) && n < utf8.UTFMax && startsSequence(b[i]) && !utf8.FullRune(b[i:]) {
			return i
		}
		i += n
	}
	return len(b)
}

// startsSequence reports whether c can begin a multi-byte UTF-8 sequence.
func startsSequence(c byte) bool { return c >= 0xC2 && c <= 0xF4 }
