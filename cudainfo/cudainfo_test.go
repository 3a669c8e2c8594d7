package cudainfo

import (
	"errors"
	"strings"
	"testing"
)

func TestFormatDriverVersion(t *testing.T) {
	for v, want := range map[int]string{13000: "13.0", 12040: "12.4", 11080: "11.8", 0: "unknown", -1: "unknown"} {
		if got := FormatDriverVersion(v); got != want {
			t.Errorf("FormatDriverVersion(%d) = %q, want %q", v, got, want)
		}
	}
}

// TestQuery runs in both builds: without the cuda tag Query says it is not
// built in; with it, it either reports the GPUs with consistent figures or,
// on a machine without a usable GPU (CI: the stub libcuda), returns the
// driver's answer to cuInit instead of exiting or panicking.
func TestQuery(t *testing.T) {
	rep, err := Query()
	if !Built {
		if !errors.Is(err, ErrNotBuilt) {
			t.Fatalf("Query without the cuda tag: %v, want ErrNotBuilt", err)
		}
		return
	}
	if err != nil {
		if !strings.Contains(err.Error(), "cuInit") {
			t.Fatalf("Query without a GPU: %v: the error does not name cuInit", err)
		}
		t.Logf("no usable GPU: %v", err)
		return
	}
	if len(rep.Devices) == 0 || rep.DriverVersion == "unknown" {
		t.Fatalf("Query: %+v: no devices or no driver version", rep)
	}
	for _, d := range rep.Devices {
		if d.Name == "" || d.TotalBytes <= 0 || d.FreeBytes > d.TotalBytes || d.UsedBytes != d.TotalBytes-d.FreeBytes {
			t.Errorf("gpu %d: inconsistent %+v", d.Index, d)
		}
	}
	t.Log(rep.String())
}
