"""RMSNorm forward + backward: transformers' eager LlamaRMSNorm vs tunesmith's compiled FusedRMSNorm.

SmolLM2-135M's width (576), bf16, frozen weight (LoRA), at the token counts of packed training batches.
Prints a table of ratios measured in this run; the first compiled call (compiling) is timed apart.

    python benchmarks/fused.py [--threads 2] [--repeats 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def timed(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats * 1e3


def main() -> None:
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    from tunesmith.model.fused import fuse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    width = 576
    eager = LlamaRMSNorm(width, eps=1e-5).bfloat16().requires_grad_(False)
    eager.weight.data.normal_(1.0, 0.1)
    holder = torch.nn.Sequential(LlamaRMSNorm(width, eps=1e-5).bfloat16().requires_grad_(False))
    holder[0].weight.data.copy_(eager.weight)
    assert fuse(holder) == 1
    fused = holder[0]
    x = torch.randn(1, 64, width, dtype=torch.bfloat16, requires_grad=True)
    started = time.perf_counter()
    fused(x).sum().backward()
    print(f"first compiled call (compiling): {time.perf_counter() - started:.1f} s\n")
    print(f"{'tokens':>7s} {'eager ms':>9s} {'fused ms':>9s} {'speed-up':>9s} {'max |diff|':>11s}")
    for tokens in (512, 1400, 2200, 4096):
        x = torch.randn(1, tokens, width, dtype=torch.bfloat16, requires_grad=True)
        g = torch.randn_like(x)
        a = timed(lambda: eager(x).backward(g), args.repeats)
        b = timed(lambda: fused(x).backward(g), args.repeats)
        with torch.no_grad():
            diff = float((eager(x).float() - fused(x).float()).abs().max())
        print(f"{tokens:7d} {a:9.2f} {b:9.2f} {a / b:8.2f}x {diff:11.4f}")


if __name__ == "__main__":
    main()
