#!/usr/bin/env python3
"""Checks that an adapter saved by mmft loads in Python PEFT on the same base
weights with the same logits (issue 9, item 1).

Inputs: --base (a transformers Qwen2-VL folder), --adapter (written by
tests/gpu/peftexport, i.e. lora.Adapter.Save), --inputs (safetensors with
input_ids, attention_mask, pixel_values, image_grid_thw), --mmft (the logits
`mmft forward --adapter` wrote). Prints the max abs and relative L2 error and
exits 1 beyond --tol (max abs).
"""
import argparse
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import Qwen2VLForConditionalGeneration

p = argparse.ArgumentParser()
p.add_argument("--base", required=True)
p.add_argument("--adapter", required=True)
p.add_argument("--inputs", required=True)
p.add_argument("--mmft", required=True)
p.add_argument("--tol", type=float, default=1e-3)
a = p.parse_args()

model = Qwen2VLForConditionalGeneration.from_pretrained(a.base, torch_dtype=torch.float32).eval()
model = PeftModel.from_pretrained(model, a.adapter).eval()
inp = load_file(a.inputs)
ids = inp["input_ids"].long()
kw = dict(input_ids=ids, attention_mask=inp["attention_mask"].long(),
          pixel_values=inp["pixel_values"].float(), image_grid_thw=inp["image_grid_thw"].long(),
          mm_token_type_ids=(ids == model.config.image_token_id).long())
with torch.no_grad():
    ref = model(**kw).logits.float()
    with model.disable_adapter():
        base = model(**kw).logits.float()
got = load_file(a.mmft)["logits"].float()
m = inp["attention_mask"].bool()
d = (got - ref)[m]
err = d.abs().max().item()
rel = (d.norm() / ref[m].norm()).item()
effect = (ref - base)[m].abs().max().item()
print(f"PEFT {__import__('peft').__version__}: mmft adapter logits vs PEFT: max abs {err:.3g}, rel L2 {rel:.3g} "
      f"(adapter moves logits by up to {effect:.3g}; tolerance {a.tol})")
if effect < 10 * a.tol:
    print("the adapter barely changes the logits: the check would not see a wrong load")
    sys.exit(1)
sys.exit(0 if err <= a.tol else 1)
