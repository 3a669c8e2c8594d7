package lora

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dlclark/regexp2"
)

// PEFTModuleName returns the module name PEFT sees, with transformers 5, for
// the Qwen2-VL layer of the given canonical (Hub) name:
// "model.layers.…" → "model.language_model.layers.…", "visual.…" →
// "model.visual.…"; "lm_head" and names already in transformers 5 form are
// returned unchanged.
func PEFTModuleName(canonical string) string {
	switch {
	case strings.HasPrefix(canonical, "model.language_model."), strings.HasPrefix(canonical, "model.visual."):
		return canonical
	case strings.HasPrefix(canonical, "model."):
		return "model.language_model." + strings.TrimPrefix(canonical, "model.")
	case strings.HasPrefix(canonical, "visual."):
		return "model." + canonical
	}
	return canonical
}

// CanonicalName is the inverse of PEFTModuleName: it maps a module name of
// transformers 5 ("model.language_model.…", "model.visual.…") or of older
// transformers ("model.…", "visual.…") to the canonical Hub name.
func CanonicalName(module string) string {
	switch {
	case strings.HasPrefix(module, "model.language_model."):
		return "model." + strings.TrimPrefix(module, "model.language_model.")
	case strings.HasPrefix(module, "model.visual."):
		return strings.TrimPrefix(module, "model.")
	}
	return module
}

// embeddingNames are the last name components of embedding tables, which have
// 2-D weights but are not linear layers.
var embeddingNames = map[string]bool{
	"embed_tokens": true, "wte": true, "wpe": true, "word_embeddings": true,
	"position_embeddings": true, "token_type_embeddings": true, "embed_positions": true,
}

// outputHeadNames are the output heads "all-linear" leaves out, as PEFT leaves
// out the model's output embeddings.
var outputHeadNames = map[string]bool{"lm_head": true}

// Targets returns, sorted, the canonical names of the modules that get
// adapters, choosing them exactly as PEFT 0.21 does for Qwen2-VL under
// transformers 5 (patterns see PEFT's module names, see PEFTModuleName):
//   - target_modules as a list: a module matches when its name equals an
//     entry or ends with "." + entry; then, unless it equalled an entry,
//     layers_to_transform keeps only the layers listed, the layer index being
//     the number after layers_pattern (or after the first name component
//     followed by a number when layers_pattern is unset);
//   - as a string: a regular expression that must match the whole name;
//   - "all-linear": every linear layer but the output head (lm_head),
//     including the vision tower's, as PEFT does;
//   - exclude_modules and modules_to_save remove modules.
//
// params maps the base model's canonical parameter names (e.g.
// "model.layers.0.self_attn.q_proj.weight") to their shapes; a module is a
// linear layer when it has a 2-D ".weight" and is not an embedding table.
// It is an error when nothing matches or when a pattern selects a module that
// is not a linear layer (a norm, an embedding, a convolution, an attention
// block), which mmft cannot adapt.
func (c *Config) Targets(params map[string][]int) ([]string, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("lora: %w", err)
	}
	m, err := c.compile()
	if err != nil {
		return nil, fmt.Errorf("lora: %w", err)
	}
	linear := map[string]bool{} // canonical module name → is a linear layer
	for name, shape := range params {
		parts := strings.Split(name, ".")
		for i := 1; i < len(parts); i++ {
			mod := strings.Join(parts[:i], ".")
			if _, ok := linear[mod]; !ok {
				linear[mod] = false
			}
		}
		if mod, ok := strings.CutSuffix(name, ".weight"); ok && len(shape) == 2 && !embeddingNames[parts[len(parts)-2]] {
			linear[mod] = true
		}
	}
	modules := make([]string, 0, len(linear))
	for mod := range linear {
		modules = append(modules, mod)
	}
	sort.Strings(modules)

	var targets, notLinear []string
	for _, mod := range modules {
		peftName := PEFTModuleName(mod)
		var ok bool
		if c.TargetModules.IsAllLinear() {
			last := mod[strings.LastIndexByte(mod, '.')+1:]
			ok = linear[mod] && !outputHeadNames[last] && !m.excluded(c, peftName)
		} else {
			ok, err = m.matches(c, peftName)
			if err != nil {
				return nil, fmt.Errorf("lora: matching target_modules against %s: %w", peftName, err)
			}
		}
		if !ok {
			continue
		}
		if !linear[mod] {
			notLinear = append(notLinear, mod)
			continue
		}
		targets = append(targets, mod)
	}
	if len(notLinear) > 0 {
		return nil, fmt.Errorf("lora: target_modules %s selects modules that are not linear layers: %s; mmft adapts linear layers only, so narrow target_modules (e.g. list q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)",
			c.describeTargets(), strings.Join(head(notLinear, 5), ", "))
	}
	if len(targets) == 0 {
		msg := fmt.Sprintf("lora: target_modules %s matches no linear layer of the base model (%d modules)", c.describeTargets(), len(modules))
		if c.LayersToTransform != nil {
			msg += fmt.Sprintf(" with layers_to_transform %v and layers_pattern %v", c.LayersToTransform, c.LayersPattern)
		}
		return nil, fmt.Errorf("%s; check the names (PEFT matches suffixes like \"q_proj\" and full regular expressions against names such as %q)",
			msg, PEFTModuleName("model.layers.0.self_attn.q_proj"))
	}
	return targets, nil
}

func head(l []string, n int) []string {
	if len(l) <= n {
		return l
	}
	return append(append([]string{}, l[:n]...), fmt.Sprintf("and %d more", len(l)-n))
}

func (c *Config) describeTargets() string {
	if c.TargetModules.Pattern != "" {
		return strconv.Quote(c.TargetModules.Pattern)
	}
	return fmt.Sprintf("%q", c.TargetModules.Names)
}

// RankAlpha returns the rank and alpha of the module with the given canonical
// name: r and lora_alpha, overridden by the first rank_pattern / alpha_pattern
// entry whose pattern matches the end of its PEFT name (after a dot or at its start).
func (c *Config) RankAlpha(canonical string) (r int, alpha float64, err error) {
	m, err := c.compile()
	if err != nil {
		return 0, 0, fmt.Errorf("lora: %w", err)
	}
	return m.rankAlpha(c, PEFTModuleName(canonical))
}

// matcher holds a configuration's compiled regular expressions.
type matcher struct {
	target, exclude *regexp2.Regexp
	layers          []*regexp2.Regexp
	save            []*regexp2.Regexp
	rank, alpha     []compiledRule
}

type compiledRule struct {
	re    *regexp2.Regexp
	value float64
}

// regexTimeout bounds one match of a user-supplied pattern (backtracking engine).
const regexTimeout = time.Second

// compilePython compiles a Python-syntax regular expression with the
// backtracking engine (Python's re semantics for the constructs used in module
// patterns, including lazy quantifiers and (?P<name>…) groups).
func compilePython(field, expr string) (*regexp2.Regexp, error) {
	// regexp2 spells named groups the .NET way outside its RE2 mode.
	e := strings.ReplaceAll(expr, "(?P<", "(?<")
	re, err := regexp2.Compile(e, regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("adapter config: %s: %q is not a valid regular expression: %v", field, expr, err)
	}
	re.MatchTimeout = regexTimeout
	return re, nil
}

// compile compiles the configuration's patterns the way PEFT uses them.
func (c *Config) compile() (*matcher, error) {
	m := &matcher{}
	var err error
	if p := c.TargetModules.Pattern; p != "" && !c.TargetModules.IsAllLinear() {
		if m.target, err = compilePython("target_modules", `\A(?:`+p+`)\z`); err != nil {
			return nil, err
		}
	}
	if p := c.ExcludeModules.Pattern; p != "" {
		if m.exclude, err = compilePython("exclude_modules", `\A(?:`+p+`)\z`); err != nil {
			return nil, err
		}
	}
	if len(c.LayersPattern) == 0 {
		re, err := compilePython("layers_pattern", `\A.*?\.[^.]*\.(\d+)\.`)
		if err != nil {
			return nil, err
		}
		m.layers = []*regexp2.Regexp{re}
	}
	for _, p := range c.LayersPattern {
		re, err := compilePython("layers_pattern", `\A.*?\.`+p+`\.(\d+)\.`)
		if err != nil {
			return nil, err
		}
		m.layers = append(m.layers, re)
	}
	for _, s := range c.ModulesToSave {
		re, err := compilePython("modules_to_save", `\A(^|.*\.)`+s+`($|\..*)`)
		if err != nil {
			return nil, err
		}
		m.save = append(m.save, re)
	}
	for _, rule := range c.RankPattern {
		re, err := compilePython("rank_pattern", `\A(.*\.)?(`+rule.Pattern+`)$`)
		if err != nil {
			return nil, err
		}
		m.rank = append(m.rank, compiledRule{re, rule.Value})
	}
	for _, rule := range c.AlphaPattern {
		re, err := compilePython("alpha_pattern", `\A(.*\.)?(`+rule.Pattern+`)$`)
		if err != nil {
			return nil, err
		}
		m.alpha = append(m.alpha, compiledRule{re, rule.Value})
	}
	return m, nil
}

// matchString reports whether re matches s, turning a timeout into false.
func matchString(re *regexp2.Regexp, s string) bool {
	ok, err := re.MatchString(s)
	return err == nil && ok
}

// excluded reports whether exclude_modules or modules_to_save remove the module (PEFT name).
func (m *matcher) excluded(c *Config, name string) bool {
	if m.exclude != nil && matchString(m.exclude, name) {
		return true
	}
	for _, e := range c.ExcludeModules.Names {
		if name == e || strings.HasSuffix(name, "."+e) {
			return true
		}
	}
	for _, re := range m.save {
		if matchString(re, name) {
			return true
		}
	}
	return false
}

// matches is PEFT's check_target_module_exists for list and regex target_modules.
func (m *matcher) matches(c *Config, name string) (bool, error) {
	if m.excluded(c, name) {
		return false, nil
	}
	if m.target != nil {
		return matchString(m.target, name), nil
	}
	for _, t := range c.TargetModules.Names {
		if name == t {
			return true, nil // named directly: layers_to_transform does not apply
		}
	}
	found := false
	for _, t := range c.TargetModules.Names {
		if strings.HasSuffix(name, "."+t) {
			found = true
			break
		}
	}
	if !found || c.LayersToTransform == nil {
		return found, nil
	}
	for _, re := range m.layers {
		mt, err := re.FindStringMatch(name)
		if err != nil {
			return false, err
		}
		if mt == nil {
			continue
		}
		idx, err := strconv.Atoi(mt.GroupByNumber(1).String())
		if err != nil {
			return false, nil
		}
		for _, l := range c.LayersToTransform {
			if l == idx {
				return true, nil
			}
		}
		return false, nil
	}
	return false, nil
}

// rankAlpha resolves rank_pattern and alpha_pattern for a PEFT module name.
func (m *matcher) rankAlpha(c *Config, name string) (int, float64, error) {
	r, alpha := c.R, c.Alpha
	for _, rule := range m.rank {
		if matchString(rule.re, name) {
			r = int(rule.value)
			break
		}
	}
	for _, rule := range m.alpha {
		if matchString(rule.re, name) {
			alpha = rule.value
			break
		}
	}
	if r <= 0 {
		return 0, 0, fmt.Errorf("lora: module %s gets rank %d; ranks must be positive", name, r)
	}
	return r, alpha, nil
}
