package lora

import (
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// Module is the adapter of one linear layer y = x·Wᵀ, W of shape [Out, In]:
// the layer becomes y = x·Wᵀ + Scale·(x·Aᵀ)·Bᵀ.
type Module struct {
	// Name is the canonical module name, e.g. "model.layers.0.self_attn.q_proj".
	Name string
	// R is the rank; In and Out are the base layer's input and output widths.
	R, In, Out int
	// Alpha is the module's lora_alpha and Scale the factor applied to B·A.
	Alpha, Scale float64
	// A is lora_A, row-major [R, In].
	A []float32
	// B is lora_B, row-major [Out, R].
	B []float32
}

// check verifies that the module's sizes agree with its tensors.
func (m *Module) check() error {
	if m.R <= 0 || m.In <= 0 || m.Out <= 0 {
		return fmt.Errorf("lora: module %s has r=%d in=%d out=%d; all must be positive", m.Name, m.R, m.In, m.Out)
	}
	if len(m.A) != m.R*m.In {
		return fmt.Errorf("lora: module %s: lora_A holds %d values, want r·in = %d·%d", m.Name, len(m.A), m.R, m.In)
	}
	if len(m.B) != m.Out*m.R {
		return fmt.Errorf("lora: module %s: lora_B holds %d values, want out·r = %d·%d", m.Name, len(m.B), m.Out, m.R)
	}
	if math.IsNaN(m.Scale) || math.IsInf(m.Scale, 0) {
		return fmt.Errorf("lora: module %s has scale %v", m.Name, m.Scale)
	}
	return nil
}

// Adapter is a set of LoRA modules with their configuration.
type Adapter struct {
	// Config is the adapter's PEFT configuration.
	Config *Config
	// Modules maps canonical module names to their adapters.
	Modules map[string]*Module
}

// Names returns the canonical names of the adapted modules, sorted.
func (a *Adapter) Names() []string {
	return slices.Sorted(maps.Keys(a.Modules))
}

// NumParams returns the number of trainable values (all A and B entries).
func (a *Adapter) NumParams() int {
	n := 0
	for _, m := range a.Modules {
		n += len(m.A) + len(m.B)
	}
	return n
}

// NewAdapter creates adapters for the target modules (canonical names, as
// returned by Config.Targets), initialized as PEFT's init_lora_weights says:
//   - true: A Kaiming-uniform with a=√5 (uniform in ±1/√in, torch.nn.Linear's
//     default), B zero, so the adapted model starts equal to the base;
//   - "gaussian": A normal with standard deviation 1/r, B zero;
//   - false: A and B both as torch.nn.Linear's default (B uniform in ±1/√r).
//
// shapes gives each base weight's shape [out, in], keyed by the parameter
// name (module + ".weight") or the module name. Ranks and alphas follow
// rank_pattern / alpha_pattern. Random numbers come from a PCG generator
// seeded with seed and the module name, so the result does not depend on the
// order of targets (it does not reproduce torch's random stream).
//
// fan_in_fan_out is turned off, as PEFT does for ordinary linear layers.
// modules_to_save and initializations other than the three above are refused.
func NewAdapter(cfg *Config, targets []string, shapes map[string][]int, seed uint64) (*Adapter, error) {
	if cfg == nil {
		return nil, errors.New("lora: NewAdapter needs a configuration")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("lora: %w", err)
	}
	if len(cfg.ModulesToSave) > 0 {
		return nil, fmt.Errorf("lora: modules_to_save %q is not supported: mmft trains LoRA adapters only, not full modules; remove modules_to_save", cfg.ModulesToSave)
	}
	init := strings.ToLower(cfg.InitLoRAWeights)
	switch init {
	case "true", "", "gaussian", "false":
	default:
		return nil, fmt.Errorf("lora: init_lora_weights %q is not supported; use true (Kaiming-uniform A, zero B), \"gaussian\" or false", cfg.InitLoRAWeights)
	}
	if len(targets) == 0 {
		return nil, errors.New("lora: NewAdapter got no target modules; choose them with Config.Targets")
	}
	c := *cfg
	c.FanInFanOut = false
	m, err := c.compile()
	if err != nil {
		return nil, fmt.Errorf("lora: %w", err)
	}
	ad := &Adapter{Config: &c, Modules: make(map[string]*Module, len(targets))}
	for _, name := range targets {
		if _, dup := ad.Modules[name]; dup {
			return nil, fmt.Errorf("lora: target module %s is listed twice", name)
		}
		shape, ok := shapes[name+".weight"]
		if !ok {
			shape, ok = shapes[name]
		}
		if !ok {
			return nil, fmt.Errorf("lora: no shape for target module %s (looked for %s.weight); pass the base model's parameter shapes", name, name)
		}
		if len(shape) != 2 || shape[0] <= 0 || shape[1] <= 0 {
			return nil, fmt.Errorf("lora: target module %s has weight shape %v; LoRA needs a linear layer's [out, in]", name, shape)
		}
		r, alpha, err := m.rankAlpha(&c, PEFTModuleName(name))
		if err != nil {
			return nil, err
		}
		mod := &Module{Name: name, R: r, Out: shape[0], In: shape[1], Alpha: alpha, Scale: c.Scale(r, alpha),
			A: make([]float32, r*shape[1]), B: make([]float32, shape[0]*r)}
		h := fnv.New64a()
		h.Write([]byte(name))
		rng := rand.New(rand.NewPCG(seed, h.Sum64()))
		switch init {
		case "gaussian":
			std := 1 / float64(r)
			for i := range mod.A {
				mod.A[i] = float32(rng.NormFloat64() * std)
			}
		default:
			fillKaimingUniform(rng, mod.A, mod.In)
			if init == "false" {
				fillKaimingUniform(rng, mod.B, mod.R)
			}
		}
		ad.Modules[name] = mod
	}
	return ad, nil
}

// fillKaimingUniform fills w as torch.nn.init.kaiming_uniform_(w, a=√5) does
// for a weight with the given fan-in: uniform in ±gain·√(3/fan_in) with
// gain = √(2/(1+a²)), that is ±1/√fan_in.
func fillKaimingUniform(rng *rand.Rand, w []float32, fanIn int) {
	a := math.Sqrt(5)
	gain := math.Sqrt(2 / (1 + a*a))
	bound := gain * math.Sqrt(3/float64(fanIn))
	for i := range w {
		w[i] = float32((2*rng.Float64() - 1) * bound)
	}
}

// Delta returns Scale·B·A, the change the module makes to the base weight,
// row-major [Out, In], computed in float32 as PEFT's get_delta_weight does.
func (m *Module) Delta() ([]float32, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	d := make([]float32, m.Out*m.In)
	for o := 0; o < m.Out; o++ {
		m.deltaRow(o, d[o*m.In:(o+1)*m.In])
	}
	return d, nil
}

// deltaRow writes row o of Scale·B·A into row (len In).
func (m *Module) deltaRow(o int, row []float32) {
	clear(row)
	for k := 0; k < m.R; k++ {
		b := m.B[o*m.R+k]
		if b == 0 {
			continue
		}
		a := m.A[k*m.In : (k+1)*m.In]
		for i, av := range a {
			row[i] += b * av
		}
	}
	s := float32(m.Scale)
	for i := range row {
		row[i] *= s
	}
}

// Merge adds the module's update to a base weight in place:
// W ← W + Scale·B·A, W row-major [out, in] (torch.nn.Linear's layout).
func Merge(weight []float32, out, in int, m *Module) error {
	return addDelta(weight, out, in, m, 1)
}

// Unmerge removes the module's update from a merged weight in place:
// W ← W − Scale·B·A. Merge then Unmerge restores W up to float32 rounding.
func Unmerge(weight []float32, out, in int, m *Module) error {
	return addDelta(weight, out, in, m, -1)
}

func addDelta(weight []float32, out, in int, m *Module, sign float32) error {
	if m == nil {
		return errors.New("lora: merge: nil module")
	}
	if err := m.check(); err != nil {
		return err
	}
	if out != m.Out || in != m.In {
		return fmt.Errorf("lora: merge %s: base weight is [%d, %d] but the adapter was made for [%d, %d]", m.Name, out, in, m.Out, m.In)
	}
	if len(weight) != out*in {
		return fmt.Errorf("lora: merge %s: base weight holds %d values, want %d·%d", m.Name, len(weight), out, in)
	}
	row := make([]float32, in)
	for o := 0; o < out; o++ {
		m.deltaRow(o, row)
		w := weight[o*in : (o+1)*in]
		for i, v := range row {
			w[i] += sign * v
		}
	}
	return nil
}
