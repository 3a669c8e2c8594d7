package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Sharded is a model's weights spread over one or more safetensors files,
// looked up by tensor name as if they were one file.
type Sharded struct {
	files []*File
	where map[string]*File
	names []string
}

// OpenDir opens the weights of a model folder in the Hub layout: the shards
// listed by model.safetensors.index.json when present, otherwise the lone
// model.safetensors.
func OpenDir(dir string) (*Sharded, error) {
	ip := filepath.Join(dir, IndexFile)
	if _, err := os.Stat(ip); err == nil {
		return OpenIndex(ip)
	}
	sp := filepath.Join(dir, SingleFile)
	if _, err := os.Stat(sp); err != nil {
		return nil, fmt.Errorf("safetensors: %s holds neither %s nor %s; point at a model folder saved in the Hugging Face layout", dir, IndexFile, SingleFile)
	}
	f, err := Open(sp)
	if err != nil {
		return nil, err
	}
	return newSharded([]*File{f}, nil), nil
}

// OpenIndex opens every shard named by the weight_map of an index file
// (model.safetensors.index.json), resolving shard names beside the index, and
// checks that each shard holds the tensors the index assigns to it.
func OpenIndex(path string) (*Sharded, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	var idx Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("safetensors: index %s is not valid JSON: %w", path, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("safetensors: index %s has no weight_map entries", path)
	}
	dir := filepath.Dir(path)
	byShard := map[string]*File{}
	var files []*File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	shardNames := make([]string, 0)
	for _, shard := range idx.WeightMap {
		if _, ok := byShard[shard]; !ok {
			byShard[shard] = nil
			shardNames = append(shardNames, shard)
		}
	}
	sort.Strings(shardNames)
	for _, shard := range shardNames {
		if shard == "" || filepath.IsAbs(shard) || filepath.Base(shard) != shard {
			closeAll()
			return nil, fmt.Errorf("safetensors: index %s names shard %q, which is not a plain file name beside the index", path, shard)
		}
		f, err := Open(filepath.Join(dir, shard))
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("safetensors: shard listed in %s: %w", path, err)
		}
		byShard[shard] = f
		files = append(files, f)
	}
	where := make(map[string]*File, len(idx.WeightMap))
	for name, shard := range idx.WeightMap {
		f := byShard[shard]
		if _, ok := f.tensors[name]; !ok {
			closeAll()
			return nil, fmt.Errorf("safetensors: index %s puts tensor %q in %s, which does not hold it", path, name, shard)
		}
		where[name] = f
	}
	return newSharded(files, where), nil
}

// newSharded indexes files; where==nil means every tensor of every file.
func newSharded(files []*File, where map[string]*File) *Sharded {
	if where == nil {
		where = map[string]*File{}
		for _, f := range files {
			for _, n := range f.names {
				where[n] = f
			}
		}
	}
	s := &Sharded{files: files, where: where}
	for n := range where {
		s.names = append(s.names, n)
	}
	sort.Strings(s.names)
	return s
}

// Names returns every tensor name over all shards, sorted.
func (s *Sharded) Names() []string { return append([]string(nil), s.names...) }

// Tensor returns the named tensor from whichever shard holds it.
func (s *Sharded) Tensor(name string) (Info, bool) {
	f, ok := s.where[name]
	if !ok {
		return Info{}, false
	}
	return f.Tensor(name)
}

// Metadata returns the __metadata__ of the first shard.
func (s *Sharded) Metadata() map[string]string {
	if len(s.files) == 0 {
		return map[string]string{}
	}
	return s.files[0].Metadata()
}

// Files returns the paths of the shard files, in order.
func (s *Sharded) Files() []string {
	out := make([]string, len(s.files))
	for i, f := range s.files {
		out[i] = f.path
	}
	return out
}

// Close unmaps every shard.
func (s *Sharded) Close() error {
	var errs []error
	for _, f := range s.files {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var (
	_ Reader = (*File)(nil)
	_ Reader = (*Sharded)(nil)
)
