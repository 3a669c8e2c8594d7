package compute

import (
	"bufio"
	"context"
	"encoding/csv"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/mmft-go/mmft/cudainfo"
)

// DeviceInfo describes one device of a backend.
type DeviceInfo struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	// MemoryBytes is the device's total memory (host RAM for the CPU), 0 when unknown.
	MemoryBytes int64 `json:"memory_bytes"`
	// Description is the backend's own description of the device.
	Description string `json:"description,omitempty"`
}

// Info is what `mmft env` reports about a backend.
type Info struct {
	Device         string `json:"device"`
	Backend        string `json:"backend"`
	Description    string `json:"description"`
	PluginPath     string `json:"plugin_path,omitempty"`
	PluginSource   string `json:"plugin_source,omitempty"`
	CPUParallelism int    `json:"cpu_parallelism,omitempty"`
	AutotuneCache  string `json:"xla_autotune_cache,omitempty"`
	// GPUSource (GPU backends) says where the GPUs' names and memory come
	// from, and why the CUDA driver API did not give them when it did not.
	GPUSource string            `json:"gpu_source,omitempty"`
	Devices   []DeviceInfo      `json:"devices"`
	Versions  map[string]string `json:"versions"`
}

// Info describes b: its devices (names and memory) and the versions of Go,
// GoMLX and go-xla it was built with.
func (b *Backend) Info() Info {
	info := Info{
		Device:         b.Device,
		Backend:        b.Name(),
		Description:    b.Description(),
		PluginPath:     b.PluginPath,
		PluginSource:   b.PluginSource,
		CPUParallelism: b.CPUParallelism,
		AutotuneCache:  b.AutotuneCache,
		Versions:       Versions(),
	}
	n := b.NumDevices()
	if b.Device == GPU {
		gpus, source := gpuRows()
		info.GPUSource = source
		for i := 0; i < n; i++ {
			d := DeviceInfo{Index: i, Description: b.DeviceDescription(backends.DeviceNum(i)), Name: "CUDA device"}
			if i < len(gpus) {
				d.Name, d.MemoryBytes = gpus[i].Name, gpus[i].MemoryBytes
			}
			info.Devices = append(info.Devices, d)
		}
		if len(gpus) > 0 && gpus[0].Driver != "" {
			info.Versions["nvidia_driver"] = gpus[0].Driver
		}
		if len(gpus) > 0 && gpus[0].CUDADriver != "" {
			info.Versions["cuda_driver"] = gpus[0].CUDADriver
		}
	} else {
		info.Devices = []DeviceInfo{{Index: 0, Name: cpuModel(), MemoryBytes: hostMemory(),
			Description: strconv.Itoa(runtime.NumCPU()) + " cores"}}
	}
	return info
}

// Versions returns the Go, GoMLX and go-xla versions of this binary.
func Versions() map[string]string {
	v := map[string]string{"go": runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			switch dep.Path {
			case "github.com/gomlx/gomlx":
				v["gomlx"] = dep.Version
			case "github.com/gomlx/go-xla":
				v["go-xla"] = dep.Version
			}
		}
		if bi.Main.Version != "" {
			v["mmft"] = bi.Main.Version
		}
	}
	return v
}

type gpuRow struct {
	Name        string
	MemoryBytes int64
	FreeBytes   int64
	Driver      string // nvidia-smi's driver version ("580.65.06")
	CUDADriver  string // the CUDA version the driver supports ("13.0")
}

// gpuRows gives the GPUs' names and memory from the CUDA driver API (a
// binary built with the cuda tag), else from nvidia-smi; source says which,
// and why the driver API gave nothing.
func gpuRows() (rows []gpuRow, source string) {
	rep, err := cudainfo.Query()
	if err == nil && len(rep.Devices) > 0 {
		for _, d := range rep.Devices {
			rows = append(rows, gpuRow{Name: d.Name, MemoryBytes: d.TotalBytes, FreeBytes: d.FreeBytes, CUDADriver: rep.DriverVersion})
		}
		return rows, "cuda driver API (gorgonia.org/cu)"
	}
	source = "nvidia-smi"
	if rows = nvidiaSMI(); rows == nil {
		source = "pjrt (nvidia-smi unavailable: memory unknown)"
	}
	if cudainfo.Built && err != nil {
		source += "; " + err.Error()
	}
	return rows, source
}

// nvidiaSMI asks nvidia-smi for the GPUs' names, memory and driver; nil when it is absent.
func nvidiaSMI() []gpuRow {
	path, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--query-gpu=name,memory.total,driver_version,memory.free", "--format=csv,noheader,nounits").Output()
	if err != nil {
		return nil
	}
	recs, err := csv.NewReader(strings.NewReader(string(out))).ReadAll()
	if err != nil {
		return nil
	}
	var rows []gpuRow
	for _, r := range recs {
		if len(r) < 4 {
			continue
		}
		mib, _ := strconv.ParseInt(strings.TrimSpace(r[1]), 10, 64)
		free, _ := strconv.ParseInt(strings.TrimSpace(r[3]), 10, 64)
		rows = append(rows, gpuRow{Name: strings.TrimSpace(r[0]), MemoryBytes: mib << 20, FreeBytes: free << 20, Driver: strings.TrimSpace(r[2])})
	}
	return rows
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH + " CPU"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH + " CPU"
}

func hostMemory() int64 { return meminfo("MemTotal:") }
