package qwen2vl

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/safetensors"
)

// Options configure loading.
type Options struct {
	// DType of the weights and of the matmul inputs: dtypes.Float32 (default,
	// CPU) or dtypes.BFloat16 (GPU). With bf16 the default mixed-precision
	// policy applies (see Weights): residual stream, norms, rotary, softmax,
	// text attention scores and logits stay float32; the KV cache is bf16.
	DType dtypes.DType
	// Device is the backend device the weights are placed on (default 0);
	// run programs over them with the same execution.Placement.
	Device backends.DeviceNum
}

// Model is a loaded Qwen2-VL: its configuration and its parameters, which
// live on the backend's device from loading on.
type Model struct {
	Config  Config
	DType   dtypes.DType
	Backend backends.Backend
	Device  backends.DeviceNum // where the weights (and adapters made by LoRAFromAdapter) live

	names  []string // canonical names, in ParamSpecs order
	params map[string]*tensors.Tensor
}

// Load reads config.json and the safetensors weights (single file or shards)
// from dir and places them on backend's device.
func Load(backend backends.Backend, dir string, opts Options) (*Model, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	st, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, fmt.Errorf("opening weights in %s: %w", dir, err)
	}
	defer st.Close()
	m, err := LoadFrom(backend, cfg, ReaderSource{st}, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return m, nil
}

// LoadFrom builds a model from cfg and an open tensor source, checking every
// tensor first and converting them one at a time onto the device.
func LoadFrom(backend backends.Backend, cfg Config, src TensorSource, opts Options) (*Model, error) {
	dt := opts.DType
	if dt == dtypes.InvalidDType {
		dt = dtypes.Float32
	}
	if dt != dtypes.Float32 && dt != dtypes.BFloat16 {
		return nil, fmt.Errorf("model dtype %s is not supported: use float32 or bfloat16", dt)
	}
	keys, err := plan(cfg, src)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, DType: dt, Backend: backend, Device: opts.Device, params: map[string]*tensors.Tensor{}}
	for _, spec := range cfg.ParamSpecs() {
		sdt, shape, data, err := src.Raw(keys[spec.Name])
		if err != nil {
			return nil, err
		}
		t, err := toDevice(backend, opts.Device, sdt, shape, data, dt)
		if err != nil {
			return nil, fmt.Errorf("loading %s: %w", spec.Name, err)
		}
		m.names = append(m.names, spec.Name)
		m.params[spec.Name] = t
	}
	return m, nil
}

// ParamNames lists the canonical parameter names in a fixed order.
func (m *Model) ParamNames() []string { return append([]string(nil), m.names...) }

// Param returns a parameter by canonical name (nil when absent); it stays on
// the device.
func (m *Model) Param(name string) *tensors.Tensor { return m.params[name] }

// Save writes config-compatible weights in the Hub layout (model.safetensors
// with canonical keys) into dir, in the model's dtype.
func (m *Model) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var out []safetensors.NamedTensor
	for _, name := range m.names {
		t := m.params[name]
		local, err := t.LocalClone()
		if err != nil {
			return fmt.Errorf("reading %s from the device: %w", name, err)
		}
		var data []byte
		if err := local.ConstBytes(func(b []byte) { data = append([]byte(nil), b...) }); err != nil {
			return err
		}
		sdt := safetensors.DType("F32")
		if t.DType() == dtypes.BFloat16 {
			sdt = "BF16"
		}
		out = append(out, safetensors.NamedTensor{Name: name, DType: sdt, Shape: t.Shape().Dimensions, Data: data})
	}
	return safetensors.Write(filepath.Join(dir, "model.safetensors"), out, map[string]string{"format": "pt"})
}

// ReaderSource adapts a safetensors.Reader (Open, OpenDir, OpenIndex) to TensorSource.
type ReaderSource struct{ R safetensors.Reader }

// Names lists the tensors.
func (s ReaderSource) Names() []string { return s.R.Names() }

// Raw returns a tensor's dtype, shape and mapped bytes.
func (s ReaderSource) Raw(name string) (string, []int, []byte, error) {
	t, ok := s.R.Tensor(name)
	if !ok {
		return "", nil, nil, fmt.Errorf("no tensor %q", name)
	}
	return string(t.DType), t.Shape, t.Data, nil
}

// LoRA is a set of low-rank adapters keyed by canonical module name (e.g.
// "model.layers.0.self_attn.q_proj"), each adding Scale·(x·Aᵀ)·Bᵀ.
type LoRA struct {
	Modules map[string]LoRAModule
}

// LoRAModule is one adapted projection: A [r, in], B [out, r], Scale = alpha/r.
type LoRAModule struct {
	A, B  *tensors.Tensor
	Scale float64
}

// sortedModules lists the adapter's module names in order.
func (l *LoRA) sortedModules() []string {
	if l == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(l.Modules))
}

// signature names what a graph bakes in of an adapter: its module names and
// scales (A and B shapes are input shapes, which the exec keys on itself).
func (l *LoRA) signature(mods []string) string {
	if l == nil {
		return "none"
	}
	var b strings.Builder
	for _, name := range mods {
		fmt.Fprintf(&b, "%s*%g;", name, l.Modules[name].Scale)
	}
	return b.String()
}

// Validate checks that every module names one of the seven LLM projections
// of this model with matching shapes.
func (l *LoRA) Validate(cfg Config) error {
	if l == nil {
		return nil
	}
	specs := map[string][]int{}
	for _, s := range cfg.ParamSpecs() {
		specs[s.Name] = s.Shape
	}
	var errs []error
	for _, name := range l.sortedModules() {
		mod := l.Modules[name]
		w, ok := specs[name+".weight"]
		if !ok || len(w) != 2 || !isLLMProjection(name) {
			errs = append(errs, fmt.Errorf("adapter module %q is not an LLM projection of this model", name))
			continue
		}
		a, b := mod.A.Shape().Dimensions, mod.B.Shape().Dimensions
		if len(a) != 2 || len(b) != 2 || a[1] != w[1] || b[0] != w[0] || a[0] != b[1] {
			errs = append(errs, fmt.Errorf("adapter module %q: A %v / B %v do not fit weight %v", name, a, b, w))
		}
	}
	return errors.Join(errs...)
}

// isLLMProjection reports whether a module name ends in one of the seven
// LLM projections an adapter may target.
func isLLMProjection(name string) bool {
	return slices.ContainsFunc([]string{".self_attn.q_proj", ".self_attn.k_proj", ".self_attn.v_proj", ".self_attn.o_proj", ".mlp.gate_proj", ".mlp.up_proj", ".mlp.down_proj"},
		func(s string) bool { return strings.HasSuffix(name, s) })
}

// Binding lays out a model's parameters (and an optional adapter) as the
// first inputs of a graph: run a graph with Tensors() followed by its own
// inputs, and inside the graph builder call Weights on the input nodes to get
// the Weights view and the remaining (own) inputs. Adapter tensors are graph
// inputs, so a trainer can take gradients with respect to the A and B nodes
// (Weights.LoRA[module].A / .B). No weight is copied.
type Binding struct {
	cfg     Config
	dt      dtypes.DType
	names   []string
	mods    []string
	scales  []float64
	tensors []*tensors.Tensor
	layout  string
}

// Bind lays out the model's parameters and l (nil = no adapter, the base /
// reference model) as graph inputs, after checking l against the config.
func (m *Model) Bind(l *LoRA) (*Binding, error) {
	if err := l.Validate(m.Config); err != nil {
		return nil, fmt.Errorf("qwen2vl: %w", err)
	}
	mods := l.sortedModules()
	b := &Binding{cfg: m.Config, dt: m.DType, names: m.names, mods: mods, layout: l.signature(mods)}
	for _, name := range m.names {
		b.tensors = append(b.tensors, m.params[name])
	}
	for _, name := range mods {
		mod := l.Modules[name]
		b.scales = append(b.scales, mod.Scale)
		b.tensors = append(b.tensors, mod.A, mod.B)
	}
	return b, nil
}

// Tensors returns the bound tensors in input order: every parameter in
// ParamNames order, then each adapter module's A and B (modules sorted by name).
func (b *Binding) Tensors() []*tensors.Tensor { return b.tensors }

// NumInputs is len(Tensors()): the number of graph inputs the binding takes.
func (b *Binding) NumInputs() int { return len(b.tensors) }

// Layout names what a graph bakes in of the binding (the adapter's module
// names and scales; shapes are input shapes): use it in program variants so
// that a new adapter of the same layout reuses compiled programs.
func (b *Binding) Layout() string { return b.layout }

// Weights maps the first NumInputs nodes of a graph's inputs to the Weights
// view and returns the remaining nodes.
func (b *Binding) Weights(nodes []*graph.Node) (*Weights, []*graph.Node) {
	w := &Weights{Config: b.cfg, DType: b.dt, Params: make(map[string]*graph.Node, len(b.names)), LoRA: map[string]LoRANodes{}}
	for i, name := range b.names {
		w.Params[name] = nodes[i]
	}
	n := len(b.names)
	for i, name := range b.mods {
		w.LoRA[name] = LoRANodes{A: nodes[n+2*i], B: nodes[n+2*i+1], Scale: b.scales[i]}
	}
	return w, nodes[len(b.tensors):]
}
