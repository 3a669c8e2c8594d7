package tokenizer

import (
	"hash/maphash"
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
	seed     maphash.Seed
	perShard int
	shards   [cacheShards]struct {
		mu sync.RWMutex
		m  map[string][]int32
	}
}

func newPieceCache(capacity int) *pieceCache {
	c := &pieceCache{seed: maphash.MakeSeed(), perShard: max(1, capacity/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[string][]int32)
	}
	return c
}

func (c *pieceCache) shard(k string) int {
	return int(maphash.String(c.seed, k) % cacheShards)
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
