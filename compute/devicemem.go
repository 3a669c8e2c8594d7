package compute

import (
	"reflect"
	"unsafe"

	"github.com/gomlx/go-xla/pkg/pjrt"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/xla"
)

// DeviceMemory returns the allocator statistics of device dev of an XLA
// backend (PJRT_Device_MemoryStats, through mmft's patched go-xla; GoMLX keeps
// the PJRT client in an unexported field, read here by reflection). ok is
// false on other backends, for a device the client does not have, or when the
// plugin does not report them. PeakBytesInUse is the figure comparable to
// PyTorch's max_memory_allocated: bytes held by buffers and running programs,
// without the CUDA context or the allocator's unused pool.
func DeviceMemory(b backends.Backend, dev backends.DeviceNum) (stats pjrt.DeviceMemoryStats, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	xb, isXLA := b.(*xla.Backend)
	if !isXLA || xb == nil {
		return stats, false
	}
	f := reflect.ValueOf(xb).Elem().FieldByName("client")
	client, _ := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface().(*pjrt.Client)
	if client == nil || int(dev) < 0 || int(dev) >= len(client.AddressableDevices()) {
		return stats, false
	}
	stats, err := client.AddressableDevices()[dev].MemoryStats()
	return stats, err == nil
}
