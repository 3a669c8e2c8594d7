package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"syscall"
)

// MaxHeaderBytes is the largest JSON header accepted, as in the reference Rust crate (100 MB).
const MaxHeaderBytes = 100_000_000

// metadataKey is the reserved header entry holding string-to-string metadata.
const metadataKey = "__metadata__"

// Info describes one tensor of a file. Data is the tensor's raw little-endian
// bytes; for a memory-mapped File it points into the mapping and must not be
// used (or modified) after the File is closed: copy it, or convert it with
// ToFloat32 / ToInt64 / ToInt32, to keep it.
type Info struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// NumElements returns the number of elements (the product of Shape).
func (i Info) NumElements() int {
	n := 1
	for _, d := range i.Shape {
		n *= d
	}
	return n
}

// Reader is what Open, OpenDir and OpenIndex return: tensors looked up by name.
type Reader interface {
	// Names returns every tensor name, sorted.
	Names() []string
	// Tensor returns the named tensor and whether it exists.
	Tensor(name string) (Info, bool)
	// Metadata returns the header's __metadata__ (of the first shard for a sharded model).
	Metadata() map[string]string
	// Close releases the files; Data of returned tensors is invalid afterwards.
	Close() error
}

// File is one safetensors file, memory-mapped (Open) or held in memory (Parse).
// Its methods other than Close may be called from several goroutines. The
// header is validated strictly (sizes, dtypes, in-range non-overlapping
// offsets) but, unlike the Rust crate, gaps between tensors are tolerated.
// A mapped file must not be truncated by another process while open.
type File struct {
	path     string
	mapped   []byte // the whole mapping, nil when not mapped
	tensors  map[string]Info
	names    []string
	metadata map[string]string
}

// Open memory-maps the safetensors file at path read-only and validates its header.
// Call Close to unmap it.
func Open(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("safetensors: %s: file is %d bytes, too short to hold the 8-byte header length (truncated or not a safetensors file)", path, size)
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("safetensors: %s: file of %d bytes is too large to map on this platform", path, size)
	}
	data, err := syscall.Mmap(int(fd.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("safetensors: mapping %s: %w", path, err)
	}
	f, err := parse(data)
	if err != nil {
		_ = syscall.Munmap(data)
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	f.path = path
	f.mapped = data
	return f, nil
}

// Parse reads a safetensors file held in memory. The returned File's tensor
// Data points into data.
func Parse(data []byte) (*File, error) {
	f, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return f, nil
}

// ReadFile reads the whole safetensors file at path into memory (no mapping).
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	f.path = path
	return f, nil
}

// headerEntry is one tensor's entry in the JSON header.
type headerEntry struct {
	DType       DType      `json:"dtype"`
	Shape       []int      `json:"shape"`
	DataOffsets *[2]uint64 `json:"data_offsets"`
}

// parse validates the header of a whole file's bytes and indexes its tensors.
func parse(data []byte) (*File, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("%d bytes is too short to hold the 8-byte header length (truncated or not a safetensors file)", len(data))
	}
	n := binary.LittleEndian.Uint64(data[:8])
	if n > MaxHeaderBytes {
		return nil, fmt.Errorf("header length %d exceeds the %d-byte limit (corrupt or not a safetensors file)", n, MaxHeaderBytes)
	}
	if n < 2 {
		return nil, fmt.Errorf("header length %d is too small for a JSON object (corrupt or not a safetensors file)", n)
	}
	if n > uint64(len(data)-8) {
		return nil, fmt.Errorf("header length %d runs past the end of the %d-byte file (truncated)", n, len(data))
	}
	header := data[8 : 8+n]
	body := data[8+n:]
	entries, metadata, err := parseHeader(header)
	if err != nil {
		return nil, err
	}
	f := &File{tensors: make(map[string]Info, len(entries)), metadata: metadata}
	type span struct {
		name       string
		begin, end uint64
	}
	spans := make([]span, 0, len(entries))
	for name, e := range entries {
		if !e.DType.Valid() {
			return nil, fmt.Errorf("tensor %q has unsupported dtype %q (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)", name, e.DType)
		}
		if e.Shape == nil {
			return nil, fmt.Errorf("tensor %q has no shape", name)
		}
		count, err := numElements(e.Shape, e.DType.Size())
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		if e.DataOffsets == nil {
			return nil, fmt.Errorf("tensor %q has no data_offsets", name)
		}
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		if begin > end {
			return nil, fmt.Errorf("tensor %q: data_offsets [%d, %d] are reversed", name, begin, end)
		}
		if end > uint64(len(body)) {
			return nil, fmt.Errorf("tensor %q: data_offsets [%d, %d] run past the %d data bytes of the file (truncated or corrupt)", name, begin, end, len(body))
		}
		if want := uint64(count) * uint64(e.DType.Size()); end-begin != want {
			return nil, fmt.Errorf("tensor %q: %s shape %v needs %d bytes but data_offsets [%d, %d] hold %d", name, e.DType, e.Shape, want, begin, end, end-begin)
		}
		spans = append(spans, span{name, begin, end})
		f.tensors[name] = Info{Name: name, DType: e.DType, Shape: e.Shape, Data: body[begin:end:end]}
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		return spans[i].end < spans[j].end
	})
	for i := 1; i < len(spans); i++ {
		a, b := spans[i-1], spans[i]
		if b.begin < a.end {
			return nil, fmt.Errorf("tensors %q [%d, %d] and %q [%d, %d] overlap (corrupt header)", a.name, a.begin, a.end, b.name, b.begin, b.end)
		}
	}
	f.names = make([]string, 0, len(f.tensors))
	for name := range f.tensors {
		f.names = append(f.names, name)
	}
	sort.Strings(f.names)
	return f, nil
}

// parseHeader decodes the JSON header, rejecting duplicate names and entries
// that are not objects of the expected form. Unknown fields in an entry are
// ignored.
func parseHeader(header []byte) (map[string]headerEntry, map[string]string, error) {
	trimmed := bytes.TrimRight(header, " \x00")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, nil, errors.New("header is not a JSON object (corrupt or not a safetensors file)")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if _, err := dec.Token(); err != nil {
		return nil, nil, fmt.Errorf("header JSON: %w", err)
	}
	entries := map[string]headerEntry{}
	var metadata map[string]string
	seenMeta := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("header JSON: %w", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, nil, fmt.Errorf("header JSON: unexpected %v where a tensor name belongs", tok)
		}
		if name == metadataKey {
			if seenMeta {
				return nil, nil, errors.New("header JSON: __metadata__ appears twice")
			}
			seenMeta = true
			if err := dec.Decode(&metadata); err != nil {
				return nil, nil, fmt.Errorf("header JSON: __metadata__ must map strings to strings: %w", err)
			}
			continue
		}
		if _, dup := entries[name]; dup {
			return nil, nil, fmt.Errorf("header JSON: tensor %q appears twice", name)
		}
		var e headerEntry
		if err := dec.Decode(&e); err != nil {
			return nil, nil, fmt.Errorf("header JSON: tensor %q: %w", name, err)
		}
		entries[name] = e
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, fmt.Errorf("header JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("header JSON: trailing data after the header object")
	}
	if metadata == nil {
		metadata = map[string]string{}
	}
	return entries, metadata, nil
}

// Names returns the tensor names, sorted.
func (f *File) Names() []string { return append([]string(nil), f.names...) }

// Tensor returns the named tensor and whether the file holds it.
func (f *File) Tensor(name string) (Info, bool) {
	t, ok := f.tensors[name]
	if ok {
		t.Shape = append([]int(nil), t.Shape...)
	}
	return t, ok
}

// Metadata returns a copy of the header's __metadata__ (empty when absent).
func (f *File) Metadata() map[string]string {
	m := make(map[string]string, len(f.metadata))
	for k, v := range f.metadata {
		m[k] = v
	}
	return m
}

// Path returns the path the file was opened from ("" for Parse).
func (f *File) Path() string { return f.path }

// Close unmaps a memory-mapped file; Data of its tensors must not be used
// afterwards. Closing twice, or closing a File from Parse, does nothing.
func (f *File) Close() error {
	if f.mapped == nil {
		return nil
	}
	err := syscall.Munmap(f.mapped)
	f.mapped = nil
	f.tensors = nil
	if err != nil {
		return fmt.Errorf("safetensors: unmapping %s: %w", f.path, err)
	}
	return nil
}
