package tokenizer

import (
	"math/rand"
	"testing"
)

func TestStreamDecoderMatchesDecode(t *testing.T) {
	tok := loadQwen(t)
	rng := rand.New(rand.NewSource(3))
	var all [][]int
	for _, c := range readCases(t) {
		all = append(all, c.IDs)
	}
	// Byte-level ids of random bytes: cut characters, invalid sequences.
	for i := 0; i < 2000; i++ {
		ids := make([]int, rng.Intn(12))
		for j := range ids {
			b := []byte{0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80, 0xC3, 0xA9, 0xED, 0xA0, 0x80, 0xFF, 'a', ' '}[rng.Intn(15)]
			ids[j] = int(tok.byteIDs[b])
		}
		all = append(all, ids)
	}
	for _, skip := range []bool{false, true} {
		for _, ids := range all {
			d := tok.NewStreamDecoder(skip)
			got := ""
			for _, id := range ids {
				got += d.Add(id)
			}
			got += d.Flush()
			if want := tok.Decode(ids, skip); got != want {
				t.Fatalf("ids %v: stream %+q, Decode %+q", ids, got, want)
			}
		}
	}
	// A character is held back until complete.
	d := tok.NewStreamDecoder(false)
	euro := []byte("€")
	if s := d.Add(int(tok.byteIDs[euro[0]])) + d.Add(int(tok.byteIDs[euro[1]])); s != "" {
		t.Errorf("partial character emitted: %+q", s)
	}
	if s := d.Add(int(tok.byteIDs[euro[2]])); s != "€" {
		t.Errorf("completed character: %+q", s)
	}
}
