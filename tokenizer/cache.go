package tokenizer

import (
	"strings"
	"sync"
)

const (
	cacheShards = 64
	// maxCachedPiece is the longest pre-token (in bytes) whose merge result is cached.
	maxCachedPiece = 128
)

// pieceCache is a bounded, concurrency-safe map from a pre-token to its ids.
// It is split into shards, each with its own lock; a shard that reaches its
// share of the capacity is emptied before the next insertion, which bounds
// memory without bookkeeping on the hot path.
type pieceCache struct {
	perShard int
	shards   [cacheShards]struct {
		mu sync.RWMutex
		m  map[string][]int32
	}
}

func newPieceCache(capacity int) *pieceCache {
	c := &pieceCache{perShard: max(1, capacity/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[string][]int32)
	}
	return c
}

// shard picks k's shard from a cheap mix of its length and end bytes (the
// shard's map hashes the key properly); k is never empty.
func (c *pieceCache) shard(k string) int {
	h := uint(len(k))*0x9E3779B1 ^ uint(k[0])*0x85EB ^ uint(k[len(k)-1])*0xC2B3 ^ uint(k[len(k)/2])*0x27D5
	return int((h ^ h>>7) % cacheShards)
}

// get returns the cached ids of piece; the slice must not be modified.
func (c *pieceCache) get(piece string) ([]int32, bool) {
	s := &c.shards[c.shard(piece)]
	s.mu.RLock()
	v, ok := s.m[piece]
	s.mu.RUnlock()
	return v, ok
}

func (c *pieceCache) put(piece string, ids []int32) {
	s := &c.shards[c.shard(piece)]
	s.mu.Lock()
	if len(s.m) >= c.perShard {
		clear(s.m)
	}
	s.m[strings.Clone(piece)] = ids
	s.mu.Unlock()
}
