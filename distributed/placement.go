package distributed

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/execution"
)

// CanShard reports whether backend compiles programs over a device mesh
// (GoMLX AutoSharding, i.e. XLA Shardy over PJRT). GoMLX's pure-Go CPU
// backend cannot: it has one device and no AutoSharding.
func CanShard(backend backends.Backend) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	b := backend.Builder("mmft.can_shard")
	return b.DistributedAutoSharding(backends.Mesh{Name: "probe", AxesSizes: []int{1}, AxesNames: []string{Axis}}) == nil
}

// PlaceTraining returns where the trainer's programs run for layout l on
// backend: the FSDP mesh over l.Train (TrainPlacement) when the backend can
// shard, a mesh of one included; on a backend that cannot (the pure-Go CPU
// backend), the one training device without a mesh, and an error naming
// the backend when l trains on several devices.
func PlaceTraining(backend backends.Backend, l Layout, f FSDP) (execution.Placement, error) {
	if len(l.Train) == 0 {
		return execution.Placement{}, fmt.Errorf("distributed: layout has no training GPU")
	}
	n := backend.NumDevices()
	for _, g := range append(append([]int(nil), l.Train...), l.Rollout...) {
		if g < 0 || g >= n {
			return execution.Placement{}, fmt.Errorf("distributed: GPU %d of layout %v: backend %s has %d device(s)", g, l, backend.Name(), n)
		}
	}
	if CanShard(backend) {
		return TrainPlacement(l, f)
	}
	if len(l.Train) > 1 {
		return execution.Placement{}, fmt.Errorf("distributed: backend %s cannot shard a program over %d training devices %v (no AutoSharding): use --device gpu, or train on one device",
			backend.Name(), len(l.Train), l.Train)
	}
	return execution.Placement{Device: backends.DeviceNum(l.Train[0])}, nil
}

// TrainWeights lays the base weights ts (in the model's ParamNames order,
// on the engine's device) out for the trainer's placement, once per run:
//
//   - no mesh: the tensors themselves when they already are on the
//     training device (one copy of the weights for engine and trainer),
//     else copies made there (device to device where the backend can);
//   - a mesh of one: the same, each wrapped as its own shard;
//   - a larger mesh: split by FSDP's Param decisions (on the host, once);
//     each shard reaches its device at the first step and stays there.
//
// The engine's tensors are never moved: GoMLX moves a tensor that a program
// on another device reads, which would pull the engine's weights off the
// rollout GPU. It returns the runner's arguments and the bytes copied.
func TrainWeights(backend backends.Backend, place execution.Placement, ts []*tensors.Tensor) ([]any, int64, error) {
	out := make([]any, len(ts))
	dev := place.Device
	var copied int64
	local := func() ([]*tensors.Tensor, error) { // ts on dev, copied when elsewhere
		res := make([]*tensors.Tensor, len(ts))
		for i, t := range ts {
			if t == nil {
				return nil, fmt.Errorf("distributed: base weight %d is nil", i)
			}
			if t.IsOnDevice(dev) {
				res[i] = t
				continue
			}
			c, _, err := copyTo(backend, t, dev)
			if err != nil {
				return nil, fmt.Errorf("distributed: base weight %d %s to device %d: %w", i, t.Shape(), dev, err)
			}
			copied += int64(t.Shape().Memory())
			res[i] = c
		}
		return res, nil
	}
	if place.Mesh == nil {
		res, err := local()
		if err != nil {
			return nil, 0, err
		}
		for i, t := range res {
			out[i] = t
		}
		return out, copied, nil
	}
	f, ok := place.Mesh.Sharding.(FSDP)
	if !ok || f.Mesh != place.Mesh.Mesh {
		return nil, 0, fmt.Errorf("distributed: training placement's sharding is %T, want the FSDP of its mesh (TrainPlacement)", place.Mesh.Sharding)
	}
	src := ts
	if f.Mesh.NumDevices() == 1 {
		devs, err := place.MeshDevices(backend)
		if err != nil {
			return nil, 0, err
		}
		dev = devs[0]
		if src, err = local(); err != nil {
			return nil, 0, err
		}
	} else {
		for _, t := range ts {
			copied += int64(t.Shape().Memory())
		}
	}
	ds, err := f.Shard(src, Param)
	if err != nil {
		return nil, 0, err
	}
	for i, d := range ds {
		out[i] = d
	}
	return out, copied, nil
}
