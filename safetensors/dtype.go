// Package safetensors reads and writes tensors in the safetensors format
// (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length, a JSON header naming each tensor's dtype, shape and byte range, and
// the raw little-endian tensor bytes.
//
// Files are memory-mapped read-only by Open; a model saved in the Hugging Face
// Hub layout (model.safetensors, or model-0000N-of-0000M.safetensors shards
// with model.safetensors.index.json) is read through one lookup API by OpenDir.
// Write and WriteSharded save tensors atomically (temporary file + rename).
package safetensors

import "fmt"

// DType names an element type as the safetensors header spells it.
type DType string

// The element types this package reads and writes.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	Bool DType = "BOOL"
)

// Size returns the number of bytes of one element, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case I8, U8, Bool:
		return 1
	}
	return 0
}

// Valid reports whether d is one of the dtypes this package supports.
func (d DType) Valid() bool { return d.Size() > 0 }

// numElements returns the product of shape, checking that every dimension is
// non-negative and that the product fits in an int64 byte count of size-byte elements.
func numElements(shape []int, size int) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d in shape %v", d, shape)
		}
		if d != 0 && n > (1<<62)/int64(d)/int64(max(size, 1)) {
			return 0, fmt.Errorf("shape %v is too large", shape)
		}
		n *= int64(d)
	}
	return n, nil
}
