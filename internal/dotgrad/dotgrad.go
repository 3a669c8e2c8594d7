// Package dotgrad gives GoMLX's DotGeneral a gradient computed with
// DotGeneral. GoMLX v0.26 differentiates a DotGeneral as a broadcast product
// followed by a sum, which materializes an operand-sized tensor times the
// other operand's free axes: one [32, 208, 64]·[128, 64]ᵀ projection of the
// tiny model builds a 54-million-element product in its backward pass, and a
// 2B-model projection would build hundreds of billions. Here each operand's
// gradient is one DotGeneral of the output gradient with the other operand
// (contracting the other operand's free axes, keeping the batch axes),
// transposed back into the operand's axis order: the same values, with the
// cost and memory of the forward product.
//
// Importing the package (qwen2vl and grpo do) replaces the entry in GoMLX's
// VJP table, which GoMLX documents as meant to be changed; it applies to
// every graph of the process.
package dotgrad

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// generic is GoMLX's own rule, used when a node's axes cannot be read.
var generic = VJPRegistration[NodeTypeDotGeneral]

func init() {
	VJPRegistration[NodeTypeDotGeneral] = func(node *Node, v []*Node, out shapes.Shape) []*Node {
		ax, err := axesOf(node)
		if err != nil {
			return generic(node, v, out)
		}
		return Gradients(node.Inputs()[0], node.Inputs()[1], ax, v[0])
	}
}

// Axes are a DotGeneral's contracting and batch axes.
type Axes struct {
	LhsContracting, LhsBatch, RhsContracting, RhsBatch []int
}

var axesRE = regexp.MustCompile(`DotGeneral\(lhs=\[#\d+\], lhsContractingAxes=\[([\d ]*)\], lhsBatchAxes=\[([\d ]*)\], rhs=\[#\d+\], rhsContractingAxes=\[([\d ]*)\], rhsBatchAxes=\[([\d ]*)\]\)`)

// axesOf reads a DotGeneral node's axes from its description (GoMLX keeps
// them unexported).
func axesOf(node *Node) (Axes, error) {
	m := axesRE.FindStringSubmatch(node.String())
	if m == nil {
		return Axes{}, fmt.Errorf("dotgrad: cannot read the axes of %s", node)
	}
	var lists [4][]int
	for i := range 4 {
		for _, f := range strings.Fields(m[i+1]) {
			n, err := strconv.Atoi(f)
			if err != nil {
				return Axes{}, err
			}
			lists[i] = append(lists[i], n)
		}
	}
	return Axes{LhsContracting: lists[0], LhsBatch: lists[1], RhsContracting: lists[2], RhsBatch: lists[3]}, nil
}

// free lists the axes of a rank-r operand that are neither contracting nor
// batch, in increasing order (the order DotGeneral outputs them in).
func free(r int, contracting, batch []int) []int {
	var out []int
	for a := range r {
		if !slices.Contains(contracting, a) && !slices.Contains(batch, a) {
			out = append(out, a)
		}
	}
	return out
}

// Gradients returns the gradients of DotGeneral(lhs, rhs) with axes ax for the
// output gradient v ([batch…, lhs free…, rhs free…]).
func Gradients(lhs, rhs *Node, ax Axes, v *Node) []*Node {
	nb := len(ax.LhsBatch)
	lf := free(lhs.Rank(), ax.LhsContracting, ax.LhsBatch)
	rf := free(rhs.Rank(), ax.RhsContracting, ax.RhsBatch)
	vBatch := make([]int, nb)
	for i := range vBatch {
		vBatch[i] = i
	}
	vLhsFree := make([]int, len(lf))
	for i := range lf {
		vLhsFree[i] = nb + i
	}
	vRhsFree := make([]int, len(rf))
	for i := range rf {
		vRhsFree[i] = nb + len(lf) + i
	}
	gl := grad(v, vRhsFree, vBatch, rhs, rf, ax.RhsBatch, lhs.Rank(), ax.LhsBatch, lf, ax.LhsContracting, ax.RhsContracting)
	gr := grad(v, vLhsFree, vBatch, lhs, lf, ax.LhsBatch, rhs.Rank(), ax.RhsBatch, rf, ax.RhsContracting, ax.LhsContracting)
	return []*Node{ConvertDType(gl, lhs.DType()), ConvertDType(gr, rhs.DType())}
}

// grad computes one operand's gradient: v contracted with the other operand
// over the other's free axes (batch axes kept), giving [batch…, this free…,
// other contracting (increasing)…], transposed into this operand's order,
// where this operand's contracting axis thisC[k] pairs with otherC[k].
func grad(v *Node, vOtherFree, vBatch []int, other *Node, otherFree, otherBatch []int,
	rank int, thisBatch, thisFree, thisC, otherC []int) *Node {
	if other.DType() != v.DType() {
		other = ConvertDType(other, v.DType())
	}
	r := DotGeneral(v, vOtherFree, vBatch, other, otherFree, otherBatch)
	nb, nf := len(thisBatch), len(thisFree)
	sortedOtherC := slices.Sorted(slices.Values(otherC))
	perm := make([]int, rank)
	for a := range rank {
		switch {
		case slices.Contains(thisBatch, a):
			perm[a] = slices.Index(thisBatch, a)
		case slices.Contains(thisFree, a):
			perm[a] = nb + slices.Index(thisFree, a)
		default:
			k := slices.Index(thisC, a)
			perm[a] = nb + nf + slices.Index(sortedOtherC, otherC[k])
		}
	}
	identity := true
	for i, p := range perm {
		identity = identity && i == p
	}
	if identity {
		return r
	}
	return TransposeAllAxes(r, perm...)
}
