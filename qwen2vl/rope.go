package qwen2vl

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph building reads best unqualified
)

// Grid is an image's patch grid (temporal, height, width) as in image_grid_thw.
type Grid struct{ T, H, W int }

// RopeIndex computes Qwen2-VL's 3-D M-RoPE position ids exactly as
// transformers' get_rope_index does for images: text tokens advance all three
// axes together; the tokens of an image (after the merge, T×H/m×W/m of them)
// take (t, h, w) offsets from the position after the preceding text; the text
// after an image resumes at the largest position so far plus one. Padded
// positions (mask 0) get position 0 (as transformers 5 does). ids and mask are [B][L]; grids are the
// images of the whole batch in order. It returns positions [3][B][L] and
// rope_deltas [B] = max position + 1 − (unpadded tokens in the row), as
// transformers 5 computes it; decoding adds it to the count of real tokens.
func RopeIndex(cfg Config, ids, mask [][]int32, grids []Grid) (pos [3][][]int64, deltas []int64, err error) {
	merge := cfg.Vision.SpatialMergeSize
	b := len(ids)
	for a := range 3 {
		pos[a] = make([][]int64, b)
	}
	deltas = make([]int64, b)
	next := 0 // next image of the batch
	for i, row := range ids {
		l := len(row)
		if mask != nil && len(mask[i]) != l {
			return pos, nil, fmt.Errorf("attention_mask row %d has %d entries, input_ids has %d", i, len(mask[i]), l)
		}
		for a := range 3 {
			pos[a][i] = make([]int64, l)
			for j := range pos[a][i] {
				pos[a][i][j] = 0
			}
		}
		// The attended tokens of the row, and where they sit.
		var toks []int32
		var where []int
		for j, id := range row {
			if mask == nil || mask[i][j] != 0 {
				toks = append(toks, id)
				where = append(where, j)
			}
		}
		var p [3][]int64
		maxPos := int64(-1)
		emit := func(t, h, w int64) {
			p[0], p[1], p[2] = append(p[0], t), append(p[1], h), append(p[2], w)
			maxPos = max(maxPos, t, h, w)
		}
		st := 0
		for st < len(toks) {
			// Find the next image: an image token right after a vision start.
			ed := -1
			for j := st; j < len(toks); j++ {
				if toks[j] == int32(cfg.ImageTokenID) && j > 0 && toks[j-1] == int32(cfg.VisionStartTokenID) {
					ed = j
					break
				}
			}
			if ed < 0 {
				break
			}
			if next >= len(grids) {
				return pos, nil, fmt.Errorf("row %d has more images than image_grid_thw lists (%d)", i, len(grids))
			}
			g := grids[next]
			next++
			if g.T <= 0 || g.H <= 0 || g.W <= 0 {
				return pos, nil, fmt.Errorf("image %d has grid %dx%dx%d: t, h and w must be positive", next-1, g.T, g.H, g.W)
			}
			if g.H%merge != 0 || g.W%merge != 0 {
				return pos, nil, fmt.Errorf("image %d grid %dx%d is not a multiple of the merge size %d", next-1, g.H, g.W, merge)
			}
			gt, gh, gw := g.T, g.H/merge, g.W/merge
			// Check the image's tokens fit in the row before emitting their
			// positions (factor by factor: a huge grid must not overflow).
			if left := len(toks) - ed; gt > left || gh > left || gw > left || gt*gh > left || gt*gh*gw > left {
				return pos, nil, fmt.Errorf("row %d: image %d (grid %dx%dx%d) needs %d×%d×%d image tokens after position %d, the row ends first", i, next-1, g.T, g.H, g.W, gt, gh, gw, where[ed])
			}
			base := maxPos + 1
			for k := 0; k < ed-st; k++ {
				v := base + int64(k)
				emit(v, v, v)
			}
			base += int64(ed - st)
			for t := range gt {
				for h := range gh {
					for w := range gw {
						emit(base+int64(t), base+int64(h), base+int64(w))
					}
				}
			}
			n := gt * gh * gw
			for k := ed; k < ed+n; k++ {
				if toks[k] != int32(cfg.ImageTokenID) {
					return pos, nil, fmt.Errorf("row %d: image %d (grid %dx%dx%d) needs %d consecutive image tokens, found another token at %d", i, next-1, g.T, g.H, g.W, n, where[k])
				}
			}
			st = ed + n
		}
		base := maxPos + 1
		for k := 0; k < len(toks)-st; k++ {
			v := base + int64(k)
			emit(v, v, v)
		}
		for k, j := range where {
			for a := range 3 {
				pos[a][i][j] = p[a][k]
			}
		}
		deltas[i] = maxPos + 1 - int64(len(toks))
	}
	if next != len(grids) {
		return pos, nil, fmt.Errorf("image_grid_thw lists %d images but the input ids hold %d (each image is <vision_start> followed by its image tokens)", len(grids), next)
	}
	return pos, deltas, nil
}

// invFreq returns 1/theta^(2k/dim) for k < dim/2, rounded to float32 as torch does.
func invFreq(theta float64, dim int) []float32 {
	out := make([]float32, dim/2)
	for k := range out {
		e := float32(2*k) / float32(dim)
		out[k] = float32(1 / math.Pow(theta, float64(e)))
	}
	return out
}

// MRopeTables returns the M-RoPE cos and sin tables [B·L·head_dim] (float32,
// row-major [B][L][D]) for 3-D positions: frequency j of the head's first
// half (and its copy in the second half) takes its angle from the temporal,
// height or width position according to mrope_section.
func MRopeTables(cfg TextConfig, pos [3][][]int64) (cos, sin []float32) {
	d := cfg.HeadDim()
	inv := invFreq(cfg.RopeTheta, d)
	axis := make([]int, d)
	j := 0
	for a, n := range cfg.MRopeSection {
		for range n {
			axis[j], axis[j+d/2] = a, a
			j++
		}
	}
	b := len(pos[0])
	l := 0
	if b > 0 {
		l = len(pos[0][0])
	}
	cos = make([]float32, b*l*d)
	sin = make([]float32, b*l*d)
	for i := range b {
		for s := range l {
			off := (i*l + s) * d
			for k := range d {
				angle := float32(pos[axis[k]][i][s]) * inv[k%(d/2)]
				cos[off+k] = float32(math.Cos(float64(angle)))
				sin[off+k] = float32(math.Sin(float64(angle)))
			}
		}
	}
	return cos, sin
}

// MRope returns the M-RoPE cos and sin tables [B, S, head_dim] (float32) for
// positions [3, B, S] (int32), as MRopeTables computes them on the host:
// frequency j of the head's first half (and its copy in the second half)
// takes its angle from the temporal, height or width position according to
// mrope_section; angle = float32(position) · inv_freq in float32.
func (w *Weights) MRope(pos *Node) (cos, sin *Node) {
	cfg := w.Config.Text
	g := pos.Graph()
	d := cfg.HeadDim()
	inv := invFreq(cfg.RopeTheta, d)
	invFull := make([]float32, d)
	for k := range d {
		invFull[k] = inv[k%(d/2)]
	}
	sel := make([][]float32, 3)
	for a := range sel {
		sel[a] = make([]float32, d)
	}
	j := 0
	for a, n := range cfg.MRopeSection {
		for range n {
			sel[a][j], sel[a][j+d/2] = 1, 1
			j++
		}
	}
	pf := ConvertDType(pos, dtypes.Float32) // exact below 2²⁴
	var posK *Node                          // [B, S, D]: each frequency's position (a 0/1 selection, exact)
	for a := range 3 {
		term := Mul(InsertAxes(Squeeze(SliceAxis(pf, 0, AxisElem(a)), 0), -1), ExpandLeftToRank(Const(g, sel[a]), 3))
		if posK == nil {
			posK = term
		} else {
			posK = Add(posK, term)
		}
	}
	angle := Mul(posK, ExpandLeftToRank(Const(g, invFull), 3))
	return Cos(angle), Sin(angle)
}

// visionRopeTables returns cos and sin [P·head_dim] for one frame of an image
// with h×w patches, in the merge-window order of the image processor (each
// m×m window's patches consecutive): the first half of the rotary
// frequencies follow the patch row, the second half the patch column.
func visionRopeTables(cfg VisionConfig, h, w int) (cos, sin []float32) {
	d := cfg.HeadDim()
	inv := invFreq(cfg.RopeTheta, d/2) // d/4 frequencies
	q := len(inv)
	m := cfg.SpatialMergeSize
	// An angle depends on the patch's row or column and the frequency only:
	// compute each cosine and sine once per row and per column.
	table := func(n int) (c, s []float32) {
		c, s = make([]float32, n*q), make([]float32, n*q)
		for i := range n {
			for k := range q {
				a := float64(float32(i) * inv[k])
				c[i*q+k], s[i*q+k] = float32(math.Cos(a)), float32(math.Sin(a))
			}
		}
		return c, s
	}
	rowCos, rowSin := table(h)
	colCos, colSin := table(w)
	cos = make([]float32, 0, h*w*d)
	sin = make([]float32, 0, h*w*d)
	for hb := 0; hb < h/m; hb++ {
		for wb := 0; wb < w/m; wb++ {
			for i := range m {
				for j := range m {
					row, col := hb*m+i, wb*m+j
					// [row angles, column angles] twice (rotate_half's halves).
					for range 2 {
						cos = append(append(cos, rowCos[row*q:(row+1)*q]...), colCos[col*q:(col+1)*q]...)
						sin = append(append(sin, rowSin[row*q:(row+1)*q]...), colSin[col*q:(col+1)*q]...)
					}
				}
			}
		}
	}
	return cos, sin
}
