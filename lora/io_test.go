package lora

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/internal/shared"
	"github.com/mmft-go/mmft/safetensors"
)

// sevenProjections are the LLM projections of each Qwen2 decoder layer.
var sevenProjections = []string{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}

// tinyShapes returns the tiny fixture model's parameter shapes by canonical name.
func tinyShapes(t *testing.T) map[string][]int {
	t.Helper()
	f, err := safetensors.Open(shared.Fixture(t, "qwen2vl-tiny", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	shapes := map[string][]int{}
	for _, n := range f.Names() {
		info, _ := f.Tensor(n)
		shapes[canonicalParamName(n)] = info.Shape
	}
	return shapes
}

// canonicalParamName maps a transformers-5 parameter name to the Hub name (test helper).
func canonicalParamName(n string) string {
	mod, ok := strings.CutSuffix(n, ".weight")
	if ok {
		return CanonicalName(mod) + ".weight"
	}
	if mod, ok := strings.CutSuffix(n, ".bias"); ok {
		return CanonicalName(mod) + ".bias"
	}
	return CanonicalName(n)
}

func TestLoadFixture(t *testing.T) {
	ad, err := Load(fixtureAdapterDir(t))
	if err != nil {
		t.Fatal(err)
	}
	shapes := tinyShapes(t)
	var want []string
	for l := 0; l < 2; l++ {
		for _, p := range sevenProjections {
			want = append(want, "model.layers."+string(rune('0'+l))+"."+p)
		}
	}
	if len(ad.Modules) != len(want) {
		t.Fatalf("loaded %d modules %v, want %d", len(ad.Modules), ad.Names(), len(want))
	}
	for _, name := range want {
		m := ad.Modules[name]
		if m == nil {
			t.Errorf("module %s missing; have %v", name, ad.Names())
			continue
		}
		ws := shapes[name+".weight"]
		if len(ws) != 2 || m.Out != ws[0] || m.In != ws[1] {
			t.Errorf("%s: adapter [out %d, in %d], base weight %v", name, m.Out, m.In, ws)
		}
		if m.R != 4 || m.Alpha != 8 || m.Scale != 2 {
			t.Errorf("%s: r %d alpha %v scale %v, want 4, 8, 2", name, m.R, m.Alpha, m.Scale)
		}
		nonzero := false
		for _, v := range m.B {
			nonzero = nonzero || v != 0
		}
		if !nonzero {
			t.Errorf("%s: lora_B is all zero; the fixture's is not", name)
		}
	}
	// Per layer, r·(in+out): q, o 4·128; k, v 4·96; gate, up, down 4·192.
	if got := ad.NumParams(); got != 2*(2*4*128+2*4*96+3*4*192) {
		t.Errorf("NumParams = %d", got)
	}
}

// Saving the loaded fixture must give PEFT's key names, shapes and tensor
// bytes exactly, and the same configuration bytes.
func TestSaveRoundTripFixture(t *testing.T) {
	dir := fixtureAdapterDir(t)
	ad, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := ad.Save(out); err != nil {
		t.Fatal(err)
	}
	ref, err := safetensors.Open(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	got, err := safetensors.Open(filepath.Join(out, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if strings.Join(ref.Names(), "\n") != strings.Join(got.Names(), "\n") {
		t.Fatalf("keys differ:\n%v\nwant\n%v", got.Names(), ref.Names())
	}
	for _, n := range ref.Names() {
		a, _ := ref.Tensor(n)
		b, _ := got.Tensor(n)
		if a.DType != b.DType || !slices.Equal(a.Shape, b.Shape) || !bytes.Equal(a.Data, b.Data) {
			t.Errorf("%s: got %s %v (%d bytes), want %s %v (%d bytes)", n, b.DType, b.Shape, len(b.Data), a.DType, a.Shape, len(a.Data))
		}
	}
	if got.Metadata()["format"] != "pt" {
		t.Errorf("metadata %v, want format=pt", got.Metadata())
	}
	refBytes, _ := os.ReadFile(filepath.Join(dir, WeightsFile))
	gotBytes, _ := os.ReadFile(filepath.Join(out, WeightsFile))
	if !bytes.Equal(refBytes, gotBytes) {
		t.Errorf("the weights file is not byte-identical to PEFT's, though keys and tensors are")
	}
	refCfg, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	gotCfg, _ := os.ReadFile(filepath.Join(out, ConfigFile))
	if !bytes.Equal(refCfg, gotCfg) {
		t.Errorf("adapter_config.json differs:\n%s\nwant\n%s", gotCfg, refCfg)
	}
	back, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ad.Names() {
		if !slices.Equal(ad.Modules[n].A, back.Modules[n].A) || !slices.Equal(ad.Modules[n].B, back.Modules[n].B) {
			t.Errorf("%s changed in the round trip", n)
		}
	}
}

// rewriteAdapter copies the fixture adapter into a temporary folder with its
// keys renamed by rename (a nil result drops the tensor) and extra tensors added.
func rewriteAdapter(t *testing.T, rename func(string) string, extra ...safetensors.NamedTensor) string {
	t.Helper()
	dir := fixtureAdapterDir(t)
	ref, err := safetensors.Open(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	var ts []safetensors.NamedTensor
	for _, n := range ref.Names() {
		info, _ := ref.Tensor(n)
		nn := rename(n)
		if nn == "" {
			continue
		}
		ts = append(ts, safetensors.NamedTensor{Name: nn, DType: info.DType, Shape: info.Shape, Data: append([]byte(nil), info.Data...)})
	}
	ts = append(ts, extra...)
	out := t.TempDir()
	if err := safetensors.Write(filepath.Join(out, WeightsFile), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, ConfigFile), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// Adapters saved by older transformers, or with the adapter name kept, load
// to the same canonical modules and values.
func TestLoadKeyVariants(t *testing.T) {
	ref, err := Load(fixtureAdapterDir(t))
	if err != nil {
		t.Fatal(err)
	}
	variants := map[string]func(string) string{
		"transformers 4": func(n string) string {
			return strings.Replace(n, "base_model.model.model.language_model.", "base_model.model.model.", 1)
		},
		"with .default": func(n string) string {
			n = strings.Replace(n, ".lora_A.weight", ".lora_A.default.weight", 1)
			return strings.Replace(n, ".lora_B.weight", ".lora_B.default.weight", 1)
		},
		"BF16": nil,
	}
	for name, rename := range variants {
		var dir string
		if rename == nil {
			dir = bf16Copy(t)
		} else {
			dir = rewriteAdapter(t, rename)
		}
		ad, err := Load(dir)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if strings.Join(ad.Names(), ",") != strings.Join(ref.Names(), ",") {
			t.Errorf("%s: names %v, want %v", name, ad.Names(), ref.Names())
			continue
		}
		for _, n := range ref.Names() {
			a, b := ref.Modules[n], ad.Modules[n]
			tol := float32(0)
			if rename == nil {
				tol = 1.0 / 128 // bf16 keeps 8 significant bits
			}
			for i := range a.A {
				if d := a.A[i] - b.A[i]; d > tol*abs32(a.A[i]) || -d > tol*abs32(a.A[i]) {
					t.Fatalf("%s: %s A[%d] = %v, want %v", name, n, i, b.A[i], a.A[i])
				}
			}
		}
	}
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

// bf16Copy writes the fixture adapter with BF16 weights.
func bf16Copy(t *testing.T) string {
	t.Helper()
	ad, err := Load(fixtureAdapterDir(t))
	if err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.NamedTensor
	for _, n := range ad.Names() {
		m := ad.Modules[n]
		ts = append(ts,
			safetensors.FromFloat32AsBF16(PEFTKey(n, "lora_A"), []int{m.R, m.In}, m.A),
			safetensors.FromFloat32AsBF16(PEFTKey(n, "lora_B"), []int{m.Out, m.R}, m.B))
	}
	out := t.TempDir()
	if err := safetensors.Write(filepath.Join(out, WeightsFile), ts, nil); err != nil {
		t.Fatal(err)
	}
	if err := ad.Config.WriteConfig(out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLoadErrors(t *testing.T) {
	dropB := func(n string) string {
		if strings.Contains(n, "layers.1.mlp.up_proj.lora_B") {
			return ""
		}
		return n
	}
	keep := func(n string) string { return n }
	cases := map[string]struct {
		dir  string
		want []string
	}{
		"missing lora_B": {rewriteAdapter(t, dropB), []string{"model.layers.1.mlp.up_proj has no lora_B"}},
		"DoRA and full weights": {rewriteAdapter(t, keep,
			safetensors.FromFloat32("base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_magnitude_vector", []int{2}, []float32{1, 2}),
			safetensors.FromFloat32("base_model.model.lm_head.weight", []int{2, 2}, []float32{1, 2, 3, 4}),
			safetensors.FromFloat32("base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_B.bias", []int{2}, []float32{1, 2})),
			[]string{"3 problem(s)", "DoRA", "lm_head.weight is not a LoRA A/B weight", "lora_bias"}},
	}
	for name, tc := range cases {
		_, err := Load(tc.dir)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want it to mention %q", name, err, w)
			}
		}
	}

	// Rank mismatch between the config and the tensors.
	dir := rewriteAdapter(t, keep)
	cfg, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	os.WriteFile(filepath.Join(dir, ConfigFile), bytes.Replace(cfg, []byte(`"r": 4`), []byte(`"r": 8`), 1), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "gives r=8 but lora_A has 4 rows") {
		t.Errorf("rank mismatch: %v", err)
	}

	// A pickled adapter is refused with the conversion to run.
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "adapter_model.bin"), []byte("PK\x03\x04"), 0o644)
	os.WriteFile(filepath.Join(bin, ConfigFile), cfg, 0o644)
	if _, err := Load(bin); err == nil || !strings.Contains(err.Error(), "safetensors.torch.save_file") {
		t.Errorf("adapter_model.bin: %v", err)
	}
	if _, err := Load(filepath.Join(bin, "nope")); err == nil {
		t.Error("missing folder loaded")
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), WeightsFile) {
		t.Errorf("empty folder: %v", err)
	}
	// Truncated weights file.
	trunc := rewriteAdapter(t, keep)
	w, _ := os.ReadFile(filepath.Join(trunc, WeightsFile))
	os.WriteFile(filepath.Join(trunc, WeightsFile), w[:len(w)/2], 0o644)
	if _, err := Load(trunc); err == nil {
		t.Error("truncated weights loaded")
	}
}

func TestSaveRefusesInconsistentRank(t *testing.T) {
	ad, err := Load(fixtureAdapterDir(t))
	if err != nil {
		t.Fatal(err)
	}
	ad.Modules["model.layers.0.self_attn.q_proj"].Alpha = 16
	if err := ad.Save(t.TempDir()); err == nil || !strings.Contains(err.Error(), "alpha_pattern") {
		t.Errorf("Save with an alpha the config does not give: %v", err)
	}
}

func TestCheckAgainstModel(t *testing.T) {
	ad, err := Load(fixtureAdapterDir(t))
	if err != nil {
		t.Fatal(err)
	}
	shapes := tinyShapes(t)
	if err := ad.Check(shapes); err != nil {
		t.Fatal(err)
	}
	shapes["model.layers.1.self_attn.q_proj.weight"] = []int{64, 32}
	delete(shapes, "model.layers.0.mlp.up_proj.weight")
	ad.Config.TargetModules.Names = append(ad.Config.TargetModules.Names, "qkv")
	err = ad.Check(shapes)
	for _, want := range []string{
		"model.layers.0.mlp.up_proj is not a layer",
		"model.layers.1.self_attn.q_proj: the adapter expects a [64, 64] weight, the model has [64 32]",
		"no weights for: visual.blocks.0.attn.qkv, visual.blocks.1.attn.qkv",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check: %v\nwant it to mention %q", err, want)
		}
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c := mustParse(t, `{"peft_type": "LORA", "target_modules": ["q_proj"]}`)
	if c.R != 8 || c.Alpha != 8 || c.Bias != "none" || c.InitLoRAWeights != "true" || c.Dropout != 0 {
		t.Errorf("defaults: %+v", c)
	}
}
