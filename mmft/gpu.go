package mmft

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/cudainfo"
)

// deviceStatus reports be's devices: the GPUs' names and memory (used, free,
// total) from the CUDA driver API in a binary built with the cuda tag, else
// from nvidia-smi, else PJRT's device list; the host's memory for the CPU
// backend.
func deviceStatus(be *compute.Backend) DeviceStatus {
	info := be.Info()
	st := DeviceStatus{Device: be.Device, Devices: []DeviceMem{}}
	if be.Device != compute.CPU {
		var gpus []DeviceMem
		rep, err := cudainfo.Query()
		if err == nil {
			st.Source = "cuda driver " + rep.DriverVersion + " (gorgonia.org/cu)"
			for _, d := range rep.Devices {
				gpus = append(gpus, DeviceMem{Index: d.Index, Name: d.Name, UsedBytes: d.UsedBytes, FreeBytes: d.FreeBytes, TotalBytes: d.TotalBytes})
			}
		} else {
			st.Source = "nvidia-smi"
			gpus = nvidiaSMIMemory()
		}
		for _, d := range info.Devices {
			m := DeviceMem{Index: d.Index, Name: d.Name, TotalBytes: d.MemoryBytes}
			if d.Index < len(gpus) {
				g := gpus[d.Index]
				m.Name, m.UsedBytes, m.FreeBytes, m.TotalBytes = g.Name, g.UsedBytes, g.FreeBytes, g.TotalBytes
			} else {
				st.Source = "pjrt (nvidia-smi unavailable: memory in use unknown)"
			}
			st.Devices = append(st.Devices, m)
		}
		if cudainfo.Built && err != nil {
			st.Source += "; " + err.Error()
		}
		return st
	}
	st.Source = "host (/proc/meminfo)"
	for _, d := range info.Devices {
		free := compute.HostAvailableMemory()
		used := d.MemoryBytes - free
		if free <= 0 || used < 0 {
			used, free = 0, 0
		}
		st.Devices = append(st.Devices, DeviceMem{Index: d.Index, Name: d.Name, TotalBytes: d.MemoryBytes, UsedBytes: used, FreeBytes: free})
	}
	return st
}

// nvidiaSMIMemory asks nvidia-smi for each GPU's name and memory (nil when
// it is absent or fails).
func nvidiaSMIMemory() []DeviceMem {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nvidia-smi", "--query-gpu=index,name,memory.used,memory.free,memory.total",
		"--format=csv,noheader,nounits").Output()
	if err != nil {
		return nil
	}
	return parseNvidiaSMI(out)
}

// parseNvidiaSMI parses nvidia-smi's CSV (MiB figures) into devices.
func parseNvidiaSMI(out []byte) []DeviceMem {
	var ds []DeviceMem
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		f := strings.Split(string(line), ",")
		if len(f) != 5 {
			continue
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		idx, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		mib := func(s string) int64 {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return 0
			}
			return int64(v * (1 << 20))
		}
		ds = append(ds, DeviceMem{Index: idx, Name: f[1], UsedBytes: mib(f[2]), FreeBytes: mib(f[3]), TotalBytes: mib(f[4])})
	}
	return ds
}
