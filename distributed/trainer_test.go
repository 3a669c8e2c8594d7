package distributed

import (
	"testing"

	gdist "github.com/gomlx/gomlx/pkg/core/distributed"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/execution"
	"github.com/mmft-go/mmft/internal/shared"
	"github.com/mmft-go/mmft/lora"
	"github.com/mmft-go/mmft/qwen2vl"
)

// TestTrainerProgramSpecs decides the whole layout of a trainer program
// (grpo.logps's input order) on the real tiny model over a mesh of 4,
// through the execution runner's own path (shapes, FSDP, completion and
// checks), without compiling: every input and output gets a spec that fits
// it, weights are split, the batch is split on its example axis.
func TestTrainerProgramSpecs(t *testing.T) {
	be, err := compute.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	m, err := qwen2vl.Load(be, shared.Fixture(t, "qwen2vl-tiny"), qwen2vl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ad, err := lora.Load(shared.Fixture(t, "qwen2vl-tiny", "lora_adapter"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.LoRAFromAdapter(ad)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Bind(l)
	if err != nil {
		t.Fatal(err)
	}
	prog := execution.NewProgram("grpo.logps", func(_ any, in []*Node) []*Node {
		w, rest := b.Weights(in)
		ti, rest := qwen2vl.ReadTextInputs(rest)
		return []*Node{w.TokenLogProbs(ti, rest[0], 0)}
	})
	ids := make([][]int32, 4)
	for i := range ids {
		ids[i] = []int32{5, 6, 7, 8, 9, 10, 11, 12}
	}
	tb, err := qwen2vl.PrepareText(m.Config, ids, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var in []shapes.Shape
	for _, x := range b.Tensors() {
		in = append(in, x.Shape())
	}
	for _, x := range tb.Tensors(nil) {
		in = append(in, x.Shape())
	}
	in = append(in, shapes.Make(in[len(in)-6].DType, 4, 3)) // targets [B, C] int32
	out, err := execution.OutputShapes(be, prog, nil, in)
	if err != nil {
		t.Fatal(err)
	}
	mesh, err := NewMesh(4)
	if err != nil {
		t.Fatal(err)
	}
	nModel := len(m.ParamNames())
	f := FSDP{Mesh: mesh, MinElements: 1024, Roles: GRPORoles(nModel, b.NumInputs()-nModel)}
	r := execution.New(be, execution.Placement{Mesh: &execution.Mesh{Mesh: mesh, Sharding: f}})
	inSpecs, outSpecs, err := r.Specs(prog, nil, in, out)
	if err != nil {
		t.Fatal(err)
	}
	split := func(s *gdist.ShardingSpec) int {
		for axis := range s.Rank() {
			if s.NumDevicesShardingAxis(axis) > 1 {
				return axis
			}
		}
		return -1
	}
	if got := split(inSpecs[0]); got != 0 { // embed_tokens [1024, 64]
		t.Errorf("embeddings %s: split on axis %d, want 0", in[0], got)
	}
	splitWeights := 0
	for i := range nModel {
		if split(inSpecs[i]) >= 0 {
			splitWeights++
		}
	}
	if splitWeights < nModel/3 {
		t.Errorf("only %d of %d weights split over 4 devices", splitWeights, nModel)
	}
	text := b.NumInputs()
	for i, want := range []int{0, 0, 0, 1, 0, -1, 0} { // ids, image index, is-image, positions, valid, features, targets
		if got := split(inSpecs[text+i]); got != want {
			t.Errorf("input %d (%s): split on axis %d, want %d", text+i, in[text+i], got, want)
		}
	}
	if len(outSpecs) != 1 || !out[0].Equal(shapes.Make(out[0].DType, 4, 3)) {
		t.Errorf("outputs %v specs %v", out, outSpecs)
	}
	t.Logf("%d of %d weights split; log-probs %s laid out %s", splitWeights, nModel, out[0], outSpecs[0])
}
