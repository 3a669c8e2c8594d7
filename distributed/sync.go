package distributed

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/qwen2vl"
)

// SyncStats describes one adapter sync.
type SyncStats struct {
	// Version is the optimizer step the adapters come from.
	Version int `json:"version"`
	// Tensors and Bytes count what was copied (0 when the engine shares
	// the trainer's tensors).
	Tensors int   `json:"tensors"`
	Bytes   int64 `json:"bytes"`
	// Took is the wall time of the copy, waited for.
	Took time.Duration `json:"took_ns"`
	// Route is "shared" (colocated: nothing copied), "device" (device to
	// device) or "host" (through host memory: the backend could not copy
	// between its devices).
	Route string `json:"route"`
}

// String formats the stats for logs.
func (s SyncStats) String() string {
	return fmt.Sprintf("adapter sync v%d: %d tensors, %d bytes, %v, %s", s.Version, s.Tensors, s.Bytes, s.Took.Round(time.Microsecond), s.Route)
}

// Syncer copies the trainer's adapter tensors (LoRA A and B only, never the
// base weights) to a rollout GPU after each optimizer step.
type Syncer struct {
	// Backend holds both devices.
	Backend backends.Backend
	// To is the rollout GPU.
	To backends.DeviceNum
	// Log, when set, is told about every sync.
	Log func(SyncStats)
	// Copy makes Push copy tensors that already are on To instead of
	// sharing them: the split layout always gives the engine its own copy,
	// so the trainer may donate (overwrite) its tensors while the engine
	// still generates with an older version, even when both share a device.
	Copy bool
}

// Push returns the adapter tensors ts (on their training device) as tensors
// on s.To: the same tensors when they already are there (colocated, unless
// Copy is set), else
// copies made device to device where the backend can (XLA: PJRT buffer
// copies), through the host otherwise. It waits for the copies (so Took is
// the real cost) and logs the stats.
func (s Syncer) Push(version int, ts []*tensors.Tensor) (out []*tensors.Tensor, st SyncStats, err error) {
	st = SyncStats{Version: version, Route: "shared"}
	t0 := time.Now()
	defer func() {
		if rec := recover(); rec != nil {
			err = fmt.Errorf("distributed: adapter sync v%d: %v", version, rec)
		}
	}()
	out = make([]*tensors.Tensor, len(ts))
	for i, t := range ts {
		if t == nil {
			return nil, st, fmt.Errorf("distributed: adapter sync v%d: tensor %d is nil", version, i)
		}
		if !s.Copy && t.IsOnDevice(s.To) {
			out[i] = t
			continue
		}
		c, route, err := copyTo(s.Backend, t, s.To)
		if err != nil {
			return nil, st, fmt.Errorf("distributed: adapter sync v%d: tensor %d %s to device %d: %w", version, i, t.Shape(), s.To, err)
		}
		out[i] = c
		st.Route = route
		st.Tensors++
		st.Bytes += int64(t.Shape().Memory())
	}
	st.Took = time.Since(t0)
	if s.Log != nil {
		s.Log(st)
	}
	return out, st, nil
}

// copyTo copies t to device dst: device to device when t is on a device of
// backend and the backend can copy between devices, through the host
// otherwise. The copy is complete when it returns.
func copyTo(backend backends.Backend, t *tensors.Tensor, dst backends.DeviceNum) (*tensors.Tensor, string, error) {
	if src, err := t.Device(); err == nil && t.IsOnAnyDevice() {
		buf, err := t.Buffer(backend, src)
		if err == nil {
			if nb, err := backend.BufferCopyToDevice(buf, dst); err == nil {
				c, err := tensors.FromBuffer(backend, nb)
				if err != nil {
					return nil, "", err
				}
				return c, "device", nil
			}
		}
	}
	c, err := t.OnDeviceClone(backend, dst)
	if err != nil {
		return nil, "", err
	}
	return c, "host", nil
}

// Gate keeps rollouts on-policy: the engine may only generate with the
// adapter of the latest optimizer step, unless MaxLag allows older ones
// (an explicit off-policy option). It is safe for concurrent use.
type Gate struct {
	mu      sync.Mutex
	trained int // optimizer steps done
	// MaxLag is how many optimizer steps the engine's adapter may be behind
	// (0: on-policy, the default).
	MaxLag int
}

// Stepped records that the trainer finished optimizer step version.
func (g *Gate) Stepped(version int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.trained = max(g.trained, version)
}

// Check returns an error when a rollout with the adapter of step version
// would be staler than MaxLag allows.
func (g *Gate) Check(version int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if lag := g.trained - version; lag > g.MaxLag {
		return fmt.Errorf("distributed: rollout with the adapter of step %d, but the trainer is at step %d: %d steps stale, %d allowed (sync the adapter first, or allow off-policy lag explicitly)",
			version, g.trained, lag, g.MaxLag)
	}
	return nil
}

// PushLoRA pushes an adapter's A and B tensors (modules in sorted order)
// and returns the adapter the rollout engine uses (Engine.SetAdapter):
// the same module scales over the pushed tensors. Colocated, it is l's
// tensors themselves.
func (s Syncer) PushLoRA(version int, l *qwen2vl.LoRA) (*qwen2vl.LoRA, SyncStats, error) {
	if l == nil {
		return nil, SyncStats{}, fmt.Errorf("distributed: adapter sync v%d: no adapter", version)
	}
	names := slices.Sorted(maps.Keys(l.Modules))
	ts := make([]*tensors.Tensor, 0, 2*len(names))
	for _, n := range names {
		ts = append(ts, l.Modules[n].A, l.Modules[n].B)
	}
	out, st, err := s.Push(version, ts)
	if err != nil {
		return nil, st, err
	}
	synced := &qwen2vl.LoRA{Modules: make(map[string]qwen2vl.LoRAModule, len(names))}
	for i, n := range names {
		synced.Modules[n] = qwen2vl.LoRAModule{A: out[2*i], B: out[2*i+1], Scale: l.Modules[n].Scale}
	}
	return synced, st, nil
}
