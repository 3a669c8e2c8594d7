package distributed

import (
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/mmft-go/mmft/qwen2vl"
)

// GRPORoles returns FSDP.Roles for the trainer's programs (grpo.step,
// grpo.logps, grpo.grads, grpo.apply, with the input order of
// grpo/programs.go) for a model of numModel parameter tensors and an adapter
// of numAdapter tensors (A and B of every module): weights, adapters and
// optimizer state are Param; the text inputs and the batch split along
// their example axis; scalars, the learning rate and the image features
// (rows gathered by global index) are replicated. Other programs get nil
// (Param for all).
func GRPORoles(numModel, numAdapter int) func(program string, variant any, inputs []shapes.Shape) []Role {
	return func(program string, _ any, in []shapes.Shape) []Role {
		roles := make([]Role, len(in))
		for i := range roles {
			roles[i] = Param
		}
		binding := numModel + numAdapter
		state := 2 + 2*numAdapter
		text := func(at int) int { // marks the text inputs from at; returns the index after them
			if at+qwen2vl.NumTextInputs > len(in) {
				return len(in)
			}
			for k, r := range []Role{Batch(0), Batch(0), Batch(0), Batch(1), Batch(0), Replicated} {
				roles[at+k] = r
			}
			return at + qwen2vl.NumTextInputs
		}
		batch := func(from, to int) {
			for i := from; i < to && i < len(in); i++ {
				if in[i].Rank() == 0 {
					roles[i] = Replicated
				} else {
					roles[i] = Batch(0)
				}
			}
		}
		switch program {
		case "grpo.logps":
			if len(in) < binding+qwen2vl.NumTextInputs+1 {
				return nil
			}
			batch(text(binding), len(in))
		case "grpo.step":
			if len(in) < binding+state+1+qwen2vl.NumTextInputs {
				return nil
			}
			roles[binding+state] = Replicated // learning rate
			batch(text(binding+state+1), len(in))
		case "grpo.grads":
			if len(in) < binding+qwen2vl.NumTextInputs+numAdapter {
				return nil
			}
			batch(text(binding), len(in)-numAdapter)
		case "grpo.apply":
			if len(in) > 0 {
				roles[len(in)-1] = Replicated // learning rate
			}
		default:
			return nil
		}
		return roles
	}
}
