package grpo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's graph DSL reads best unqualified.
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// MaxCasesFileBytes bounds the size of a loss-cases file ReadLossCases reads.
const MaxCasesFileBytes = 1 << 30

// LossCase is one objective case in the format of the reference fixture
// (shared/fixtures/grpo/loss_cases.json): a batch of groups with rewards,
// masks and log-probs. Optional fields extend the fixture's format to the
// options it does not exercise.
type LossCase struct {
	// Groups and GroupSize lay out the Groups·GroupSize completions.
	Groups    int `json:"groups"`
	GroupSize int `json:"group_size"`
	// EpsilonLow, EpsilonHigh, Beta, LossType and MaxCompletionLength are the objective's.
	EpsilonLow          float64 `json:"epsilon_low"`
	EpsilonHigh         float64 `json:"epsilon_high"`
	Beta                float64 `json:"beta"`
	LossType            string  `json:"loss_type"`
	MaxCompletionLength int     `json:"max_completion_length"`
	// ScaleRewards is optional ("group" when empty).
	ScaleRewards string `json:"scale_rewards,omitempty"`
	// Rewards has one value per completion.
	Rewards []float64 `json:"rewards"`
	// Mask, OldLogps, NewLogps and RefLogps are [N][T].
	Mask     [][]float64 `json:"mask"`
	OldLogps [][]float64 `json:"old_logps"`
	NewLogps [][]float64 `json:"new_logps"`
	RefLogps [][]float64 `json:"ref_logps"`
	// EngineLogps, when present, turns on the importance-sampling correction
	// with ImportanceSamplingCap (3 when zero).
	EngineLogps           [][]float64 `json:"engine_logps,omitempty"`
	ImportanceSamplingCap float64     `json:"importance_sampling_cap,omitempty"`
	// Truncated, when present with MaskTruncatedCompletions, drops the completions marked 1.
	Truncated                []float64 `json:"truncated,omitempty"`
	MaskTruncatedCompletions bool      `json:"mask_truncated_completions,omitempty"`

	// Seed, Advantages, Loss and GradNewLogps are the reference's expected
	// values where the file holds them; RunLossCase does not read them.
	Seed         int64       `json:"seed,omitempty"`
	Advantages   []float64   `json:"advantages,omitempty"`
	Loss         *float64    `json:"loss,omitempty"`
	GradNewLogps [][]float64 `json:"grad_new_logps,omitempty"`
}

// LossResult is what RunLossCase computes for one case.
type LossResult struct {
	// Loss is the objective.
	Loss float64 `json:"loss"`
	// GradNewLogps is d Loss / d NewLogps, [N][T].
	GradNewLogps [][]float64 `json:"grad_new_logps"`
}

// ReadLossCases reads a cases file: a JSON object {"cases": [...]} (the
// fixture's form, other top-level keys ignored) or a bare JSON array of cases.
// Unknown fields inside a case are refused, so a misspelt option is not
// silently ignored; every case is checked.
func ReadLossCases(path string) ([]LossCase, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("grpo: loss cases: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > MaxCasesFileBytes {
		return nil, fmt.Errorf("grpo: loss cases %s: %d bytes is more than the %d-byte limit", path, st.Size(), MaxCasesFileBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxCasesFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("grpo: loss cases %s: %w", path, err)
	}
	cases, err := ParseLossCases(data)
	if err != nil {
		return nil, fmt.Errorf("grpo: loss cases %s: %w", path, err)
	}
	return cases, nil
}

// ParseLossCases parses the content of a cases file (see ReadLossCases).
func ParseLossCases(data []byte) ([]LossCase, error) {
	data = bytes.TrimSpace(data)
	var raw []json.RawMessage
	switch {
	case len(data) > 0 && data[0] == '[':
		if err := json.Unmarshal(data, &raw); err != nil {
			return nil, fmt.Errorf("not a JSON array of cases: %w", err)
		}
	case len(data) > 0 && data[0] == '{':
		var top struct {
			Cases *[]json.RawMessage `json:"cases"`
		}
		if err := json.Unmarshal(data, &top); err != nil {
			return nil, fmt.Errorf("not a JSON object {\"cases\": [...]}: %w", err)
		}
		if top.Cases == nil {
			return nil, errors.New(`no "cases" list in the JSON object; want {"cases": [{...}, ...]}`)
		}
		raw = *top.Cases
	default:
		return nil, errors.New(`not JSON: want {"cases": [...]} or a JSON array of cases`)
	}
	if len(raw) == 0 {
		return nil, errors.New("the file holds no case")
	}
	cases := make([]LossCase, len(raw))
	for i, r := range raw {
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cases[i]); err != nil {
			return nil, fmt.Errorf("case %d: %w", i, err)
		}
		if err := cases[i].check(); err != nil {
			return nil, fmt.Errorf("case %d: %w", i, err)
		}
	}
	return cases, nil
}

// Objective returns the case's objective, validated.
func (c *LossCase) Objective() (Objective, error) {
	o := Objective{
		LossType:                 c.LossType,
		Beta:                     c.Beta,
		EpsilonLow:               c.EpsilonLow,
		EpsilonHigh:              c.EpsilonHigh,
		ScaleRewards:             c.ScaleRewards,
		MaxCompletionLength:      c.MaxCompletionLength,
		MaskTruncatedCompletions: c.MaskTruncatedCompletions,
		ImportanceSamplingCap:    c.ImportanceSamplingCap,
	}
	if o.ScaleRewards == "" {
		o.ScaleRewards = ScaleGroup
	}
	if c.EngineLogps != nil {
		o.ImportanceSamplingCorrection = true
		if o.ImportanceSamplingCap == 0 {
			o.ImportanceSamplingCap = 3
		}
	}
	return o, o.Validate()
}

// maxCaseValues bounds N·T of one case.
const maxCaseValues = 1 << 26

// check verifies the case's sizes and values.
func (c *LossCase) check() error {
	if c.Groups <= 0 || c.GroupSize <= 0 {
		return fmt.Errorf("groups %d and group_size %d must be positive", c.Groups, c.GroupSize)
	}
	n := c.Groups * c.GroupSize
	if len(c.Rewards) != n {
		return fmt.Errorf("rewards holds %d values; want groups·group_size = %d", len(c.Rewards), n)
	}
	if len(c.NewLogps) == 0 || len(c.NewLogps[0]) == 0 {
		return errors.New("new_logps is missing or empty; want [N][T] per-token log-probs")
	}
	t := len(c.NewLogps[0])
	if n*t > maxCaseValues {
		return fmt.Errorf("N·T = %d·%d is more than %d values", n, t, maxCaseValues)
	}
	for _, m := range []struct {
		name     string
		v        [][]float64
		required bool
	}{{"mask", c.Mask, true}, {"new_logps", c.NewLogps, true}, {"old_logps", c.OldLogps, true},
		{"ref_logps", c.RefLogps, c.Beta != 0}, {"engine_logps", c.EngineLogps, false}} {
		if m.v == nil && !m.required {
			continue
		}
		if len(m.v) != n {
			return fmt.Errorf("%s has %d rows; want N = %d", m.name, len(m.v), n)
		}
		for i, row := range m.v {
			if len(row) != t {
				return fmt.Errorf("%s row %d has %d values; want T = %d like new_logps", m.name, i, len(row), t)
			}
			for j, x := range row {
				if !finite(x) {
					return fmt.Errorf("%s[%d][%d] is %v; want a finite number", m.name, i, j, x)
				}
				if m.name == "mask" && x != 0 && x != 1 {
					return fmt.Errorf("mask[%d][%d] is %v; want 0 or 1", i, j, x)
				}
			}
		}
	}
	if c.Truncated != nil && len(c.Truncated) != n {
		return fmt.Errorf("truncated has %d values; want N = %d", len(c.Truncated), n)
	}
	if _, err := c.Objective(); err != nil {
		return err
	}
	return nil
}

// RunLossCase computes the case's loss and its gradient with respect to
// new_logps on backend b: advantages from the rewards (Advantages), then
// Loss and GoMLX's autodiff, in float32.
func RunLossCase(b backends.Backend, c *LossCase) (res LossResult, err error) {
	if err := c.check(); err != nil {
		return res, fmt.Errorf("grpo: %w", err)
	}
	o, _ := c.Objective()
	adv, err := Advantages(c.Rewards, c.GroupSize, o.ScaleRewards)
	if err != nil {
		return res, err
	}
	n, t := len(c.NewLogps), len(c.NewLogps[0])
	withRef := c.RefLogps != nil
	withTrunc := c.Truncated != nil
	exec, err := NewExec(b, func(in []*Node) []*Node {
		li := LossInputs{NewLogps: in[0], OldLogps: in[1], Mask: in[2], Advantages: in[3], Keep: in[4]}
		rest := in[5:]
		if withRef {
			li.RefLogps, rest = rest[0], rest[1:]
		}
		if o.ImportanceSamplingCorrection {
			li.EngineLogps, rest = rest[0], rest[1:]
		}
		if withTrunc {
			li.Truncated = rest[0]
		}
		out := Loss(o, li)
		return []*Node{out.Loss, Gradient(out.Loss, li.NewLogps)[0]}
	})
	if err != nil {
		return res, fmt.Errorf("grpo: building the loss graph: %w", err)
	}
	defer exec.Finalize()
	args := []any{matrix(c.NewLogps), matrix(c.OldLogps), matrix(c.Mask),
		tensors.FromValue(adv.Advantages), tensors.FromValue(adv.Keep)}
	if withRef {
		args = append(args, matrix(c.RefLogps))
	}
	if o.ImportanceSamplingCorrection {
		args = append(args, matrix(c.EngineLogps))
	}
	if withTrunc {
		args = append(args, tensors.FromValue(toFloat32(c.Truncated)))
	}
	outs, err := exec.Exec(args...)
	if err != nil {
		return res, fmt.Errorf("grpo: running the loss graph: %w", err)
	}
	res.Loss = float64(tensors.MustCopyFlatData[float32](outs[0])[0])
	grad := tensors.MustCopyFlatData[float32](outs[1])
	res.GradNewLogps = make([][]float64, n)
	for i := range n {
		res.GradNewLogps[i] = make([]float64, t)
		for j := range t {
			res.GradNewLogps[i][j] = float64(grad[i*t+j])
		}
	}
	return res, nil
}

// matrix returns rows as a float32 [len(rows), len(rows[0])] tensor.
func matrix(rows [][]float64) *tensors.Tensor {
	t := len(rows[0])
	flat := make([]float32, 0, len(rows)*t)
	for _, r := range rows {
		flat = append(flat, toFloat32(r)...)
	}
	return tensors.FromFlatDataAndDimensions(flat, len(rows), t)
}

func toFloat32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}
