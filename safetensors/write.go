package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/mmft-go/mmft/internal/atomicfile"
)

// NamedTensor is a tensor to write: its name, dtype, shape and raw little-endian bytes.
type NamedTensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// FromFloat32 builds an F32 tensor from values laid out row-major in shape.
func FromFloat32(name string, shape []int, values []float32) NamedTensor {
	b := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return NamedTensor{Name: name, DType: F32, Shape: append([]int(nil), shape...), Data: b}
}

// FromFloat32AsBF16 builds a BF16 tensor by rounding values to bfloat16 (ties to even).
func FromFloat32AsBF16(name string, shape []int, values []float32) NamedTensor {
	b := make([]byte, 2*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint16(b[2*i:], Float32ToBF16(v))
	}
	return NamedTensor{Name: name, DType: BF16, Shape: append([]int(nil), shape...), Data: b}
}

// FromFloat32AsF16 builds an F16 tensor by rounding values to half precision.
func FromFloat32AsF16(name string, shape []int, values []float32) NamedTensor {
	b := make([]byte, 2*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint16(b[2*i:], Float32ToF16(v))
	}
	return NamedTensor{Name: name, DType: F16, Shape: append([]int(nil), shape...), Data: b}
}

// FromBF16 builds a BF16 tensor from bfloat16 bit patterns.
func FromBF16(name string, shape []int, bits []uint16) NamedTensor {
	b := make([]byte, 2*len(bits))
	for i, v := range bits {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	return NamedTensor{Name: name, DType: BF16, Shape: append([]int(nil), shape...), Data: b}
}

// FromInt64 builds an I64 tensor.
func FromInt64(name string, shape []int, values []int64) NamedTensor {
	b := make([]byte, 8*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
	}
	return NamedTensor{Name: name, DType: I64, Shape: append([]int(nil), shape...), Data: b}
}

// FromInt32 builds an I32 tensor.
func FromInt32(name string, shape []int, values []int32) NamedTensor {
	b := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	return NamedTensor{Name: name, DType: I32, Shape: append([]int(nil), shape...), Data: b}
}

// ByteSize returns the number of data bytes of the tensor.
func (t NamedTensor) ByteSize() int64 { return int64(len(t.Data)) }

// validate checks one tensor before writing.
func (t NamedTensor) validate() error {
	if t.Name == "" {
		return errors.New("a tensor has an empty name")
	}
	if t.Name == metadataKey {
		return fmt.Errorf("tensor name %q is reserved for metadata; rename the tensor", metadataKey)
	}
	if !t.DType.Valid() {
		return fmt.Errorf("tensor %q has unsupported dtype %q (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)", t.Name, t.DType)
	}
	return checkLen(Info{Name: t.Name, DType: t.DType, Shape: t.Shape, Data: t.Data})
}

// Encode returns the bytes of a safetensors file holding tensors and metadata.
// Tensors are laid out by decreasing element size, then name, so that every
// tensor is aligned to its element size; the header is padded with spaces to a
// multiple of 8 bytes, as the reference Rust crate does.
func Encode(tensors []NamedTensor, metadata map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	if err := encode(&buf, tensors, metadata); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// encode writes a safetensors file to w.
func encode(w interface{ Write([]byte) (int, error) }, tensors []NamedTensor, metadata map[string]string) error {
	header, order, err := buildHeader(tensors, metadata)
	if err != nil {
		return err
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(header)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(header); err != nil {
		return err
	}
	for _, t := range order {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

// buildHeader validates tensors and returns the padded JSON header and the
// tensors in data order.
func buildHeader(tensors []NamedTensor, metadata map[string]string) ([]byte, []NamedTensor, error) {
	seen := make(map[string]bool, len(tensors))
	for _, t := range tensors {
		if err := t.validate(); err != nil {
			return nil, nil, fmt.Errorf("safetensors: %w", err)
		}
		if seen[t.Name] {
			return nil, nil, fmt.Errorf("safetensors: tensor %q is given twice", t.Name)
		}
		seen[t.Name] = true
	}
	order := append([]NamedTensor(nil), tensors...)
	sort.SliceStable(order, func(i, j int) bool {
		si, sj := order[i].DType.Size(), order[j].DType.Size()
		if si != sj {
			return si > sj
		}
		return order[i].Name < order[j].Name
	})
	var h bytes.Buffer
	h.WriteByte('{')
	first := true
	writeKey := func(k string) {
		if !first {
			h.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(k)
		h.Write(kb)
		h.WriteByte(':')
	}
	if len(metadata) > 0 {
		writeKey(metadataKey)
		mb, err := json.Marshal(metadata)
		if err != nil {
			return nil, nil, fmt.Errorf("safetensors: metadata: %w", err)
		}
		h.Write(mb)
	}
	var off uint64
	for _, t := range order {
		writeKey(t.Name)
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		eb, err := json.Marshal(headerEntry{DType: t.DType, Shape: shape, DataOffsets: &[2]uint64{off, off + uint64(len(t.Data))}})
		if err != nil {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: %w", t.Name, err)
		}
		h.Write(eb)
		off += uint64(len(t.Data))
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	if h.Len() > MaxHeaderBytes {
		return nil, nil, fmt.Errorf("safetensors: header of %d bytes exceeds the %d-byte limit (too many tensors or too much metadata)", h.Len(), MaxHeaderBytes)
	}
	return h.Bytes(), order, nil
}

// Write saves tensors and metadata (which may be nil) as one safetensors file at
// path. It writes a temporary file in the same folder and renames it over path,
// so a failure never leaves a partial file at path.
func Write(path string, tensors []NamedTensor, metadata map[string]string) error {
	if _, _, err := buildHeader(tensors, metadata); err != nil {
		return err
	}
	return writeAtomic(path, func(w io.Writer) error { return encode(w, tensors, metadata) })
}

// writeAtomic writes path through a temporary file in the same folder, synced and renamed.
func writeAtomic(path string, fill func(w io.Writer) error) error {
	if err := atomicfile.Write(path, fill); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// IndexFile is the name of the index of a sharded model in the Hub layout.
const IndexFile = "model.safetensors.index.json"

// SingleFile is the name of an unsharded model's weights in the Hub layout.
const SingleFile = "model.safetensors"

// Index is the JSON content of model.safetensors.index.json.
type Index struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// shardPattern matches the shard file names WriteSharded produces.
var shardPattern = regexp.MustCompile(`^model-\d{5}-of-\d{5}\.safetensors$`)

// WriteSharded saves tensors in the Hugging Face Hub layout in dir (created if
// needed): when they fit in maxShardBytes (<= 0 means no limit) as one
// model.safetensors, otherwise as model-0000N-of-0000M.safetensors shards of at
// most maxShardBytes data bytes each (a single larger tensor gets a shard of
// its own) plus model.safetensors.index.json. Tensors keep their given order
// across shards. metadata is written into every shard. Shard files and an index
// left in dir by an earlier save with a different layout are removed after the
// new files are in place. It returns the paths of the files written.
func WriteSharded(dir string, tensors []NamedTensor, metadata map[string]string, maxShardBytes int64) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	seen := map[string]bool{}
	var total int64
	for _, t := range tensors {
		if err := t.validate(); err != nil {
			return nil, fmt.Errorf("safetensors: %w", err)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("safetensors: tensor %q is given twice", t.Name)
		}
		seen[t.Name] = true
		total += t.ByteSize()
	}
	var shards [][]NamedTensor
	var cur []NamedTensor
	var curBytes int64
	for _, t := range tensors {
		if maxShardBytes > 0 && len(cur) > 0 && curBytes+t.ByteSize() > maxShardBytes {
			shards = append(shards, cur)
			cur, curBytes = nil, 0
		}
		cur = append(cur, t)
		curBytes += t.ByteSize()
	}
	if len(cur) > 0 || len(shards) == 0 {
		shards = append(shards, cur)
	}
	var written []string
	if len(shards) == 1 {
		p := filepath.Join(dir, SingleFile)
		if err := Write(p, shards[0], metadata); err != nil {
			return nil, err
		}
		written = append(written, p)
		if err := removeStale(dir, written, true); err != nil {
			return written, err
		}
		return written, nil
	}
	idx := Index{Metadata: map[string]any{"total_size": total}, WeightMap: map[string]string{}}
	for i, s := range shards {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		p := filepath.Join(dir, name)
		if err := Write(p, s, metadata); err != nil {
			return written, err
		}
		written = append(written, p)
		for _, t := range s {
			idx.WeightMap[t.Name] = name
		}
	}
	ib, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return written, fmt.Errorf("safetensors: index: %w", err)
	}
	ip := filepath.Join(dir, IndexFile)
	if err := writeAtomic(ip, func(w io.Writer) error {
		_, err := w.Write(append(ib, '\n'))
		return err
	}); err != nil {
		return written, err
	}
	written = append(written, ip)
	if err := removeStale(dir, written, false); err != nil {
		return written, err
	}
	return written, nil
}

// removeStale deletes the files in dir that belong to an earlier save in the
// other layout or with another shard count and are not among keep.
func removeStale(dir string, keep []string, single bool) error {
	keepSet := map[string]bool{}
	for _, k := range keep {
		keepSet[filepath.Base(k)] = true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		stale := shardPattern.MatchString(name) || (single && name == IndexFile) || (!single && name == SingleFile)
		if !stale || keepSet[name] || e.IsDir() {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("safetensors: removing stale %s: %w", name, err)
		}
	}
	return nil
}
