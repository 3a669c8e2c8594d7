package lora

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/mmft-go/mmft/safetensors"
)

// WeightsFile is the name of PEFT's adapter weights file in an adapter folder.
const WeightsFile = "adapter_model.safetensors"

// legacyWeightsFile is the pickled PyTorch form PEFT writes with safe_serialization=False.
const legacyWeightsFile = "adapter_model.bin"

// peftPrefix starts every key PEFT saves for a model wrapped by PeftModel.
const peftPrefix = "base_model.model."

// Load reads a PEFT LoRA adapter folder: adapter_config.json and
// adapter_model.safetensors (F32, BF16 or F16 weights, converted to float32).
// Keys are accepted in every form PEFT writes for Qwen2-VL —
// "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight"
// (transformers 5), "base_model.model.model.layers.0…" (older), with or
// without the adapter name (".lora_A.default.weight") — and mapped to
// canonical module names. Every problem found (a lora_A without its lora_B,
// mismatched ranks, tensors of unsupported variants) is reported in one error.
func Load(dir string) (*Adapter, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("lora: adapter folder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("lora: %s is not a folder; give the adapter folder holding %s and %s", dir, ConfigFile, WeightsFile)
	}
	wpath := filepath.Join(dir, WeightsFile)
	if _, err := os.Stat(wpath); err != nil {
		if _, err2 := os.Stat(filepath.Join(dir, legacyWeightsFile)); err2 == nil {
			return nil, fmt.Errorf("lora: %s holds %s, a pickled PyTorch file mmft does not read (unpickling can run code); convert it once with Python: "+
				"import torch, safetensors.torch; safetensors.torch.save_file(torch.load(%q, map_location=\"cpu\"), %q, metadata={\"format\": \"pt\"})",
				dir, legacyWeightsFile, filepath.Join(dir, legacyWeightsFile), wpath)
		}
		return nil, fmt.Errorf("lora: %s has no %s: %w", dir, WeightsFile, err)
	}
	cfg, err := ReadConfig(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	f, err := safetensors.Open(wpath)
	if err != nil {
		return nil, fmt.Errorf("lora: %w", err)
	}
	defer f.Close()
	ad, err := fromTensors(cfg, f)
	if err != nil {
		return nil, fmt.Errorf("lora: %s: %w", wpath, err)
	}
	return ad, nil
}

// parsedKey is one adapter tensor key split into its parts.
type parsedKey struct {
	module  string // canonical module name
	part    string // "lora_A" or "lora_B"
	adapter string // adapter name inside the key ("" when absent)
}

// parseKey splits a PEFT adapter key, or explains why it is not a LoRA A/B weight.
func parseKey(key string) (parsedKey, error) {
	s := strings.TrimPrefix(key, peftPrefix)
	s, ok := strings.CutSuffix(s, ".weight")
	if !ok {
		if strings.Contains(s, ".lora_B.") || strings.Contains(s, ".lora_A.") {
			return parsedKey{}, fmt.Errorf("%s is a LoRA bias (lora_bias), which mmft does not support", key)
		}
		if strings.Contains(s, "lora_embedding_") {
			return parsedKey{}, fmt.Errorf("%s is an embedding LoRA weight, which mmft does not support", key)
		}
		if strings.Contains(s, "lora_magnitude_vector") {
			return parsedKey{}, fmt.Errorf("%s is a DoRA magnitude vector; DoRA is not supported", key)
		}
		return parsedKey{}, fmt.Errorf("%s is not a LoRA weight (modules_to_save or another PEFT method?)", key)
	}
	parts := strings.Split(s, ".")
	for i := len(parts) - 1; i >= 1 && i >= len(parts)-2; i-- {
		if parts[i] != "lora_A" && parts[i] != "lora_B" {
			continue
		}
		pk := parsedKey{module: CanonicalName(strings.Join(parts[:i], ".")), part: parts[i]}
		if i == len(parts)-2 {
			pk.adapter = parts[i+1]
		}
		return pk, nil
	}
	if strings.Contains(s, "lora_magnitude_vector") {
		return parsedKey{}, fmt.Errorf("%s is a DoRA magnitude vector; DoRA is not supported", key)
	}
	if strings.Contains(s, "lora_embedding_") {
		return parsedKey{}, fmt.Errorf("%s is an embedding LoRA weight, which mmft does not support", key)
	}
	return parsedKey{}, fmt.Errorf("%s is not a LoRA A/B weight (a modules_to_save copy or another PEFT method?); mmft loads LoRA adapters only", key)
}

// fromTensors builds an adapter from the tensors of an adapter file.
func fromTensors(cfg *Config, r safetensors.Reader) (*Adapter, error) {
	type pair struct{ a, b *safetensors.Info }
	pairs := map[string]*pair{}
	var problems []string
	adapters := map[string]bool{}
	for _, key := range r.Names() {
		pk, err := parseKey(key)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		adapters[pk.adapter] = true
		info, _ := r.Tensor(key)
		p := pairs[pk.module]
		if p == nil {
			p = &pair{}
			pairs[pk.module] = p
		}
		slot := &p.a
		if pk.part == "lora_B" {
			slot = &p.b
		}
		if *slot != nil {
			problems = append(problems, fmt.Sprintf("module %s has two %s tensors (keys with different prefixes or adapter names)", pk.module, pk.part))
			continue
		}
		*slot = &info
	}
	if len(adapters) > 1 {
		var names []string
		for a := range adapters {
			names = append(names, fmt.Sprintf("%q", a))
		}
		sort.Strings(names)
		problems = append(problems, fmt.Sprintf("the file mixes adapter names %s; save one adapter per folder", strings.Join(names, ", ")))
	}
	m, err := cfg.compile()
	if err != nil {
		return nil, err
	}
	ad := &Adapter{Config: cfg, Modules: make(map[string]*Module, len(pairs))}
	for _, name := range slices.Sorted(maps.Keys(pairs)) {
		p := pairs[name]
		if p.a == nil || p.b == nil {
			missing := "lora_A"
			if p.b == nil {
				missing = "lora_B"
			}
			problems = append(problems, fmt.Sprintf("module %s has no %s", name, missing))
			continue
		}
		if len(p.a.Shape) != 2 || len(p.b.Shape) != 2 || p.a.Shape[0] != p.b.Shape[1] {
			problems = append(problems, fmt.Sprintf("module %s: lora_A %v and lora_B %v are not [r, in] and [out, r] with one r", name, p.a.Shape, p.b.Shape))
			continue
		}
		a, errA := safetensors.ToFloat32(*p.a)
		b, errB := safetensors.ToFloat32(*p.b)
		if err := errors.Join(errA, errB); err != nil {
			problems = append(problems, fmt.Sprintf("module %s: %v", name, err))
			continue
		}
		rank := p.a.Shape[0]
		cr, alpha, err := m.rankAlpha(cfg, PEFTModuleName(name))
		if err == nil && cr != rank {
			// Patterns written for older transformers name the layers canonically.
			if cr2, alpha2, err2 := m.rankAlpha(cfg, name); err2 == nil && cr2 == rank {
				cr, alpha = cr2, alpha2
			}
		}
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if cr != rank {
			problems = append(problems, fmt.Sprintf("module %s: %s gives r=%d but lora_A has %d rows; fix r / rank_pattern in %s", name, ConfigFile, cr, rank, ConfigFile))
			continue
		}
		mod := &Module{Name: name, R: rank, In: p.a.Shape[1], Out: p.b.Shape[0], Alpha: alpha, Scale: cfg.Scale(rank, alpha), A: a, B: b}
		if err := mod.check(); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		ad.Modules[name] = mod
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%d problem(s) in the adapter weights:\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
	if len(ad.Modules) == 0 {
		return nil, errors.New("the adapter holds no LoRA weights")
	}
	return ad, nil
}

// PEFTKey returns the key PEFT (0.21, transformers 5) saves the given part
// ("lora_A" or "lora_B") of a module under, e.g.
// "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight".
func PEFTKey(canonical, part string) string {
	return peftPrefix + PEFTModuleName(canonical) + "." + part + ".weight"
}

// Save writes the adapter as a PEFT adapter folder: adapter_config.json and
// adapter_model.safetensors (float32, keys as PEFT 0.21 writes them for
// Qwen2-VL under transformers 5, metadata {"format": "pt"}), each through a
// temporary file and a rename. It refuses an adapter whose ranks or alphas
// differ from what its configuration gives, since PEFT would load it wrongly.
func (a *Adapter) Save(dir string) error {
	if a == nil || a.Config == nil {
		return errors.New("lora: Save: the adapter has no configuration")
	}
	if len(a.Modules) == 0 {
		return errors.New("lora: Save: the adapter has no modules")
	}
	m, err := a.Config.compile()
	if err != nil {
		return fmt.Errorf("lora: %w", err)
	}
	tensors := make([]safetensors.NamedTensor, 0, 2*len(a.Modules))
	for _, name := range a.Names() {
		mod := a.Modules[name]
		if mod.Name != name {
			return fmt.Errorf("lora: Save: module stored under %s is named %s", name, mod.Name)
		}
		if err := mod.check(); err != nil {
			return err
		}
		r, alpha, err := m.rankAlpha(a.Config, PEFTModuleName(name))
		if err != nil {
			return err
		}
		if r != mod.R || alpha != mod.Alpha {
			return fmt.Errorf("lora: Save: module %s has r=%d alpha=%v but its configuration gives r=%d alpha=%v; PEFT would build it with the latter; set rank_pattern / alpha_pattern to match", name, mod.R, mod.Alpha, r, alpha)
		}
		tensors = append(tensors,
			safetensors.FromFloat32(PEFTKey(name, "lora_A"), []int{mod.R, mod.In}, mod.A),
			safetensors.FromFloat32(PEFTKey(name, "lora_B"), []int{mod.Out, mod.R}, mod.B))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lora: %w", err)
	}
	if err := safetensors.Write(filepath.Join(dir, WeightsFile), tensors, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("lora: saving adapter weights: %w", err)
	}
	return a.Config.WriteConfig(dir)
}

// Check verifies the adapter against the base model's parameter shapes
// (canonical names, as for Config.Targets): every module must adapt a linear
// layer of the model with the same [out, in], and the modules must be exactly
// those the configuration targets on this model (PEFT would otherwise leave
// targeted layers at their initialization or ignore stray weights). All
// mismatches are reported in one error.
func (a *Adapter) Check(params map[string][]int) error {
	var problems []string
	for _, name := range a.Names() {
		m := a.Modules[name]
		shape, ok := params[name+".weight"]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s is not a layer of the base model", name))
		case len(shape) != 2 || shape[0] != m.Out || shape[1] != m.In:
			problems = append(problems, fmt.Sprintf("%s: the adapter expects a [%d, %d] weight, the model has %v", name, m.Out, m.In, shape))
		}
	}
	targets, err := a.Config.Targets(params)
	if err != nil {
		problems = append(problems, err.Error())
	}
	var missing []string
	for _, t := range targets {
		if a.Modules[t] == nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("target_modules selects %d layer(s) the adapter has no weights for: %s", len(missing), strings.Join(head(missing, 5), ", ")))
	}
	if len(problems) > 0 {
		return fmt.Errorf("lora: the adapter does not fit the base model:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}
