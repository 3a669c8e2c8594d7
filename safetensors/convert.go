package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/x448/float16"
)

// hostLittleEndian reports whether this machine stores integers little-endian,
// as safetensors does, so that tensor bytes can be reinterpreted in place.
var hostLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// ToFloat32 converts a floating-point tensor (F32, F16, BF16 or F64) to float32.
func ToFloat32(t Info) ([]float32, error) {
	if err := checkLen(t); err != nil {
		return nil, err
	}
	d := t.Data
	switch t.DType {
	case F32:
		out := make([]float32, len(d)/4)
		if hostLittleEndian && len(out) > 0 {
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(d)), d)
			return out, nil
		}
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:]))
		}
		return out, nil
	case BF16:
		out := make([]float32, len(d)/2)
		if hostLittleEndian && len(out) > 0 && uintptr(unsafe.Pointer(&d[0]))%2 == 0 {
			bits := unsafe.Slice((*uint16)(unsafe.Pointer(&d[0])), len(out))
			for i, b := range bits {
				out[i] = math.Float32frombits(uint32(b) << 16)
			}
			return out, nil
		}
		for i := range out {
			out[i] = BF16ToFloat32(binary.LittleEndian.Uint16(d[2*i:]))
		}
		return out, nil
	case F16:
		out := make([]float32, len(d)/2)
		for i := range out {
			out[i] = float16.Frombits(binary.LittleEndian.Uint16(d[2*i:])).Float32()
		}
		return out, nil
	case F64:
		out := make([]float32, len(d)/8)
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(d[8*i:])))
		}
		return out, nil
	}
	return nil, fmt.Errorf("safetensors: tensor %q is %s, not a floating-point dtype (F32, F16, BF16, F64); use ToInt64 for integers", t.Name, t.DType)
}

// ToInt64 converts an integer or boolean tensor (I64, I32, I16, I8, U8, BOOL) to int64.
func ToInt64(t Info) ([]int64, error) {
	if err := checkLen(t); err != nil {
		return nil, err
	}
	d := t.Data
	n := len(d) / max(t.DType.Size(), 1)
	out := make([]int64, n)
	switch t.DType {
	case I64:
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(d[8*i:]))
		}
	case I32:
		for i := range out {
			out[i] = int64(int32(binary.LittleEndian.Uint32(d[4*i:])))
		}
	case I16:
		for i := range out {
			out[i] = int64(int16(binary.LittleEndian.Uint16(d[2*i:])))
		}
	case I8:
		for i := range out {
			out[i] = int64(int8(d[i]))
		}
	case U8, Bool:
		for i := range out {
			out[i] = int64(d[i])
		}
	default:
		return nil, fmt.Errorf("safetensors: tensor %q is %s, not an integer dtype (I64, I32, I16, I8, U8, BOOL); use ToFloat32 for floats", t.Name, t.DType)
	}
	return out, nil
}

// ToInt32 converts an integer or boolean tensor to int32; I64 values outside
// the int32 range give an error naming the tensor.
func ToInt32(t Info) ([]int32, error) {
	if t.DType == I32 {
		if err := checkLen(t); err != nil {
			return nil, err
		}
		out := make([]int32, len(t.Data)/4)
		for i := range out {
			out[i] = int32(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
		return out, nil
	}
	wide, err := ToInt64(t)
	if err != nil {
		return nil, err
	}
	out := make([]int32, len(wide))
	for i, v := range wide {
		if v < math.MinInt32 || v > math.MaxInt32 {
			return nil, fmt.Errorf("safetensors: tensor %q element %d = %d does not fit in int32", t.Name, i, v)
		}
		out[i] = int32(v)
	}
	return out, nil
}

// checkLen verifies that the tensor's byte length matches its dtype and shape.
func checkLen(t Info) error {
	size := t.DType.Size()
	if size == 0 {
		return fmt.Errorf("safetensors: tensor %q has unsupported dtype %q", t.Name, t.DType)
	}
	n, err := numElements(t.Shape, size)
	if err != nil {
		return fmt.Errorf("safetensors: tensor %q: %w", t.Name, err)
	}
	if int64(len(t.Data)) != n*int64(size) {
		return fmt.Errorf("safetensors: tensor %q: %s shape %v needs %d bytes, has %d", t.Name, t.DType, t.Shape, n*int64(size), len(t.Data))
	}
	return nil
}

// BF16ToFloat32 widens a bfloat16 bit pattern to float32 (exact).
func BF16ToFloat32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// Float32ToBF16 rounds f to the nearest bfloat16 (ties to even), as PyTorch
// does; NaN stays NaN.
func Float32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if f != f {
		return uint16(u>>16) | 0x40 // keep sign, force a quiet NaN
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// Float32ToF16 rounds f to the nearest IEEE half-precision value (ties to even).
func Float32ToF16(f float32) uint16 { return float16.Fromfloat32(f).Bits() }
