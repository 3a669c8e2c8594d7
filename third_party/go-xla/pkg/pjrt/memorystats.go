package pjrt

/*
#include "pjrt_c_api.h"
#include "gen_api_calls.h"
#include "gen_new_struct.h"
*/
import "C"

// DeviceMemoryStats is the device allocator's state, from PJRT_Device_MemoryStats
// (mmft patch). A field whose value the plugin did not report is -1.
type DeviceMemoryStats struct {
	// BytesInUse is the memory held by live buffers and running programs.
	BytesInUse int64
	// PeakBytesInUse is BytesInUse's maximum since the client started
	// (compile-time autotuning allocations included, where the plugin
	// counts them).
	PeakBytesInUse int64
	// BytesLimit is the most the allocator may hand out.
	BytesLimit int64
	// PoolBytes and PeakPoolBytes are what the allocator holds from the
	// driver (at least BytesInUse for a pooling allocator such as BFC).
	PoolBytes, PeakPoolBytes int64
}

// MemoryStats returns the device's memory statistics (mmft patch).
func (d *Device) MemoryStats() (DeviceMemoryStats, error) {
	args := C.new_PJRT_Device_MemoryStats_Args()
	defer cFree(args)
	args.device = d.cDevice
	if err := toError(d.plugin, C.call_PJRT_Device_MemoryStats(d.plugin.api, args)); err != nil {
		return DeviceMemoryStats{}, err
	}
	opt := func(v C.int64_t, set C.bool) int64 {
		if !bool(set) {
			return -1
		}
		return int64(v)
	}
	return DeviceMemoryStats{
		BytesInUse:     int64(args.bytes_in_use),
		PeakBytesInUse: opt(args.peak_bytes_in_use, args.peak_bytes_in_use_is_set),
		BytesLimit:     opt(args.bytes_limit, args.bytes_limit_is_set),
		PoolBytes:      opt(args.pool_bytes, args.pool_bytes_is_set),
		PeakPoolBytes:  opt(args.peak_pool_bytes, args.peak_pool_bytes_is_set),
	}, nil
}
