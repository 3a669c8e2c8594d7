#!/usr/bin/env python3
"""Times transformers' Qwen2-VL-2B forward (prefill) on the shapes of
bench/prefill: 8 prompts x 427 tokens, one 504x504 image (36x36 patches,
324 image tokens) each, random bf16 weights, on CUDA."""
import argparse, json, time

import torch
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

p = argparse.ArgumentParser()
p.add_argument("--config", required=True)
p.add_argument("--batch", type=int, default=8)
p.add_argument("--len", type=int, default=427)
p.add_argument("--grid", type=int, default=36)
p.add_argument("--reps", type=int, default=5)
a = p.parse_args()
with open(a.config) as f:
    cfg = Qwen2VLConfig(**json.load(f))
model = Qwen2VLForConditionalGeneration(cfg).to(torch.bfloat16).cuda().eval()
img = a.grid * a.grid // 4
text = a.len - img - 2
rows = []
for _ in range(a.batch):
    pre = torch.randint(0, 150000, (text // 2,)).tolist()
    post = torch.randint(0, 150000, (a.len - text // 2 - img - 2,)).tolist()
    rows.append(pre + [cfg.vision_start_token_id] + [cfg.image_token_id] * img + [cfg.vision_end_token_id] + post)
ids = torch.tensor(rows).cuda()
kw = dict(
    input_ids=ids,
    attention_mask=torch.ones_like(ids),
    pixel_values=torch.randn(a.batch * a.grid * a.grid, 1176).to(torch.bfloat16).cuda(),
    image_grid_thw=torch.tensor([[1, a.grid, a.grid]] * a.batch).cuda(),
    mm_token_type_ids=(ids == cfg.image_token_id).long(),
    use_cache=True,
    logits_to_keep=1,
)
with torch.no_grad():
    model(**kw)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    for _ in range(a.reps):
        model(**kw)
    torch.cuda.synchronize()
el = (time.time() - t0) / a.reps
print(f"transformers prefill {a.batch} x {a.len}: {el*1000:.1f} ms per batch, {a.batch*a.len/el:.0f} tokens/s, "
      f"peak GPU memory {torch.cuda.max_memory_allocated()/2**30:.2f} GiB")
