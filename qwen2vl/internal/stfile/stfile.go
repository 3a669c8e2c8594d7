// Package stfile is a small memory-mapped safetensors reader and writer used by
// qwen2vl until the project's safetensors package is available.
package stfile

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// Entry describes one tensor of a file.
type Entry struct {
	DType   string `json:"dtype"`
	Shape   []int  `json:"shape"`
	Offsets [2]int `json:"data_offsets"`
	file    *file
}

type file struct {
	path string
	data []byte // the whole mapped file
	base int    // start of the data section
}

// Set is one safetensors file or the shards of a sharded checkpoint.
type Set struct {
	entries map[string]*Entry
	files   []*file
}

// Open maps one .safetensors file, or every shard of a folder (model.safetensors,
// model.safetensors.index.json, or all *.safetensors files).
func Open(path string) (*Set, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	var paths []string
	if !st.IsDir() {
		paths = []string{path}
	} else {
		if idx, err := os.ReadFile(filepath.Join(path, "model.safetensors.index.json")); err == nil {
			var index struct {
				WeightMap map[string]string `json:"weight_map"`
			}
			if err := json.Unmarshal(idx, &index); err != nil {
				return nil, fmt.Errorf("%s: %w", filepath.Join(path, "model.safetensors.index.json"), err)
			}
			seen := map[string]bool{}
			for _, f := range index.WeightMap {
				if !seen[f] {
					seen[f] = true
					paths = append(paths, filepath.Join(path, f))
				}
			}
			sort.Strings(paths)
		} else if _, err := os.Stat(filepath.Join(path, "model.safetensors")); err == nil {
			paths = []string{filepath.Join(path, "model.safetensors")}
		} else if m, _ := filepath.Glob(filepath.Join(path, "*.safetensors")); len(m) > 0 {
			paths = m
		} else {
			return nil, fmt.Errorf("no .safetensors files in %s", path)
		}
	}
	s := &Set{entries: map[string]*Entry{}}
	for _, p := range paths {
		if err := s.add(p); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Set) add(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() < 8 {
		return fmt.Errorf("%s: too short to be a safetensors file", path)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mapping %s: %w", path, err)
	}
	fl := &file{path: path, data: data}
	s.files = append(s.files, fl)
	n := binary.LittleEndian.Uint64(data[:8])
	if n > uint64(len(data)-8) {
		return fmt.Errorf("%s: header length %d exceeds the file size", path, n)
	}
	fl.base = 8 + int(n)
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(data[8:fl.base], &hdr); err != nil {
		return fmt.Errorf("%s: bad header: %w", path, err)
	}
	for name, raw := range hdr {
		if name == "__metadata__" {
			continue
		}
		e := &Entry{file: fl}
		if err := json.Unmarshal(raw, e); err != nil {
			return fmt.Errorf("%s: tensor %s: %w", path, name, err)
		}
		if e.Offsets[0] < 0 || e.Offsets[1] < e.Offsets[0] || fl.base+e.Offsets[1] > len(data) {
			return fmt.Errorf("%s: tensor %s: data offsets %v outside the file", path, name, e.Offsets)
		}
		if _, dup := s.entries[name]; dup {
			return fmt.Errorf("%s: tensor %s appears in two shards", path, name)
		}
		s.entries[name] = e
	}
	return nil
}

// Names lists the tensor names in order.
func (s *Set) Names() []string {
	out := make([]string, 0, len(s.entries))
	for k := range s.entries {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Info returns a tensor's dtype and shape.
func (s *Set) Info(name string) (dtype string, shape []int, ok bool) {
	e, ok := s.entries[name]
	if !ok {
		return "", nil, false
	}
	return e.DType, e.Shape, true
}

// Raw returns the mapped bytes of a tensor (valid until Close).
func (s *Set) Raw(name string) (dtype string, shape []int, data []byte, err error) {
	e, ok := s.entries[name]
	if !ok {
		return "", nil, nil, fmt.Errorf("no tensor %q", name)
	}
	return e.DType, e.Shape, e.file.data[e.file.base+e.Offsets[0] : e.file.base+e.Offsets[1]], nil
}

// Close unmaps the files.
func (s *Set) Close() error {
	for _, f := range s.files {
		if f.data != nil {
			_ = syscall.Munmap(f.data)
			f.data = nil
		}
	}
	return nil
}

// Tensor is one tensor to write.
type Tensor struct {
	DType string
	Shape []int
	Data  []byte
}

// Write writes tensors to a safetensors file (atomically, via a temporary file).
func Write(path string, tensors map[string]Tensor, metadata map[string]string) error {
	names := make([]string, 0, len(tensors))
	for k := range tensors {
		names = append(names, k)
	}
	sort.Strings(names)
	hdr := map[string]any{}
	if len(metadata) > 0 {
		hdr["__metadata__"] = metadata
	}
	off := 0
	for _, n := range names {
		t := tensors[n]
		hdr[n] = map[string]any{"dtype": t.DType, "shape": t.Shape, "data_offsets": [2]int{off, off + len(t.Data)}}
		off += len(t.Data)
	}
	h, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(h)))
	_, err = f.Write(lenBuf[:])
	if err == nil {
		_, err = f.Write(h)
	}
	for _, n := range names {
		if err != nil {
			break
		}
		_, err = f.Write(tensors[n].Data)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}
