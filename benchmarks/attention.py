"""Causal attention forward + backward on SmolLM2's shapes: SDPA (PyTorch's CPU flash kernel) vs the blocked path.

Batch 8, 9 query heads sharing 3 key/value heads, head size 64, bf16; best of 5 runs per cell, both run in this
process one after the other, so the ratio is what to read.

    python benchmarks/attention.py [--threads 2] [--lengths 150,300,500]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from tunesmith.model.attention import block_causal_attention


def best_of(fn, runs: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lengths", default="150,300,500")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'tokens':>6s} {'SDPA ms':>8s} {'blocked ms':>11s} {'speed-up':>9s}")
    for s in (int(x) for x in args.lengths.split(",")):
        q, k, v = (torch.randn(8, n, s, 64, dtype=torch.bfloat16, requires_grad=True) for n in (9, 3, 3))
        sdpa = best_of(
            lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True).sum().backward()
        )
        ours = best_of(lambda: block_causal_attention(q, k, v, 64**-0.5).sum().backward())
        print(f"{s:6d} {sdpa * 1e3:8.1f} {ours * 1e3:11.1f} {sdpa / ours:8.2f}x")


if __name__ == "__main__":
    main()
