package engine

import (
	"context"
	"testing"

	"github.com/mmft-go/mmft/qwen2vl"
)

// promptsOf splits a left-padded batch into prompts (padding dropped, each
// row's images in order by their token counts).
func promptsOf(t testing.TB, cfg qwen2vl.Config, b qwen2vl.Batch) []Prompt {
	t.Helper()
	pd, win := cfg.Vision.PatchDim(), cfg.Vision.SpatialMergeSize*cfg.Vision.SpatialMergeSize
	var out []Prompt
	img, off := 0, 0
	for i, row := range b.InputIDs {
		var p Prompt
		tokens := 0
		for j, id := range row {
			if b.AttentionMask == nil || b.AttentionMask[i][j] != 0 {
				p.IDs = append(p.IDs, id)
				if id == int32(cfg.ImageTokenID) {
					tokens++
				}
			}
		}
		for tokens > 0 {
			g := b.Grids[img]
			n := g.T * g.H * g.W
			p.Images = append(p.Images, Image{Pixels: b.PixelValues[off : off+n*pd], Grid: g})
			off += n * pd
			tokens -= n / win
			img++
		}
		out = append(out, p)
	}
	return out
}

func TestGreedyTiny(t *testing.T) {
	m, ref := loadTiny(t)
	want, ws := ref.ints(t, "greedy_ids")
	var reqs []Request
	for _, p := range promptsOf(t, m.Config, ref.batch(t)) {
		reqs = append(reqs, Request{Prompt: p, N: 1, Sampling: Sampling{MaxNewTokens: ws[1], IgnoreEOS: true}})
	}
	got, err := m.Generate(context.Background(), reqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ws[0] {
		for j := range ws[1] {
			if int64(got[i].IDs[j]) != want[i*ws[1]+j] {
				t.Fatalf("greedy ids row %d = %v, want %v", i, got[i].IDs, want[i*ws[1]:(i+1)*ws[1]])
			}
		}
		if got[i].Finish != FinishLength {
			t.Errorf("row %d finished by %q, want length", i, got[i].Finish)
		}
	}
}
