package compute

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// ErrTooBig is returned (wrapped) by CheckMemory when work would need more
// memory than is available.
var ErrTooBig = errors.New("not enough memory")

// HostAvailableMemory returns the bytes of host memory a new allocation can
// take without swapping: /proc/meminfo's MemAvailable, lowered to what the
// process's cgroup (v2) still allows; 0 when unknown.
func HostAvailableMemory() int64 {
	avail := meminfo("MemAvailable:")
	if limit, ok := readInt("/sys/fs/cgroup/memory.max"); ok {
		if used, ok := readInt("/sys/fs/cgroup/memory.current"); ok && limit > used {
			if avail == 0 || limit-used < avail {
				avail = limit - used
			}
		}
	}
	return avail
}

// AvailableMemory returns the bytes b's device can still allocate: the host's
// available memory on the CPU, the free memory of device 0 on the GPU (from
// the CUDA driver API in a cuda build, else nvidia-smi); 0 when unknown.
func (b *Backend) AvailableMemory() int64 {
	if b.Device == GPU {
		if gpus, _ := gpuRows(); len(gpus) > 0 {
			return gpus[0].FreeBytes
		}
		return 0
	}
	return HostAvailableMemory()
}

// CheckMemory returns an error wrapping ErrTooBig when need bytes exceed
// avail bytes; what names the work ("the forward pass of batch 1 × 20000
// tokens"). An unknown avail (0) passes. A need of -1 means the estimate
// overflowed int64, which is always too big.
func CheckMemory(what string, need, avail int64) error {
	if need >= 0 && (avail <= 0 || need <= avail) {
		return nil
	}
	needS := "more than 8 EiB"
	if need >= 0 {
		needS = "about " + FormatBytes(need)
	}
	return fmt.Errorf("%w: %s would take %s, and %s is available", ErrTooBig, what, needS, FormatBytes(avail))
}

// MulBytes multiplies sizes (elements, bytes per element, ...) into a byte
// count, returning -1 when the product overflows int64 or a factor is negative.
func MulBytes(factors ...int64) int64 {
	p := int64(1)
	for _, f := range factors {
		if f < 0 {
			return -1
		}
		if f != 0 && p > math.MaxInt64/f {
			return -1
		}
		p *= f
	}
	return p
}

// AddBytes adds byte counts from MulBytes, keeping -1 (overflow) sticky.
func AddBytes(terms ...int64) int64 {
	s := int64(0)
	for _, t := range terms {
		if t < 0 || s > math.MaxInt64-t {
			return -1
		}
		s += t
	}
	return s
}

// FormatBytes writes n bytes as "1.5 GiB", "320 MiB", "12 KiB" or "512 B".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	f, i := float64(n), -1
	for f >= unit && i < 5 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGTPE"[i])
}

func meminfo(key string) int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == key {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// readInt reads a file holding one integer ("max" and errors give false).
func readInt(path string) (int64, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return n, err == nil
}
