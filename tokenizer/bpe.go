package tokenizer

// merge is the result of merging one pair of tokens: its rank (priority,
// lower first) and the id of the merged token.
type merge struct {
	rank int32
	id   int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// candidate is a possible merge of the symbol at pos with the one after it.
type candidate struct {
	rank        int32
	pos         int32
	left, right int32 // the ids it was computed for, to detect stale entries
}

// candHeap is a binary min-heap of candidates ordered by (rank, pos),
// written out to avoid container/heap's boxing of every element.
type candHeap []candidate

func (c candidate) less(d candidate) bool {
	if c.rank != d.rank {
		return c.rank < d.rank
	}
	return c.pos < d.pos
}

func (h *candHeap) init() {
	for i := len(*h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *candHeap) push(c candidate) {
	*h = append(*h, c)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *candHeap) pop() candidate {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	*h = s[:last]
	h.down(0)
	return top
}

func (h *candHeap) down(i int) {
	s := *h
	for {
		l := 2*i + 1
		if l >= len(s) {
			return
		}
		m := l
		if r := l + 1; r < len(s) && s[r].less(s[l]) {
			m = r
		}
		if !s[m].less(s[i]) {
			return
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
}

// symbol is one token of a word being merged, in a doubly linked list.
type symbol struct {
	id         int32
	prev, next int32 // -1 at the ends
	dead       bool
}

// bpeWord merges the byte-level symbols of one pre-token and appends the
// resulting ids to out. It always applies the lowest-ranked adjacent pair
// present, the leftmost one on ties, as Hugging Face's BPE does; the priority
// queue makes it O(n log n) in the pre-token's length.
func (t *Tokenizer) bpeWord(piece string, out []int32) []int32 {
	n := len(piece)
	if n == 1 {
		return append(out, t.byteIDs[piece[0]])
	}
	if t.ignoreMerges {
		if id, ok := t.vocab[byteLevelString([]byte(piece))]; ok {
			return append(out, int32(id))
		}
	}
	var symsBuf [32]symbol
	var candBuf [32]candidate
	syms := symsBuf[:0]
	if n > len(symsBuf) {
		syms = make([]symbol, 0, n)
	}
	for i := 0; i < n; i++ {
		syms = append(syms, symbol{id: t.byteIDs[piece[i]], prev: int32(i - 1), next: int32(i + 1)})
	}
	syms[n-1].next = -1
	h := candHeap(candBuf[:0])
	for i := 0; i+1 < n; i++ {
		if m, ok := t.merges[pairKey(syms[i].id, syms[i+1].id)]; ok {
			h = append(h, candidate{rank: m.rank, pos: int32(i), left: syms[i].id, right: syms[i+1].id})
		}
	}
	h.init()
	for len(h) > 0 {
		c := h.pop()
		l := &syms[c.pos]
		if l.dead || l.id != c.left || l.next < 0 {
			continue
		}
		r := &syms[l.next]
		if r.id != c.right {
			continue
		}
		m := t.merges[pairKey(c.left, c.right)]
		l.id = m.id
		r.dead = true
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = c.pos
		}
		if l.prev >= 0 {
			p := &syms[l.prev]
			if m2, ok := t.merges[pairKey(p.id, l.id)]; ok {
				h.push(candidate{rank: m2.rank, pos: l.prev, left: p.id, right: l.id})
			}
		}
		if l.next >= 0 {
			nx := &syms[l.next]
			if m2, ok := t.merges[pairKey(l.id, nx.id)]; ok {
				h.push(candidate{rank: m2.rank, pos: c.pos, left: l.id, right: nx.id})
			}
		}
	}
	for i := int32(0); i >= 0; i = syms[i].next {
		out = append(out, syms[i].id)
	}
	return out
}
