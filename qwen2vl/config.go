// Package qwen2vl implements the Qwen2-VL vision-language model (vision tower,
// patch merger and Qwen2 decoder with M-RoPE) on GoMLX: configuration, weight
// loading and saving, the forward pass, log-probabilities of chosen tokens,
// prefill and KV-cache decoding, and a LoRA hook on the seven LLM projections.
package qwen2vl

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TextConfig is the configuration of the Qwen2 language model.
type TextConfig struct {
	VocabSize         int     // number of token embeddings
	HiddenSize        int     // model width
	IntermediateSize  int     // SwiGLU inner width
	NumLayers         int     // decoder layers
	NumHeads          int     // query heads
	NumKVHeads        int     // key/value heads (GQA)
	RMSNormEps        float64 // RMSNorm epsilon
	RopeTheta         float64 // rotary base
	MRopeSection      []int   // M-RoPE split of head_dim/2 into (temporal, height, width)
	MaxPositions      int     // max_position_embeddings
	TieWordEmbeddings bool    // LM head shares embed_tokens.weight
}

// HeadDim is the width of one attention head.
func (c TextConfig) HeadDim() int { return c.HiddenSize / c.NumHeads }

// VisionConfig is the configuration of the Qwen2-VL vision tower.
type VisionConfig struct {
	Depth             int // transformer blocks
	EmbedDim          int // vision width
	NumHeads          int // attention heads
	MLPRatio          int // MLP width = EmbedDim*MLPRatio
	InChannels        int // image channels (3)
	PatchSize         int // spatial patch side (14)
	TemporalPatchSize int // frames per patch (2)
	SpatialMergeSize  int // side of the merge window (2)
	HiddenSize        int // output width of the merger (= LLM width)
	RopeTheta         float64
}

// HeadDim is the width of one vision attention head.
func (c VisionConfig) HeadDim() int { return c.EmbedDim / c.NumHeads }

// PatchDim is the number of values in one flattened patch (C·T·P·P = 1176).
func (c VisionConfig) PatchDim() int {
	return c.InChannels * c.TemporalPatchSize * c.PatchSize * c.PatchSize
}

// Config is a Qwen2-VL model configuration.
type Config struct {
	Text               TextConfig
	Vision             VisionConfig
	ImageTokenID       int
	VideoTokenID       int
	VisionStartTokenID int
	VisionEndTokenID   int
	EOSTokenID         int
	BOSTokenID         int
}

// LoadConfig reads config.json from a model folder (or the file itself).
func LoadConfig(path string) (Config, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "config.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading model config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// rawConfig holds the union of the fields of the flat Hub layout and of
// transformers 5's nested layout (text_config, vision_config, rope_parameters).
type rawConfig struct {
	Architectures []string        `json:"architectures"`
	ModelType     string          `json:"model_type"`
	TextConfig    *rawConfig      `json:"text_config"`
	VisionConfig  json.RawMessage `json:"vision_config"`

	VocabSize          int             `json:"vocab_size"`
	HiddenSize         int             `json:"hidden_size"`
	IntermediateSize   int             `json:"intermediate_size"`
	NumHiddenLayers    int             `json:"num_hidden_layers"`
	NumAttentionHeads  int             `json:"num_attention_heads"`
	NumKeyValueHeads   int             `json:"num_key_value_heads"`
	RMSNormEps         float64         `json:"rms_norm_eps"`
	RopeTheta          float64         `json:"rope_theta"`
	MaxPositions       int             `json:"max_position_embeddings"`
	HiddenAct          string          `json:"hidden_act"`
	UseSlidingWindow   bool            `json:"use_sliding_window"`
	TieWordEmbeddings  *bool           `json:"tie_word_embeddings"`
	RopeScaling        *rawRope        `json:"rope_scaling"`
	RopeParameters     *rawRope        `json:"rope_parameters"`
	ImageTokenID       *int            `json:"image_token_id"`
	VideoTokenID       *int            `json:"video_token_id"`
	VisionStartTokenID *int            `json:"vision_start_token_id"`
	VisionEndTokenID   *int            `json:"vision_end_token_id"`
	EOSTokenID         json.RawMessage `json:"eos_token_id"`
	BOSTokenID         json.RawMessage `json:"bos_token_id"`
	QuantizationConfig any             `json:"quantization_config"`
	LayerTypes         []string        `json:"layer_types"`
}

type rawRope struct {
	Type         string   `json:"type"`
	RopeType     string   `json:"rope_type"`
	MRopeSection []int    `json:"mrope_section"`
	RopeTheta    *float64 `json:"rope_theta"`
	Factor       *float64 `json:"factor"`
}

type rawVision struct {
	Depth             int     `json:"depth"`
	EmbedDim          int     `json:"embed_dim"`
	MLPRatio          float64 `json:"mlp_ratio"`
	NumHeads          int     `json:"num_heads"`
	InChans           int     `json:"in_chans"`
	InChannels        int     `json:"in_channels"`
	HiddenSize        int     `json:"hidden_size"`
	PatchSize         int     `json:"patch_size"`
	SpatialMergeSize  int     `json:"spatial_merge_size"`
	TemporalPatchSize int     `json:"temporal_patch_size"`
	HiddenAct         string  `json:"hidden_act"`
	RopeParameters    *struct {
		RopeTheta *float64 `json:"rope_theta"`
	} `json:"rope_parameters"`
}

// ParseConfig parses a Qwen2-VL config.json in either the flat Hub layout or
// transformers 5's nested layout, refusing other architectures and options
// this implementation does not support.
func ParseConfig(data []byte) (Config, error) {
	var top rawConfig
	if err := json.Unmarshal(data, &top); err != nil {
		return Config{}, fmt.Errorf("config.json is not valid JSON: %w", err)
	}
	if top.ModelType != "qwen2_vl" {
		return Config{}, fmt.Errorf("unsupported model_type %q: only \"qwen2_vl\" (Qwen2-VL) is implemented", top.ModelType)
	}
	for _, a := range top.Architectures {
		if a != "Qwen2VLForConditionalGeneration" {
			return Config{}, fmt.Errorf("unsupported architecture %q: only Qwen2VLForConditionalGeneration is implemented", a)
		}
	}
	if top.QuantizationConfig != nil {
		return Config{}, errors.New("quantized checkpoints (quantization_config) are not supported; use float32/bfloat16/float16 weights")
	}
	text := &top
	if top.TextConfig != nil {
		text = top.TextConfig
		// Token ids may live at the top level only.
	}
	var errs []string
	need := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Sprintf("%s is missing or not positive", name))
		}
	}
	cfg := Config{}
	t := &cfg.Text
	t.VocabSize, t.HiddenSize, t.IntermediateSize = text.VocabSize, text.HiddenSize, text.IntermediateSize
	t.NumLayers, t.NumHeads, t.NumKVHeads = text.NumHiddenLayers, text.NumAttentionHeads, text.NumKeyValueHeads
	t.RMSNormEps, t.MaxPositions = text.RMSNormEps, text.MaxPositions
	if t.NumKVHeads == 0 {
		t.NumKVHeads = t.NumHeads
	}
	if t.RMSNormEps == 0 {
		t.RMSNormEps = 1e-6
	}
	need("vocab_size", t.VocabSize)
	need("hidden_size", t.HiddenSize)
	need("intermediate_size", t.IntermediateSize)
	need("num_hidden_layers", t.NumLayers)
	need("num_attention_heads", t.NumHeads)
	if t.NumHeads > 0 && t.HiddenSize%t.NumHeads != 0 {
		errs = append(errs, fmt.Sprintf("hidden_size %d is not a multiple of num_attention_heads %d", t.HiddenSize, t.NumHeads))
	}
	if t.NumKVHeads > 0 && t.NumHeads%t.NumKVHeads != 0 {
		errs = append(errs, fmt.Sprintf("num_attention_heads %d is not a multiple of num_key_value_heads %d", t.NumHeads, t.NumKVHeads))
	}
	if act := text.HiddenAct; act != "" && act != "silu" {
		errs = append(errs, fmt.Sprintf("hidden_act %q is not supported (only silu)", act))
	}
	if text.UseSlidingWindow {
		errs = append(errs, "use_sliding_window=true is not supported; set it to false (Qwen2-VL-2B ships with it off)")
	}
	for _, lt := range text.LayerTypes {
		if lt != "full_attention" {
			errs = append(errs, fmt.Sprintf("layer type %q is not supported (only full_attention)", lt))
			break
		}
	}
	// Rotary parameters: rope_parameters (transformers 5) or rope_scaling (Hub).
	rope := text.RopeParameters
	if rope == nil {
		rope = text.RopeScaling
	}
	if rope == nil {
		rope = top.RopeScaling
	}
	t.RopeTheta = text.RopeTheta
	if rope != nil {
		kind := rope.Type
		if kind == "" {
			kind = rope.RopeType
		}
		if kind != "mrope" && kind != "default" && kind != "" {
			errs = append(errs, fmt.Sprintf("rope scaling type %q is not supported (only mrope/default)", kind))
		}
		if rope.RopeType != "" && rope.RopeType != "default" && rope.RopeType != "mrope" {
			errs = append(errs, fmt.Sprintf("rope_type %q is not supported (only default)", rope.RopeType))
		}
		if rope.Factor != nil && *rope.Factor != 1 {
			errs = append(errs, fmt.Sprintf("rope scaling factor %g is not supported", *rope.Factor))
		}
		t.MRopeSection = append([]int(nil), rope.MRopeSection...)
		if rope.RopeTheta != nil {
			t.RopeTheta = *rope.RopeTheta
		}
	}
	if t.RopeTheta == 0 {
		t.RopeTheta = 10000
	}
	if len(t.MRopeSection) != 3 {
		errs = append(errs, fmt.Sprintf("mrope_section must have 3 entries (temporal, height, width), got %v", t.MRopeSection))
	} else if t.NumHeads > 0 && t.MRopeSection[0]+t.MRopeSection[1]+t.MRopeSection[2] != t.HeadDim()/2 {
		errs = append(errs, fmt.Sprintf("mrope_section %v must sum to head_dim/2 = %d", t.MRopeSection, t.HeadDim()/2))
	}
	t.TieWordEmbeddings = true
	for _, tie := range []*bool{top.TieWordEmbeddings, text.TieWordEmbeddings} {
		if tie != nil {
			t.TieWordEmbeddings = *tie
			break
		}
	}

	// Vision tower.
	if len(top.VisionConfig) == 0 {
		errs = append(errs, "vision_config is missing")
	} else {
		var rv rawVision
		if err := json.Unmarshal(top.VisionConfig, &rv); err != nil {
			errs = append(errs, fmt.Sprintf("vision_config: %v", err))
		}
		v := &cfg.Vision
		v.Depth, v.EmbedDim, v.NumHeads = rv.Depth, rv.EmbedDim, rv.NumHeads
		v.MLPRatio = int(rv.MLPRatio)
		if float64(v.MLPRatio) != rv.MLPRatio {
			errs = append(errs, fmt.Sprintf("vision mlp_ratio %g is not an integer", rv.MLPRatio))
		}
		v.InChannels = rv.InChans
		if v.InChannels == 0 {
			v.InChannels = rv.InChannels
		}
		v.PatchSize, v.TemporalPatchSize, v.SpatialMergeSize = rv.PatchSize, rv.TemporalPatchSize, rv.SpatialMergeSize
		v.HiddenSize = rv.HiddenSize
		if v.HiddenSize == 0 {
			v.HiddenSize = t.HiddenSize
		}
		v.RopeTheta = 10000
		if rv.RopeParameters != nil && rv.RopeParameters.RopeTheta != nil {
			v.RopeTheta = *rv.RopeParameters.RopeTheta
		}
		if act := rv.HiddenAct; act != "" && act != "quick_gelu" {
			errs = append(errs, fmt.Sprintf("vision hidden_act %q is not supported (only quick_gelu)", act))
		}
		need("vision_config.depth", v.Depth)
		need("vision_config.embed_dim", v.EmbedDim)
		need("vision_config.num_heads", v.NumHeads)
		need("vision_config.mlp_ratio", v.MLPRatio)
		need("vision_config.in_chans", v.InChannels)
		need("vision_config.patch_size", v.PatchSize)
		need("vision_config.temporal_patch_size", v.TemporalPatchSize)
		need("vision_config.spatial_merge_size", v.SpatialMergeSize)
		if v.NumHeads > 0 && (v.EmbedDim%v.NumHeads != 0 || v.HeadDim()%4 != 0) {
			errs = append(errs, fmt.Sprintf("vision embed_dim %d / num_heads %d must give a head width divisible by 4", v.EmbedDim, v.NumHeads))
		}
		if v.HiddenSize != t.HiddenSize {
			errs = append(errs, fmt.Sprintf("vision_config.hidden_size %d differs from the LLM hidden_size %d", v.HiddenSize, t.HiddenSize))
		}
	}
	ids := []struct {
		name string
		v    *int
		dst  *int
	}{
		{"image_token_id", top.ImageTokenID, &cfg.ImageTokenID},
		{"video_token_id", top.VideoTokenID, &cfg.VideoTokenID},
		{"vision_start_token_id", top.VisionStartTokenID, &cfg.VisionStartTokenID},
		{"vision_end_token_id", top.VisionEndTokenID, &cfg.VisionEndTokenID},
	}
	for _, id := range ids {
		if id.v == nil {
			errs = append(errs, id.name+" is missing")
			continue
		}
		*id.dst = *id.v
	}
	cfg.EOSTokenID, cfg.BOSTokenID = -1, -1
	for _, p := range []struct {
		n, alt json.RawMessage
		dst    *int
	}{{top.EOSTokenID, text.EOSTokenID, &cfg.EOSTokenID}, {top.BOSTokenID, text.BOSTokenID, &cfg.BOSTokenID}} {
		if id, ok := firstTokenID(p.n); ok {
			*p.dst = id
		} else if id, ok := firstTokenID(p.alt); ok {
			*p.dst = id
		}
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("unsupported or invalid Qwen2-VL config: %s", strings.Join(errs, "; "))
	}
	return cfg, nil
}

// firstTokenID reads a token id given as a number or as a list of numbers.
func firstTokenID(raw json.RawMessage) (int, bool) {
	var one int
	if json.Unmarshal(raw, &one) == nil && len(raw) > 0 && string(raw) != "null" {
		return one, true
	}
	var many []int
	if json.Unmarshal(raw, &many) == nil && len(many) > 0 {
		return many[0], true
	}
	return 0, false
}
