package lora

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/internal/shared"
)

func fixtureAdapterDir(t *testing.T) string {
	t.Helper()
	return shared.Fixture(t, "qwen2vl-tiny", "lora_adapter")
}

func TestReadConfigFixture(t *testing.T) {
	c, err := ReadConfig(fixtureAdapterDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.R != 4 || c.Alpha != 8 || c.Dropout != 0 || c.Bias != "none" || c.UseRSLoRA || c.UseDoRA || c.FanInFanOut {
		t.Errorf("fixture config read as %+v", c)
	}
	want := []string{"v_proj", "down_proj", "k_proj", "gate_proj", "q_proj", "o_proj", "up_proj"}
	if strings.Join(c.TargetModules.Names, ",") != strings.Join(want, ",") || c.TargetModules.Pattern != "" {
		t.Errorf("target_modules = %+v, want %v", c.TargetModules, want)
	}
	if c.InitLoRAWeights != "false" || !c.InferenceMode || c.TaskType != "" || c.BaseModelNameOrPath != "" {
		t.Errorf("init %q inference %v task %q base %q", c.InitLoRAWeights, c.InferenceMode, c.TaskType, c.BaseModelNameOrPath)
	}
	if c.LayersToTransform != nil || c.LayersPattern != nil || len(c.RankPattern) != 0 || len(c.AlphaPattern) != 0 {
		t.Errorf("layers/patterns should be unset: %+v", c)
	}
	if got := c.Scale(4, 8); got != 2 {
		t.Errorf("scale = %v, want 2", got)
	}
}

// The fixture's adapter_config.json, written by PEFT 0.21, must come back byte for byte.
func TestConfigRoundTripBytes(t *testing.T) {
	path := fixtureAdapterDir(t) + "/" + ConfigFile
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(orig)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, orig) {
		t.Errorf("round trip differs:\n%s\nwant\n%s", got, orig)
	}
}

func TestConfigChangedAndUnknownFields(t *testing.T) {
	in := `{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"],
		"future_field": {"b": [1, 2.5], "a": null}, "lora_dropout": 0.05,
		"rank_pattern": {"z_proj": 2, "q_proj": 4}, "alpha_pattern": {}, "layers_to_transform": 3}`
	c, err := ParseConfig([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if c.LayersToTransform == nil || len(c.LayersToTransform) != 1 || c.LayersToTransform[0] != 3 {
		t.Errorf("layers_to_transform 3 read as %v", c.LayersToTransform)
	}
	if len(c.RankPattern) != 2 || c.RankPattern[0].Pattern != "z_proj" || c.RankPattern[1].Value != 4 {
		t.Errorf("rank_pattern order not kept: %+v", c.RankPattern)
	}
	c.R = 16
	c.Dropout = 0.1
	c.UseRSLoRA = true
	c.TaskType = "CAUSAL_LM"
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{
		`"future_field": {`, `"b": [`, `2.5`, `"r": 16,`, `"lora_dropout": 0.1,`, `"use_rslora": true`,
		`"task_type": "CAUSAL_LM"`, `"peft_type": "LORA"`, `"lora_alpha": 16,`, `"layers_to_transform": 3,`,
		`"rank_pattern": {` + "\n" + `    "z_proj": 2,`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	c2, err := ParseConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if c2.R != 16 || c2.Dropout != 0.1 || !c2.UseRSLoRA || c2.TaskType != "CAUSAL_LM" || c2.RankPattern[0].Pattern != "z_proj" {
		t.Errorf("re-read %+v", c2)
	}
	if got := c2.Scale(16, 16); got != 4 {
		t.Errorf("rslora scale = %v, want 16/√16 = 4", got)
	}
}

func TestNewConfigMarshal(t *testing.T) {
	c := NewConfig(8, 16, "q_proj", "v_proj")
	c.Dropout = 0.05
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ParseConfig(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if c2.R != 8 || c2.Alpha != 16 || c2.Dropout != 0.05 || c2.InitLoRAWeights != "true" || len(c2.TargetModules.Names) != 2 {
		t.Errorf("re-read %+v from\n%s", c2, out)
	}
	if !strings.Contains(string(out), `"lora_dropout": 0.05`) || !strings.Contains(string(out), `"init_lora_weights": true`) {
		t.Errorf("unexpected encoding:\n%s", out)
	}
	if !NewConfig(4, 4, "all-linear").TargetModules.IsAllLinear() {
		t.Error("all-linear not recognised")
	}
}

func TestConfigErrors(t *testing.T) {
	base := `"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]`
	cases := []struct{ json, want string }{
		{`{"peft_type": "IA3", "r": 4}`, `peft_type "IA3"`},
		{`{"r": 4}`, "peft_type missing"},
		{`[1]`, "not a JSON object"},
		{`{` + base + `, "bias": "all"}`, `bias "all" is not supported`},
		{`{` + base + `, "bias": "lora_only"}`, `set bias to "none"`},
		{`{` + base + `, "use_dora": true}`, "use_dora is not supported"},
		{`{"peft_type": "LORA", "r": 0, "lora_alpha": 8, "target_modules": ["q_proj"]}`, "r = 0"},
		{`{"peft_type": "LORA", "r": 2.5, "lora_alpha": 8, "target_modules": ["q_proj"]}`, "r must be an integer"},
		{`{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": null}`, "target_modules is not set"},
		{`{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ".*q_proj", "layers_to_transform": [0]}`, "layers_to_transform cannot be used"},
		{`{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ".*q_proj", "layers_pattern": "layers"}`, "layers_pattern cannot be used"},
		{`{` + base + `, "layers_pattern": "layers"}`, "layers_to_transform is not"},
		{`{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": "(q_proj"}`, "not a valid regular expression"},
		{`{` + base + `, "lora_bias": true}`, "lora_bias"},
		{`{` + base + `, "layer_replication": [[0, 1]]}`, "layer_replication"},
		{`{` + base + `, "lora_dropout": 1.5}`, "lora_dropout"},
		{`{` + base + `, "rank_pattern": {"q_proj": 0}}`, "rank_pattern"},
		{`{` + base + `, "rank_pattern": {"q_proj": "x"}}`, "expected a number"},
		{`{` + base + `, "target_parameters": ["experts.w"]}`, "target_parameters"},
		{`{` + base + `, "use_rslora": "yes"}`, "true or false"},
	}
	for _, tc := range cases {
		_, err := ParseConfig([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfig(%s) error = %v, want it to mention %q", tc.json, err, tc.want)
		}
	}
	// Unset-looking values of the refused fields are fine.
	ok := `{` + base + `, "lora_bias": false, "layer_replication": null, "use_bdlora": null, "arrow_config": null, "loftq_config": {}}`
	if _, err := ParseConfig([]byte(ok)); err != nil {
		t.Errorf("ParseConfig(%s): %v", ok, err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}`))
	f.Add([]byte(`{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ".*(q|v)_proj", "rank_pattern": {"a": 2}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("valid config does not marshal: %v", err)
		}
		if _, err := ParseConfig(out); err != nil {
			t.Fatalf("marshalled config does not parse: %v\n%s", err, out)
		}
	})
}
