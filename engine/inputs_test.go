package engine

import (
	"math"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/internal/shared"
	"github.com/mmft-go/mmft/processor"
	"github.com/mmft-go/mmft/qwen2vl"
)

// TestFrontDoorTiny sends the tiny fixture's sequences through the Go input
// side (processor encodings, batched and left-padded by a real processor)
// and the engine's front door into the model: the logits must be the
// fixture's. (The fixture's ids come from a 1024-token vocabulary, so the
// encodings are built from its ids and images rather than from text.)
func TestFrontDoorTiny(t *testing.T) {
	m, ref := loadTiny(t)
	proc, err := processor.Load(shared.Asset(t))
	if err != nil {
		t.Fatal(err)
	}
	fix := ref.batch(t)
	pd := m.Config.Vision.PatchDim()
	var encs []*processor.Encoding
	off := 0
	for i, row := range fix.InputIDs {
		enc := &processor.Encoding{PatchDim: pd}
		for j, id := range row {
			if fix.AttentionMask[i][j] != 0 {
				enc.InputIDs = append(enc.InputIDs, id)
			}
		}
		g := fix.Grids[i] // one image per row
		n := g.T * g.H * g.W * pd
		enc.PixelValues = fix.PixelValues[off : off+n]
		enc.Grids = [][3]int{{g.T, g.H, g.W}}
		off += n
		encs = append(encs, enc)
	}
	pb, err := proc.Batch(encs, processor.BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in, err := Batch(pb)
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Forward(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ref.floats(t, "logits")
	if d := maxAbsDiff(t, out.Logits, want); d > 1e-3 {
		t.Errorf("logits through the front door differ from the fixture by %g", d)
	}
	// The same batch as prompts for the engine keeps every id.
	ps, err := PromptsFromBatch(pb)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range ps {
		if len(p.IDs) != len(encs[i].InputIDs) || len(p.Images) != 1 || p.Images[0].Grid != fix.Grids[i] {
			t.Errorf("prompt %d: %d ids, %d images; want %d ids and grid %v", i, len(p.IDs), len(p.Images), len(encs[i].InputIDs), fix.Grids[i])
		}
	}
}

// TestManyImageSizes runs 100 distinct image sizes through the vision tower:
// shape buckets bound the programs compiled, and a padded run equals the
// unpadded reference features (checked on the fixture in TestParityTiny).
func TestManyImageSizes(t *testing.T) {
	m, _ := loadTiny(t)
	pd := m.Config.Vision.PatchDim()
	n := 0
	for h := 2; h <= 40 && n < 100; h += 2 {
		for w := 2; w <= 10 && n < 100; w += 2 {
			px := make([]float32, h*w*pd)
			for i := range px {
				px[i] = float32((i*7+h*13+w)%17)/17 - 0.5
			}
			f, err := m.ImageFeatures(px, []qwen2vl.Grid{{T: 1, H: h, W: w}})
			if err != nil {
				t.Fatalf("image %d×%d patches: %v", h, w, err)
			}
			if got := f.Shape().Dimensions[0]; got != h*w/4 {
				t.Fatalf("image %d×%d patches: %d features, want %d", h, w, got, h*w/4)
			}
			n++
		}
	}
	st := m.Runner().Stats()
	vision := st.ByProgram["engine.vision"]
	t.Logf("%d distinct image sizes: %d programs compiled (%d of the vision tower; %v compiling)", n, st.Programs, vision, st.CompileTime)
	if n != 100 || vision > 8 || st.Programs > 20 {
		t.Errorf("%d image sizes compiled %d programs, %d of the vision tower; want ≤ 20 and ≤ 8", n, st.Programs, vision)
	}
}

// TestFeatureRowsMatchPerBatch: the features of a micro-batch taken from
// the whole batch's (PromptFeatures, then FeatureRows) equal the vision
// tower run on the micro-batch's images alone, on the rows its image tokens
// read.
func TestFeatureRowsMatchPerBatch(t *testing.T) {
	m, _ := loadTiny(t)
	pd := m.Config.Vision.PatchDim()
	var ps []Prompt
	for i, g := range []qwen2vl.Grid{{T: 1, H: 4, W: 4}, {T: 1, H: 6, W: 2}, {T: 1, H: 4, W: 4}, {T: 1, H: 2, W: 8}, {T: 1, H: 8, W: 4}} {
		px := make([]float32, g.H*g.W*pd)
		for j := range px {
			px[j] = float32((j*5+i*11)%13)/13 - 0.5
		}
		p := Prompt{IDs: []int32{1, 2}, Images: []Image{{Pixels: px, Grid: g}}}
		if i == 1 { // a prompt with two images
			p.Images = append(p.Images, Image{Pixels: slices.Repeat(px[:2*pd], 8), Grid: qwen2vl.Grid{T: 1, H: 4, W: 4}})
		}
		ps = append(ps, p)
	}
	feats, err := m.PromptFeatures(ps)
	if err != nil {
		t.Fatal(err)
	}
	all, from := feats.T, feats.From
	for _, mb := range [][2]int{{0, 2}, {2, 4}, {4, 5}, {1, 4}} {
		var px []float32
		var grids []qwen2vl.Grid
		for _, p := range ps[mb[0]:mb[1]] {
			for _, im := range p.Images {
				px, grids = append(px, im.Pixels...), append(grids, im.Grid)
			}
		}
		want, tokens, err := m.DeviceImageFeatures(px, grids)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.FeatureRows(all, from[mb[0]], from[mb[1]]-from[mb[0]])
		if err != nil {
			t.Fatal(err)
		}
		if tokens != from[mb[1]]-from[mb[0]] || !slices.Equal(got.Shape().Dimensions, want.Shape().Dimensions) {
			t.Fatalf("prompts %v: %d rows of shape %v, want %d of %v", mb, from[mb[1]]-from[mb[0]], got.Shape(), tokens, want.Shape())
		}
		hidden := m.Config.Text.HiddenSize
		g, w := tensors.MustCopyFlatData[float32](got)[:tokens*hidden], tensors.MustCopyFlatData[float32](want)[:tokens*hidden]
		for i := range g {
			if math.Abs(float64(g[i]-w[i])) > 1e-5*(1+math.Abs(float64(w[i]))) {
				t.Fatalf("prompts %v: feature %d = %g, want %g", mb, i, g[i], w[i])
			}
		}
	}
	if _, err := m.FeatureRows(all, from[4], all.Shape().Dimensions[0]-from[4]+1); err == nil {
		t.Error("rows past the features: no error")
	}
}
