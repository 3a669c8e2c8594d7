// Package cudainfo reports the NVIDIA GPUs as the CUDA driver sees them: names,
// memory used, free and total per GPU, and the CUDA version the driver supports.
//
// It asks the CUDA driver API through gorgonia.org/cu, which is compiled in only
// with the `cuda` build tag (it needs CUDA's cuda.h to build and the driver's
// libcuda.so.1 to run). Without the tag, Query returns ErrNotBuilt and callers
// use what the PJRT backend and nvidia-smi report instead.
package cudainfo

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotBuilt is returned by Query in a binary built without the cuda tag.
var ErrNotBuilt = errors.New("cudainfo: not built in (build mmft with -tags cuda where CUDA's headers are installed)")

// Report is what the CUDA driver says about the machine.
type Report struct {
	// DriverVersion is the CUDA version the installed driver supports ("13.0").
	DriverVersion string `json:"driver_version"`
	// Devices lists the GPUs in CUDA's order.
	Devices []Device `json:"devices"`
}

// Device is one GPU and its memory in bytes. Used is Total - Free: it
// counts every process's allocations on the GPU, as nvidia-smi does.
type Device struct {
	Index      int    `json:"index"`
	Name       string `json:"name"`
	UsedBytes  int64  `json:"used_bytes"`
	FreeBytes  int64  `json:"free_bytes"`
	TotalBytes int64  `json:"total_bytes"`
}

// Query asks the CUDA driver for every GPU's name and memory. It fails with
// ErrNotBuilt without the cuda tag, and with an error naming the driver's
// answer when the driver does not start (no GPU, no kernel module, only the
// stub library); it never panics.
func Query() (rep Report, err error) {
	defer func() {
		if r := recover(); r != nil {
			rep, err = Report{}, fmt.Errorf("cudainfo: the CUDA driver API failed: %v", r)
		}
	}()
	return query()
}

// FormatDriverVersion writes cuDriverGetVersion's number (13000) as "13.0".
func FormatDriverVersion(v int) string {
	if v <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10)
}

// String renders the report for a terminal, one line per GPU.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "CUDA driver %s, %d GPU(s)\n", r.DriverVersion, len(r.Devices))
	for _, d := range r.Devices {
		fmt.Fprintf(&b, "gpu %d: %s\n", d.Index, d.MemoryLine())
	}
	return b.String()
}

// MemoryLine is the device's name and memory in one line.
func (d Device) MemoryLine() string {
	return fmt.Sprintf("%s: used %s, free %s of %s", d.Name, gib(d.UsedBytes), gib(d.FreeBytes), gib(d.TotalBytes))
}

func gib(n int64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }
