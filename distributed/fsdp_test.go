package distributed

import (
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/execution"
	"github.com/mmft-go/mmft/qwen2vl"
)

func mustMesh(t *testing.T, n int) FSDP {
	t.Helper()
	m, err := NewMesh(n)
	if err != nil {
		t.Fatal(err)
	}
	return FSDP{Mesh: m}
}

func TestFSDPSpecDecisions(t *testing.T) {
	f := mustMesh(t, 4)
	bf := func(d ...int) shapes.Shape { return shapes.Make(dtypes.BFloat16, d...) }
	for _, c := range []struct {
		sh   shapes.Shape
		role Role
		want string // the spec's axes, as GoMLX prints them
	}{
		{bf(151936, 1536), Param, "S(fsdp), R"},            // embeddings: the largest axis
		{bf(1536, 8960), Param, "R, S(fsdp)"},              // down_proj [out, in]: in is larger
		{bf(8960, 1536), Param, "S(fsdp), R"},              // up_proj
		{bf(1536), Param, "replicated"},                    // a norm's scale: too small
		{bf(256, 1537), Param, "S(fsdp), R"},               // only axis 0 divides by 4
		{bf(257, 1537), Param, "replicated"},               // no axis divides
		{shapes.Make(dtypes.Float32), Param, "replicated"}, // scalars
		{shapes.Make(dtypes.Int32, 8, 512), Batch(0), "S(fsdp), R"},
		{shapes.Make(dtypes.Int32, 3, 8, 512), Batch(1), "R, S(fsdp), R"},
		{shapes.Make(dtypes.Int32, 6, 512), Batch(0), "replicated"}, // 6 examples on 4 devices
		{bf(151936, 1536), Replicated, "replicated"},
	} {
		s, err := f.Spec(c.sh, c.role)
		if err != nil {
			t.Fatalf("%s %v: %v", c.sh, c.role, err)
		}
		if got := specAxes(s.String()); got != c.want {
			t.Errorf("Spec(%s, %v) = %s, want %s", c.sh, c.role, s, c.want)
		}
		if err := execution.CheckSpec(s, c.sh); err != nil {
			t.Errorf("Spec(%s, %v) = %s does not fit: %v", c.sh, c.role, s, err)
		}
	}
	if _, err := f.Spec(bf(4, 4), Batch(2)); err == nil {
		t.Error("a batch axis beyond the rank was accepted")
	}
	// Mesh of one: parameters still go through the sharded path, whole.
	one := mustMesh(t, 1)
	s, err := one.Spec(bf(151936, 1536), Param)
	if err != nil {
		t.Fatal(err)
	}
	if got := ShardedBytes(s, bf(151936, 1536)); got != 151936*1536*2 {
		t.Errorf("mesh of one: shard of %d bytes, want the whole tensor", got)
	}
	// Shards: a quarter each.
	s, _ = f.Spec(bf(151936, 1536), Param)
	if got := ShardedBytes(s, bf(151936, 1536)); got != 151936*1536*2/4 {
		t.Errorf("mesh of 4: shard of %d bytes, want a quarter", got)
	}
}

// specAxes returns the axes of a spec's String ("S(fsdp)", "R, S(fsdp)";
// "replicated" when none is sharded).
func specAxes(s string) string {
	_, rest, _ := strings.Cut(s, "axes=[")
	axes, _, _ := strings.Cut(rest, "]")
	if !strings.Contains(axes, "S(") {
		return "replicated"
	}
	return axes
}

func TestGRPORolesStep(t *testing.T) {
	const model, adapter = 3, 4 // 3 model tensors, 2 modules × (A, B)
	f32 := func(d ...int) shapes.Shape { return shapes.Make(dtypes.Float32, d...) }
	i32 := func(d ...int) shapes.Shape { return shapes.Make(dtypes.Int32, d...) }
	var in []shapes.Shape
	for range model + adapter {
		in = append(in, f32(64, 64))
	}
	in = append(in, f32(), f32()) // step, skipped
	for range 2 * adapter {
		in = append(in, f32(64, 64)) // m, v
	}
	in = append(in, f32())                                                                     // lr
	in = append(in, i32(8, 32), i32(8, 32), i32(8, 32), i32(3, 8, 32), i32(8, 32), f32(1, 64)) // text
	in = append(in, i32(8, 16), f32(8, 16), f32(8), f32(8), f32(8), f32())                     // targets … scale
	roles := GRPORoles(model, adapter)("grpo.step", nil, in)
	if len(roles) != len(in) {
		t.Fatalf("%d roles for %d inputs", len(roles), len(in))
	}
	want := map[int]Role{0: Param, model + adapter: Param, model + adapter + 2: Param}
	lr := model + adapter + 2 + 2*adapter
	want[lr] = Replicated
	want[lr+1] = Batch(0)
	want[lr+4] = Batch(1) // positions [3, B, L]
	want[lr+6] = Replicated
	want[lr+7] = Batch(0)
	want[len(in)-1] = Replicated // the loss scale
	for i, r := range want {
		if roles[i] != r {
			t.Errorf("input %d (%s): role %v, want %v", i, in[i], roles[i], r)
		}
	}
	// The whole decision on a mesh of 4: every batch input split on its example axis.
	f := mustMesh(t, 4)
	f.Roles = GRPORoles(model, adapter)
	specs, _, err := f.Specs("grpo.step", nil, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := specAxes(specs[lr+4].String()); got != "R, S(fsdp), R" {
		t.Errorf("positions spec %s", specs[lr+4])
	}
	if got := specAxes(specs[lr+7].String()); got != "S(fsdp), R" {
		t.Errorf("targets spec %s", specs[lr+7])
	}
	if GRPORoles(model, adapter)("other", nil, in) != nil {
		t.Error("an unknown program got roles")
	}
	if GRPORoles(model, adapter)("grpo.step", nil, in[:5]) != nil {
		t.Error("too few inputs got roles")
	}
	_ = qwen2vl.NumTextInputs
}

func TestTrainPlacement(t *testing.T) {
	l, err := NewLayout("3", "0-2", 4)
	if err != nil {
		t.Fatal(err)
	}
	p, err := TrainPlacement(l, FSDP{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Mesh.Mesh.NumDevices() != 3 || len(p.Mesh.Devices) != 3 || p.Mesh.Devices[2] != backends.DeviceNum(2) || p.Mesh.Sharding == nil {
		t.Errorf("placement %+v", p)
	}
	if f := p.Mesh.Sharding.(FSDP); f.Mesh != p.Mesh.Mesh {
		t.Error("the sharding's mesh is not the placement's")
	}
	one, _ := DefaultLayout(1)
	p, err = TrainPlacement(one, FSDP{})
	if err != nil || p.Mesh.Mesh.NumDevices() != 1 {
		t.Errorf("one GPU: %+v, %v", p, err)
	}
}

func TestFSDPShardOnHost(t *testing.T) {
	// The data movement of a decision, on the host: a [8, 4096] weight over
	// 4 devices splits its larger axis; each shard holds its columns, and
	// merging gives the tensor back.
	f := mustMesh(t, 4)
	vals := make([]float32, 8*4096)
	for i := range vals {
		vals[i] = float32(i)
	}
	w := tensors.FromFlatDataAndDimensions(vals, 8, 4096)
	small := tensors.FromFlatDataAndDimensions([]float32{1, 2, 3}, 3)
	ds, err := f.Shard([]*tensors.Tensor{w, small}, Param)
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].NumShards() != 4 || !ds[0].ShardShape().Equal(shapes.Make(dtypes.Float32, 8, 1024)) {
		t.Fatalf("shards %d of %s", ds[0].NumShards(), ds[0].ShardShape())
	}
	if got := tensors.MustCopyFlatData[float32](ds[0].Shards()[2]); got[0] != 2048 || got[1024] != 4096+2048 {
		t.Errorf("shard 2 starts %v, %v; want columns 2048… of each row", got[0], got[1024])
	}
	if !ds[1].ShardShape().Equal(small.Shape()) {
		t.Errorf("a small tensor was split: %s", ds[1].ShardShape())
	}
	back, err := ds[0].Merge()
	if err != nil {
		t.Fatal(err)
	}
	if got := tensors.MustCopyFlatData[float32](back); got[8*4096-1] != 8*4096-1 || got[5000] != 5000 {
		t.Error("merge did not restore the tensor")
	}
	// Mesh of one: the tensor itself is the shard.
	one := mustMesh(t, 1)
	d1, err := one.Shard([]*tensors.Tensor{w}, Param)
	if err != nil || d1[0].Shards()[0] != w {
		t.Errorf("mesh of one copied the tensor (%v)", err)
	}
}
