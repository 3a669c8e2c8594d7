package qwen2vl

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/internal/shared"
	"github.com/mmft-go/mmft/safetensors"
)

func TestConfigFlatAndNestedAgree(t *testing.T) {
	nested, err := LoadConfig(shared.Fixture(t, "qwen2vl-tiny", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	flat, err := LoadConfig(shared.Fixture(t, "qwen2vl-tiny", "config.original.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(nested, flat) {
		t.Errorf("nested and flat configs differ:\n%+v\n%+v", nested, flat)
	}
	if nested.Text.HeadDim() != 16 || !reflect.DeepEqual(nested.Text.MRopeSection, []int{2, 3, 3}) || nested.ImageTokenID != 1001 {
		t.Errorf("unexpected tiny config %+v", nested)
	}
	big, err := LoadConfig(shared.Asset(t, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if big.Text.NumLayers != 28 || big.Text.HeadDim() != 128 || big.Vision.PatchDim() != 1176 || big.Text.RopeTheta != 1e6 || !big.Text.TieWordEmbeddings {
		t.Errorf("unexpected 2B config %+v", big)
	}
}

func TestConfigRefusals(t *testing.T) {
	data, err := os.ReadFile(shared.Fixture(t, "qwen2vl-tiny", "config.original.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ from, to, want string }{
		{`"model_type": "qwen2_vl"`, `"model_type": "llava"`, "model_type"},
		{`"Qwen2VLForConditionalGeneration"`, `"Qwen2ForCausalLM"`, "architecture"},
		{`"type": "mrope"`, `"type": "yarn"`, "yarn"},
		{`"hidden_act": "silu"`, `"hidden_act": "gelu", "use_sliding_window": true`, "use_sliding_window"},
		{`"mrope_section": [`, `"mrope_section": [1, `, "mrope_section"},
	} {
		mod := strings.Replace(string(data), c.from, c.to, 1)
		if mod == string(data) {
			t.Fatalf("test edit %q not applied", c.from)
		}
		if _, err := ParseConfig([]byte(mod)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("edit %s: error %v, want one naming %q", c.to, err, c.want)
		}
	}
}

// TestWeightsReportedTogether renames, drops and reshapes tensors of the tiny
// checkpoint and checks every problem appears in one error.
func TestWeightsReportedTogether(t *testing.T) {
	dir := shared.Fixture(t, "qwen2vl-tiny")
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []safetensors.NamedTensor
	for _, name := range f.Names() {
		info, _ := f.Tensor(name)
		switch name {
		case "model.norm.weight":
			continue // missing
		case "visual.merger.mlp.2.bias":
			info.Shape = []int{2, 32} // mis-shaped
		}
		// transformers 5 key layout
		key := strings.Replace(strings.Replace(name, "model.", "model.language_model.", 1), "visual.", "model.visual.", 1)
		out = append(out, safetensors.NamedTensor{Name: key, DType: info.DType, Shape: info.Shape, Data: info.Data})
	}
	out = append(out, safetensors.FromFloat32("model.language_model.extra.weight", []int{1}, []float32{1}))
	tmp := t.TempDir()
	if err := safetensors.Write(filepath.Join(tmp, "model.safetensors"), out, nil); err != nil {
		t.Fatal(err)
	}
	w, err := safetensors.Open(filepath.Join(tmp, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, err = LoadFrom(cpuBackend(t), cfg, ReaderSource{w}, Options{})
	if err == nil {
		t.Fatal("loading a broken checkpoint succeeded")
	}
	for _, want := range []string{"missing model.norm.weight", "model.visual.merger.mlp.2.bias has shape [2 32]", "unexpected model.language_model.extra.weight", "3 problems"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
