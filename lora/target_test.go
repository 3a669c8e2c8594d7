package lora

import (
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
)

func mustParse(t *testing.T, js string) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(js))
	if err != nil {
		t.Fatalf("ParseConfig(%s): %v", js, err)
	}
	return c
}

func TestPEFTNames(t *testing.T) {
	for canon, peft := range map[string]string{
		"model.layers.0.self_attn.q_proj": "model.language_model.layers.0.self_attn.q_proj",
		"visual.blocks.1.attn.qkv":        "model.visual.blocks.1.attn.qkv",
		"visual.merger.mlp.0":             "model.visual.merger.mlp.0",
		"lm_head":                         "lm_head",
	} {
		if got := PEFTModuleName(canon); got != peft {
			t.Errorf("PEFTModuleName(%s) = %s, want %s", canon, got, peft)
		}
		if got := CanonicalName(peft); got != canon {
			t.Errorf("CanonicalName(%s) = %s, want %s", peft, got, canon)
		}
		if got := CanonicalName(canon); got != canon {
			t.Errorf("CanonicalName(%s) = %s, want it unchanged", canon, got)
		}
	}
	if got := PEFTKey("model.layers.1.mlp.down_proj", "lora_B"); got != "base_model.model.model.language_model.layers.1.mlp.down_proj.lora_B.weight" {
		t.Errorf("PEFTKey = %s", got)
	}
}

// The fixture's configuration must select exactly the modules PEFT adapted.
func TestTargetsFixture(t *testing.T) {
	cfg, err := ReadConfig(fixtureAdapterDir(t))
	if err != nil {
		t.Fatal(err)
	}
	ad, err := Load(fixtureAdapterDir(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := cfg.Targets(tinyShapes(t))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != strings.Join(ad.Names(), ",") {
		t.Errorf("Targets = %v\nPEFT adapted %v", got, ad.Names())
	}
}

func TestTargetsForms(t *testing.T) {
	shapes := tinyShapes(t)
	shapes["lm_head.weight"] = []int{1024, 64} // as if untied: all-linear must still leave it out
	llm := func(layers []int, projs ...string) []string {
		var out []string
		for _, l := range layers {
			for _, p := range projs {
				for _, full := range sevenProjections {
					if strings.HasSuffix(full, "."+p) {
						out = append(out, "model.layers."+string(rune('0'+l))+"."+full)
					}
				}
			}
		}
		return out
	}
	var vision []string
	for _, b := range []string{"0", "1"} {
		for _, p := range []string{"attn.proj", "attn.qkv", "mlp.fc1", "mlp.fc2"} {
			vision = append(vision, "visual.blocks."+b+"."+p)
		}
	}
	vision = append(vision, "visual.merger.mlp.0", "visual.merger.mlp.2")
	allLLM := llm([]int{0, 1}, "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
	base := `"peft_type": "LORA", "r": 4, "lora_alpha": 8, `
	cases := []struct {
		name, json string
		want       []string
	}{
		{"all-linear takes every linear layer, vision tower included, not lm_head or embeddings",
			`{` + base + `"target_modules": "all-linear"}`, append(append([]string{}, allLLM...), vision...)},
		{"ALL-LINEAR is case-insensitive", `{` + base + `"target_modules": "ALL-Linear"}`, append(append([]string{}, allLLM...), vision...)},
		{"all-linear minus a regex exclusion", `{` + base + `"target_modules": "all-linear", "exclude_modules": ".*visual.*"}`, allLLM},
		{"regex is a full match against transformers-5 names",
			`{` + base + `"target_modules": ".*language_model.*\\.(q_proj|v_proj)"}`, llm([]int{0, 1}, "q_proj", "v_proj")},
		{"regex anchored at both ends", `{` + base + `"target_modules": "q_proj"}`, nil},
		{"explicit lm_head", `{` + base + `"target_modules": ["lm_head"]}`, []string{"lm_head"}},
		{"layers_to_transform with the default layer pattern (LLM layers and vision blocks)",
			`{` + base + `"target_modules": ["q_proj", "qkv"], "layers_to_transform": [1]}`,
			append(llm([]int{1}, "q_proj"), "visual.blocks.1.attn.qkv")},
		{"layers_to_transform as an int", `{` + base + `"target_modules": ["o_proj"], "layers_to_transform": 0}`, llm([]int{0}, "o_proj")},
		{"layers_pattern restricts to the named module list",
			`{` + base + `"target_modules": ["q_proj", "qkv"], "layers_to_transform": [0], "layers_pattern": "layers"}`, llm([]int{0}, "q_proj")},
		{"layers_pattern as a list", `{` + base + `"target_modules": ["q_proj", "qkv"], "layers_to_transform": [0], "layers_pattern": ["blocks", "layers"]}`,
			append(llm([]int{0}, "q_proj"), "visual.blocks.0.attn.qkv")},
		{"a module named in full bypasses layers_to_transform",
			`{` + base + `"target_modules": ["model.language_model.layers.1.self_attn.q_proj", "k_proj"], "layers_to_transform": [0]}`,
			append(llm([]int{0}, "k_proj"), "model.layers.1.self_attn.q_proj")},
		{"suffix with a dot", `{` + base + `"target_modules": ["mlp.fc1"]}`, []string{"visual.blocks.0.mlp.fc1", "visual.blocks.1.mlp.fc1"}},
		{"exclude_modules list", `{` + base + `"target_modules": ["q_proj", "v_proj"], "exclude_modules": ["layers.0.self_attn.v_proj"]}`,
			append(llm([]int{0}, "q_proj"), llm([]int{1}, "q_proj", "v_proj")...)},
		{"modules_to_save are never targets", `{` + base + `"target_modules": ["q_proj"], "modules_to_save": ["layers.0.self_attn.q_proj"]}`, llm([]int{1}, "q_proj")},
	}
	for _, tc := range cases {
		got, err := mustParse(t, tc.json).Targets(shapes)
		want := append([]string{}, tc.want...)
		sort.Strings(want)
		if len(want) == 0 {
			if err == nil || !strings.Contains(err.Error(), "matches no linear layer") {
				t.Errorf("%s: got %v, %v; want a no-match error", tc.name, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s:\n got %v\nwant %v", tc.name, got, want)
		}
	}
}

func TestTargetsErrors(t *testing.T) {
	shapes := tinyShapes(t)
	base := `"peft_type": "LORA", "r": 4, "lora_alpha": 8, `
	for js, want := range map[string]string{
		`{` + base + `"target_modules": ["norm"]}`:                                                      "not linear layers: model.norm",
		`{` + base + `"target_modules": ["self_attn"]}`:                                                 "not linear layers: model.layers.0.self_attn",
		`{` + base + `"target_modules": ["proj"]}`:                                                      "visual.patch_embed.proj",
		`{` + base + `"target_modules": ["embed_tokens"]}`:                                              "model.embed_tokens",
		`{` + base + `"target_modules": ["nothing_here"]}`:                                              "matches no linear layer",
		`{` + base + `"target_modules": "model\\.layers\\..*q_proj"}`:                                   "model.language_model.layers.0.self_attn.q_proj",
		`{` + base + `"target_modules": ["q_proj"], "layers_to_transform": [7]}`:                        "layers_to_transform [7]",
		`{` + base + `"target_modules": ["q_proj"], "layers_to_transform": [0], "layers_pattern": "h"}`: "matches no linear layer",
	} {
		got, err := mustParse(t, js).Targets(shapes)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, %v; want an error mentioning %q", js, got, err, want)
		}
	}
}

func TestRankAlphaPatterns(t *testing.T) {
	c := mustParse(t, `{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": "all-linear",
		"rank_pattern": {"layers.1.self_attn.q_proj": 2, "q_proj": 16, "visual.*": 3},
		"alpha_pattern": {"^model.*down_proj": 32, "mlp.fc\\d": 1.5}}`)
	for name, want := range map[string][2]float64{
		"model.layers.0.self_attn.q_proj": {16, 8},
		"model.layers.1.self_attn.q_proj": {2, 8}, // first matching pattern in file order
		"model.layers.1.self_attn.k_proj": {4, 8},
		"model.layers.0.mlp.down_proj":    {4, 32},
		"visual.blocks.0.mlp.fc1":         {3, 1.5},
		"visual.blocks.0.attn.qkv":        {3, 8},
		"lm_head":                         {4, 8},
	} {
		r, alpha, err := c.RankAlpha(name)
		if err != nil || float64(r) != want[0] || alpha != want[1] {
			t.Errorf("RankAlpha(%s) = %d, %v, %v; want %v", name, r, alpha, err, want)
		}
	}
	// "proj" must match a whole name component: (.*\.)?(proj)$ does not match "q_proj".
	c2 := mustParse(t, `{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "rank_pattern": {"proj": 2}}`)
	if r, _, _ := c2.RankAlpha("model.layers.0.self_attn.q_proj"); r != 4 {
		t.Errorf("pattern proj gave q_proj rank %d, want the default 4", r)
	}
	if r, _, _ := c2.RankAlpha("visual.blocks.0.attn.proj"); r != 2 {
		t.Errorf("pattern proj gave attn.proj rank %d, want 2", r)
	}
}

func TestNewAdapterInit(t *testing.T) {
	shapes := tinyShapes(t)
	cfg := NewConfig(8, 16, "q_proj", "down_proj")
	cfg.RankPattern = []PatternRule{{Pattern: "down_proj", Value: 2}}
	targets, err := cfg.Targets(shapes)
	if err != nil {
		t.Fatal(err)
	}
	ad, err := NewAdapter(cfg, targets, shapes, 42)
	if err != nil {
		t.Fatal(err)
	}
	if len(ad.Modules) != 4 {
		t.Fatalf("modules %v", ad.Names())
	}
	q := ad.Modules["model.layers.0.self_attn.q_proj"]
	d := ad.Modules["model.layers.1.mlp.down_proj"]
	if q.R != 8 || q.In != 64 || q.Out != 64 || q.Scale != 2 || d.R != 2 || d.In != 128 || d.Out != 64 || d.Scale != 8 {
		t.Errorf("q %+v\nd %+v", *q, *d)
	}
	for _, m := range ad.Modules {
		bound := 1 / math.Sqrt(float64(m.In))
		var sum, sumSq float64
		for _, v := range m.A {
			if math.Abs(float64(v)) > bound {
				t.Fatalf("%s: A value %v outside ±%v", m.Name, v, bound)
			}
			sum += float64(v)
			sumSq += float64(v) * float64(v)
		}
		n := float64(len(m.A))
		// Uniform(−b, b) has variance b²/3.
		if v := sumSq / n; math.Abs(v-bound*bound/3) > 0.25*bound*bound/3 || math.Abs(sum/n) > 0.1*bound {
			t.Errorf("%s: A mean %v variance %v, want ~0 and %v", m.Name, sum/n, v, bound*bound/3)
		}
		for _, v := range m.B {
			if v != 0 {
				t.Fatalf("%s: B not zero-initialized", m.Name)
			}
		}
	}
	again, _ := NewAdapter(cfg, []string{targets[2], targets[0], targets[1], targets[3]}, shapes, 42)
	other, _ := NewAdapter(cfg, targets, shapes, 43)
	if !slices.Equal(again.Modules[q.Name].A, q.A) {
		t.Error("same seed gave different A (order of targets must not matter)")
	}
	if slices.Equal(other.Modules[q.Name].A, q.A) {
		t.Error("different seeds gave the same A")
	}

	g := *cfg
	g.InitLoRAWeights = "gaussian"
	ga, err := NewAdapter(&g, targets, shapes, 1)
	if err != nil {
		t.Fatal(err)
	}
	var sumSq float64
	for _, v := range ga.Modules[q.Name].A {
		sumSq += float64(v) * float64(v)
	}
	if std := math.Sqrt(sumSq / float64(len(q.A))); math.Abs(std-1.0/8) > 0.02 {
		t.Errorf("gaussian A std %v, want 1/r = 0.125", std)
	}
	f := *cfg
	f.InitLoRAWeights = "false"
	fa, err := NewAdapter(&f, targets, shapes, 1)
	if err != nil {
		t.Fatal(err)
	}
	nonzero := 0
	for _, v := range fa.Modules[q.Name].B {
		if math.Abs(float64(v)) > 1/math.Sqrt(8) {
			t.Fatalf("init false: B value %v outside ±1/√r", v)
		}
		if v != 0 {
			nonzero++
		}
	}
	if nonzero == 0 {
		t.Error("init false left B zero")
	}

	bad := []struct {
		mutate func(c *Config)
		tgts   []string
		want   string
	}{
		{func(c *Config) { c.InitLoRAWeights = "pissa" }, targets, `init_lora_weights "pissa"`},
		{func(c *Config) { c.ModulesToSave = []string{"lm_head"} }, targets, "modules_to_save"},
		{func(c *Config) {}, []string{"model.layers.0.self_attn.x_proj"}, "no shape for target module"},
		{func(c *Config) {}, []string{"model.norm"}, "needs a linear layer"},
		{func(c *Config) {}, nil, "no target modules"},
		{func(c *Config) {}, []string{targets[0], targets[0]}, "listed twice"},
	}
	for _, tc := range bad {
		c := *cfg
		tc.mutate(&c)
		if _, err := NewAdapter(&c, tc.tgts, shapes, 1); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewAdapter: %v, want an error mentioning %q", err, tc.want)
		}
	}
	if _, err := NewAdapter(cfg, []string{"model.norm"}, map[string][]int{"model.norm.weight": {64}}, 1); err == nil || !strings.Contains(err.Error(), "linear layer") {
		t.Errorf("1-D weight: %v", err)
	}

	// A fresh adapter saves and loads back as PEFT would build it.
	dir := t.TempDir()
	if err := ad.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ad.Names() {
		a, b := ad.Modules[n], back.Modules[n]
		if a.R != b.R || a.Scale != b.Scale || !slices.Equal(a.A, b.A) || !slices.Equal(a.B, b.B) {
			t.Errorf("%s differs after Save/Load", n)
		}
	}
}

func TestEmptyLayersPatternIsDefault(t *testing.T) {
	c := mustParse(t, `{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "layers_to_transform": [1], "layers_pattern": ""}`)
	got, err := c.Targets(tinyShapes(t))
	if err != nil || strings.Join(got, ",") != "model.layers.1.self_attn.q_proj" {
		t.Errorf("Targets = %v, %v", got, err)
	}
	if _, err := ParseConfig([]byte(`{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": "x", "layers_pattern": ""}`)); err == nil {
		t.Error(`layers_pattern "" with a regex target accepted (PEFT refuses it)`)
	}
}
