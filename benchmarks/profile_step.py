"""Where a tunesmith LoRA training step spends its time: torch.profiler over real steps, grouped by kind of op.

The same job as `train_throughput.py` (SmolLM2-135M, LoRA r=16 all-linear, dropout 0.05, its 40 chat rows,
batch 8), loaded and batched as `tunesmith.train` does (dtype, attention, packing, fusion at their defaults). One
warm-up step, then `--steps` profiled steps.

    python benchmarks/profile_step.py [--steps 2] [--threads 2] [--top 15]
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
GROUPS = {  # op name -> kind; anything not listed is "other"
    "matmul (linear layers, LoRA, LM head, attention)": {"aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm"},
    "attention softmax and masking": {"aten::_softmax", "aten::_softmax_backward_data", "aten::masked_fill_"},
    "elementwise (RMSNorm, rotary, SiLU, residuals, scaling)": {
        "aten::mul",
        "aten::mul_",
        "aten::add",
        "aten::add_",
        "aten::sub",
        "aten::sub_",
        "aten::pow",
        "aten::rsqrt",
        "aten::mean",
        "aten::silu",
        "aten::silu_backward",
        "aten::neg",
        "aten::div",
        "aten::div_",
        "aten::sum",
        "aten::exp_",
        "aten::exp",
        "aten::logsumexp",
        "aten::cat",
        "aten::index",
        "aten::index_put_",
    },
    "copies and dtype casts": {"aten::copy_", "aten::clone", "aten::contiguous", "aten::fill_", "aten::zero_"},
    "LoRA dropout (random draws, zeroing)": {
        "aten::uniform_",
        "aten::index_fill_",
        "aten::cumsum",
        "aten::log1p",
        "aten::floor",
        "aten::nonzero",
    },
    "optimizer (AdamW, clipping)": {
        "aten::_foreach_mul_",
        "aten::_foreach_add_",
        "aten::_foreach_addcmul_",
        "aten::_foreach_addcdiv_",
        "aten::_foreach_sqrt",
        "aten::_foreach_div_",
        "aten::_foreach_lerp_",
        "aten::_foreach_norm",
        "aten::linalg_vector_norm",
    },
}


COMPILED = "## Call CompiledFxGraph"  # the profiler's event for a compiled graph's own (C++) kernels
FUSED = "fused kernels (compiled RMSNorm, cross-entropy gradient)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    sys.path.insert(0, str(ROOT))
    import train_throughput as bench
    from tunesmith.config import Config
    from tunesmith.pack import collate, plan_batches
    from tunesmith.render import IGNORE
    from tunesmith.training.setup import trainable_model

    torch.set_num_threads(args.threads)
    source, tok, _, rows, _ = bench.setup(
        argparse.Namespace(threads=args.threads, steps=5, batch=8, model="smollm2-135m")
    )
    cfg = Config.model_validate(
        {"data": {"train": "unused"}, "lora": {"r": bench.RANK, "alpha": bench.ALPHA, "dropout": 0.05}}
    )
    built = trainable_model(cfg, source, torch.device("cpu"), steps=1000)  # as a run of 100+ steps builds it
    model, packing, fused = built.model, built.packing, built.fused_norms
    lengths = [len(r.input_ids) for r in rows]
    batches = [
        collate([rows[i] for i in b], tok.pad_token_id, packing) for b in plan_batches(lengths, 8, seed=0, epoch=0)
    ]
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=bench.LR)
    model.train()

    def step(batch) -> None:
        loss, _ = built.loss(model, batch)
        (loss / max(int((batch["labels"][:, 1:] != IGNORE).sum()), 1)).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step(batches[0])  # warm-up: allocation, first-call overheads
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for b in batches[1 : 1 + args.steps]:
            step(b)
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    compiled = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key.startswith(COMPILED))
    total = sum(e.self_cpu_time_total for e in events) + compiled
    by_group: dict[str, float] = collections.defaultdict(float)
    by_group[FUSED] = compiled
    for e in events:
        group = next((g for g, names in GROUPS.items() if e.key in names), "other")
        by_group[group] += e.self_cpu_time_total
    print(
        f"dtype {model.dtype}, attention {cfg.model.attention}, packing {packing}, {fused} fused modules, "
        f"{args.threads} threads, "
        f"{args.steps} steps\n"
    )
    print(f"{'kind of op':58s} {'share':>7s}")
    for g, t in sorted(by_group.items(), key=lambda kv: -kv[1]):
        print(f"{g:58s} {100 * t / total:6.1f}%")
    print(f"\n{'op':36s} {'share':>7s} {'calls':>7s}")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.top]:
        print(f"{e.key:36s} {100 * e.self_cpu_time_total / total:6.1f}% {e.count:7d}")


if __name__ == "__main__":
    main()
