package tokenizer

// byteToRune is GPT-2's reversible map from a byte to a printable rune, used by
// byte-level BPE vocabularies: printable Latin-1 bytes map to themselves and the
// others to runes from U+0100 upwards, in byte order.
var byteToRune, runeToByte = buildByteMaps()

func buildByteMaps() ([256]rune, map[rune]byte) {
	var b2r [256]rune
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	n := 0
	for b := 0; b < 256; b++ {
		if printable(b) {
			b2r[b] = rune(b)
		} else {
			b2r[b] = rune(256 + n)
			n++
		}
	}
	r2b := make(map[rune]byte, 256)
	for b, r := range b2r {
		r2b[r] = byte(b)
	}
	return b2r, r2b
}

// tokenBytes returns the bytes a token string stands for, as Hugging Face's
// ByteLevel decoder does: when every rune of tok is a byte-level rune, the
// bytes they map to; otherwise tok's own UTF-8 bytes.
func tokenBytes(tok string) []byte {
	out := make([]byte, 0, len(tok))
	for _, r := range tok {
		b, ok := runeToByte[r]
		if !ok {
			return []byte(tok)
		}
		out = append(out, b)
	}
	return out
}

// byteLevelString maps raw bytes to their byte-level token string.
func byteLevelString(b []byte) string {
	rs := make([]rune, len(b))
	for i, c := range b {
		rs[i] = byteToRune[c]
	}
	return string(rs)
}
