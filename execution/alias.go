package execution

import (
	"reflect"
	"unsafe"

	"github.com/gomlx/go-xla/pkg/stablehlo"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Input–output aliasing of donated arguments.
//
// Donating a buffer at run time lets PJRT free it, but XLA writes an output
// in place of an input only where the compiled module declares the pair
// (its input_output_alias). Without it, a program that replaces its state
// (a KV cache, optimizer moments, gradient accumulators) copies every such
// input into a new output buffer on each call, and the new addresses force
// XLA to re-record its CUDA graphs before launching them. GoMLX v0.26 has no
// API for the declaration; on the XLA backend its parameters are StableHLO
// function arguments, and this file marks each donated one with
// `tf.aliasing_output = k` (the attribute JAX writes for donated
// arguments), pairing it with the first unpaired output of the same shape
// and dtype. Any such pairing is correct: XLA inserts a copy where the
// program still reads the input after writing the output. On other
// backends (the pure-Go CPU backend has no StableHLO) nothing is marked.

// aliasAttribute is the StableHLO argument attribute XLA reads as
// "this parameter may share its buffer with output k".
const aliasAttribute = "tf.aliasing_output"

// pairDonated returns, for each parameter i with donated[i], the index of
// the first output not yet paired whose shape equals the parameter's (−1
// where none does).
func pairDonated(params, outputs []shapes.Shape, donated []bool) []int {
	pair := make([]int, len(params))
	used := make([]bool, len(outputs))
	for i := range params {
		pair[i] = -1
		if i >= len(donated) || !donated[i] {
			continue
		}
		for j, o := range outputs {
			if !used[j] && o.Equal(params[i]) {
				pair[i], used[j] = j, true
				break
			}
		}
	}
	return pair
}

// aliasDonated declares, for the XLA backend, each donated parameter of a
// graph being built (in, in argument order) as aliased to an output of
// the same shape (out). It reports how many pairs it declared (0 on other
// backends).
func aliasDonated(in, out []*graph.Node, donated []bool) int {
	ps := make([]shapes.Shape, len(in))
	for i, n := range in {
		ps[i] = n.Shape()
	}
	outs := make([]shapes.Shape, len(out))
	for j, n := range out {
		outs[j] = n.Shape()
	}
	n := 0
	for i, j := range pairDonated(ps, outs, donated) {
		if j < 0 {
			continue
		}
		v := stablehloValue(in[i])
		if v == nil {
			return n
		}
		if v.Attributes == nil {
			v.Attributes = map[string]any{}
		}
		v.Attributes[aliasAttribute] = int32(j)
		n++
	}
	return n
}

// stablehloValue returns the StableHLO value behind a graph node on the XLA
// backend, or nil on any other backend (or if GoMLX's internals differ from
// what v0.26 has: graph.Node.outputOps holding *xla.Node{value}).
func stablehloValue(n *graph.Node) (v *stablehlo.Value) {
	defer func() {
		if recover() != nil {
			v = nil
		}
	}()
	ops := reflect.ValueOf(n).Elem().FieldByName("outputOps")
	if !ops.IsValid() || ops.Kind() != reflect.Slice {
		return nil
	}
	ops = reflect.NewAt(ops.Type(), unsafe.Pointer(ops.UnsafeAddr())).Elem()
	if ops.Len() != 1 {
		return nil
	}
	op := ops.Index(0)
	if op.Kind() == reflect.Interface {
		op = op.Elem()
	}
	if op.Kind() != reflect.Pointer || op.IsNil() || op.Elem().Kind() != reflect.Struct {
		return nil
	}
	f := op.Elem().FieldByName("value")
	if !f.IsValid() || f.Type() != reflect.TypeOf((*stablehlo.Value)(nil)) {
		return nil
	}
	return *(**stablehlo.Value)(unsafe.Pointer(f.UnsafeAddr()))
}
