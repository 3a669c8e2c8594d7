#!/usr/bin/env python3
"""Reference side of the GPU parity test (run by tests/gpu/run.sh).

The reference logits are saved twice: transformers in bf16 (`logits`) and the
same bf16 weights computed in float32 with TF32 off (`logits_f32`, the ground
truth mmft's bf16 forward is held to).

Builds a Qwen2-VL-2B-shaped model with random bf16 weights from the assets'
config with transformers 5.17, saves it with save_pretrained, makes one batch
(3 images of different sizes, left padding), runs transformers' forward and
saves inputs and reference logits as safetensors for tests/gpu/compare.
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

p = argparse.ArgumentParser()
p.add_argument("--config", required=True, help="flat Hub config.json of Qwen2-VL-2B-Instruct")
p.add_argument("--out", required=True, help="output folder")
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()
torch.manual_seed(args.seed)
os.makedirs(args.out, exist_ok=True)

with open(args.config) as f:
    cfg = Qwen2VLConfig(**json.load(f))
model = Qwen2VLForConditionalGeneration(cfg).to(torch.bfloat16).cuda().eval()
model_dir = os.path.join(args.out, "model")
model.save_pretrained(model_dir)

img_tok, vs, ve = cfg.image_token_id, cfg.vision_start_token_id, cfg.vision_end_token_id
grids = [(1, 16, 16), (1, 24, 20), (1, 12, 28)]  # three sizes, in patches
rows, masks = [], []
g = torch.Generator().manual_seed(args.seed + 1)
for i, (t, h, w) in enumerate(grids):
    pre = torch.randint(0, 150000, (5 + 7 * i,), generator=g).tolist()
    post = torch.randint(0, 150000, (30 - 9 * i,), generator=g).tolist()
    rows.append(pre + [vs] + [img_tok] * (t * h * w // 4) + [ve] + post)
L = max(len(r) for r in rows)
input_ids = torch.zeros(len(rows), L, dtype=torch.long)
attention_mask = torch.zeros(len(rows), L, dtype=torch.long)
for i, r in enumerate(rows):
    input_ids[i, L - len(r):] = torch.tensor(r)
    attention_mask[i, L - len(r):] = 1
n_patches = sum(t * h * w for t, h, w in grids)
pixel_values = torch.randn(n_patches, 1176, generator=g)
image_grid_thw = torch.tensor(grids, dtype=torch.long)
mm_token_type_ids = (input_ids == img_tok).long()

with torch.no_grad():
    out = model(
        input_ids=input_ids.cuda(),
        attention_mask=attention_mask.cuda(),
        pixel_values=pixel_values.cuda().to(torch.bfloat16),
        image_grid_thw=image_grid_thw.cuda(),
        mm_token_type_ids=mm_token_type_ids.cuda(),
    )
save_file(
    {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "pixel_values": pixel_values.contiguous(),
        "image_grid_thw": image_grid_thw,
    },
    os.path.join(args.out, "inputs.safetensors"),
)
logits_bf16 = out.logits.float()
# Ground truth: the same bf16 weights computed in float32 (TF32 off).
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
model = model.float()
with torch.no_grad():
    out32 = model(
        input_ids=input_ids.cuda(),
        attention_mask=attention_mask.cuda(),
        pixel_values=pixel_values.cuda(),
        image_grid_thw=image_grid_thw.cuda(),
        mm_token_type_ids=mm_token_type_ids.cuda(),
    )
logits_f32 = out32.logits.float()
m = attention_mask.cuda().bool()
a, b = logits_bf16[m], logits_f32[m]
rel = ((a - b).norm() / b.norm()).item()
top1 = (a.argmax(-1) == b.argmax(-1)).float().mean().item()
print(f"peer: transformers bf16 vs transformers float32 (same weights): rel L2 logits error {rel:.4g}, "
      f"top-1 agreement {top1:.4f} over {int(m.sum())} positions")
save_file(
    {"logits": logits_bf16.cpu().contiguous(), "logits_f32": logits_f32.cpu().contiguous()},
    os.path.join(args.out, "reference.safetensors"),
)
print(f"saved model to {model_dir}, batch {tuple(input_ids.shape)}, {len(grids)} images")
