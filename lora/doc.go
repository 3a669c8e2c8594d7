// Package lora implements LoRA adapters compatible with Hugging Face PEFT
// (0.21, LoraConfig with peft_type "LORA"): the adapter_config.json
// configuration, module targeting as PEFT does it, initialization, loading and
// saving PEFT adapter folders, merging into base weights on the host, and the
// GoMLX graph function that adds the low-rank update to a projection.
//
// A LoRA module adapts one linear layer y = x·Wᵀ (W of shape [out, in]) to
//
//	y = x·Wᵀ + scale · (dropout(x)·Aᵀ)·Bᵀ
//
// with A of shape [r, in], B of shape [out, r] and scale = lora_alpha / r
// (lora_alpha / √r with use_rslora).
//
// Modules are keyed by canonical module name: the Hub key of the base weight
// without ".weight", e.g. "model.layers.0.self_attn.q_proj" for Qwen2-VL. PEFT
// with transformers 5 sees the same layers under other names
// ("model.language_model.layers.0.self_attn.q_proj", "model.visual.blocks.0...");
// PEFTModuleName and CanonicalName convert between the two, and targeting
// (Config.Targets) matches patterns against PEFT's names, exactly as PEFT does.
package lora
