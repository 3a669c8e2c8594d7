//go:build cuda

package cudainfo

/*
#cgo LDFLAGS: -lcuda -ldl
#include <cuda.h>

int mmft_cuinit_status(void);

static const char *mmft_error_name(int r) {
	const char *s = 0;
	if (cuGetErrorName((CUresult)r, &s) != CUDA_SUCCESS) return 0;
	return s;
}

static const char *mmft_error_string(int r) {
	const char *s = 0;
	if (cuGetErrorString((CUresult)r, &s) != CUDA_SUCCESS) return 0;
	return s;
}
*/
import "C"

import (
	"fmt"
	"runtime"

	"gorgonia.org/cu"
)

// Built reports whether this binary asks the CUDA driver (the cuda build tag).
const Built = true

func query() (Report, error) {
	if err := initError(); err != nil {
		return Report{}, err
	}
	rep := Report{DriverVersion: FormatDriverVersion(cu.Version())}
	n, err := cu.NumDevices()
	if err != nil {
		return Report{}, fmt.Errorf("cudainfo: cuDeviceGetCount: %w", err)
	}
	// The driver's current context belongs to the OS thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for i := 0; i < n; i++ {
		d, err := device(i)
		if err != nil {
			return Report{}, err
		}
		rep.Devices = append(rep.Devices, d)
	}
	return rep, nil
}

// device reads GPU i's name and total memory, and its free memory through the
// GPU's primary context (shared with XLA's, so it costs nothing extra in a
// process that already computes on the GPU).
func device(i int) (Device, error) {
	dev, err := cu.GetDevice(i)
	if err != nil {
		return Device{}, fmt.Errorf("cudainfo: gpu %d: cuDeviceGet: %w", i, err)
	}
	d := Device{Index: i}
	if d.Name, err = dev.Name(); err != nil {
		return Device{}, fmt.Errorf("cudainfo: gpu %d: cuDeviceGetName: %w", i, err)
	}
	if d.TotalBytes, err = dev.TotalMem(); err != nil {
		return Device{}, fmt.Errorf("cudainfo: gpu %d (%s): cuDeviceTotalMem: %w", i, d.Name, err)
	}
	ctx, err := dev.RetainPrimaryCtx()
	if err != nil {
		return Device{}, fmt.Errorf("cudainfo: gpu %d (%s): cuDevicePrimaryCtxRetain: %w", i, d.Name, err)
	}
	defer dev.ReleasePrimaryCtx()
	if err := cu.SetCurrentContext(ctx); err != nil {
		return Device{}, fmt.Errorf("cudainfo: gpu %d (%s): cuCtxSetCurrent: %w", i, d.Name, err)
	}
	defer cu.SetCurrentContext(cu.CUContext{})
	free, total, err := cu.MemInfo()
	if err != nil {
		return Device{}, fmt.Errorf("cudainfo: gpu %d (%s): cuMemGetInfo: %w", i, d.Name, err)
	}
	d.FreeBytes, d.TotalBytes, d.UsedBytes = free, total, total-free
	return d, nil
}

// initError is the driver's answer to cu's cuInit, as cuinit.c kept it.
func initError() error {
	r := int(C.mmft_cuinit_status())
	switch r {
	case 0:
		return nil
	case -1:
		return fmt.Errorf("cudainfo: cuInit was never called (gorgonia.org/cu did not initialize)")
	}
	name, text := fmt.Sprintf("CUresult %d", r), ""
	if r == C.CUDA_ERROR_STUB_LIBRARY { // the stub cannot name its own errors
		name, text = "CUDA_ERROR_STUB_LIBRARY", ": libcuda.so.1 is CUDA's link stub, not the driver's library"
	}
	if s := C.mmft_error_name(C.int(r)); s != nil {
		name = C.GoString(s)
		if s := C.mmft_error_string(C.int(r)); s != nil {
			text = ": " + C.GoString(s)
		}
	}
	return fmt.Errorf("cudainfo: the CUDA driver did not start (cuInit: %s%s); check `nvidia-smi` and that the NVIDIA kernel module is loaded", name, text)
}
