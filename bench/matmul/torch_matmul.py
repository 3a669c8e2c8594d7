"""Peer figure for `mmft bench matmul`: the same chain of bf16 N×N×N products in PyTorch."""
import json, sys, time
import torch

n = int(sys.argv[1]) if len(sys.argv) > 1 else 8192
chain = int(sys.argv[2]) if len(sys.argv) > 2 else 8
iters = int(sys.argv[3]) if len(sys.argv) > 3 else 10
x = torch.sin(torch.arange(n * n, device="cuda", dtype=torch.float32)).reshape(n, n).bfloat16()
y = (torch.cos(torch.arange(n * n, device="cuda", dtype=torch.float32)) / n).reshape(n, n).bfloat16()

def run():
    z = x
    for _ in range(chain):
        z = z @ y
    return z.float().sum().item()

run()
torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(iters):
    run()
dt = (time.perf_counter() - t) / iters
print(json.dumps({"benchmark": "matmul", "impl": "torch " + torch.__version__, "card": torch.cuda.get_device_name(0),
                  "n": n, "chain": chain, "dtype": "bf16", "seconds_per_iteration": dt,
                  "tflops": 2 * n**3 * chain / dt / 1e12}))
