"""Fused kernels for CPU training (`train.fuse`): RMSNorm, and the cross-entropy's softmax gradient.

Each formula is one small function given to `torch.compile` (one loop forward, one backward on CPU).
`fuse(model)` swaps `FusedRMSNorm` in for each Llama-style RMSNorm after checking it bit for bit; weights keep
their names. The compiled kernels run only while training on a CPU. Why and how much: docs/performance.md.
"""

from __future__ import annotations

import functools
import logging

import torch

from tunesmith.hardware import can_compile

log = logging.getLogger("tunesmith")

# `train.fuse: auto`: smaller models or shorter runs would not pay back the time spent compiling
FUSE_MIN_PARAMETERS, FUSE_MIN_STEPS = 50_000_000, 100


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Llama's RMSNorm: normalise in fp32, round to the input dtype, then scale by the weight."""
    xf = x.float()
    return weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


@functools.cache
def compiled(fn):
    """`fn` through torch.compile, once per function (dynamic shapes: one graph for every batch length)."""
    return torch.compile(fn, dynamic=True)


def compiles_on(device: torch.device) -> bool:
    """Where the fused kernels run compiled: CPUs with a C++ compiler (elsewhere the eager formulas run)."""
    return device.type == "cpu" and can_compile()


class FusedRMSNorm(torch.nn.Module):
    def __init__(self, weight: torch.nn.Parameter, eps: float):
        super().__init__()
        self.weight = weight
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # compiled where a gradient flows through it; the first block's norm sees the frozen embeddings' output
        # (no grad under LoRA): compiling that case too would be a second graph (a recompile) for one call
        grads = torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
        fn = compiled(rms_norm) if grads and compiles_on(x.device) else rms_norm
        return fn(x, self.weight, self.variance_epsilon)

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}, fused"


def _as_rms_norm(module: torch.nn.Module) -> FusedRMSNorm | None:
    weight, eps = getattr(module, "weight", None), getattr(module, "variance_epsilon", None)
    if (
        not isinstance(weight, torch.nn.Parameter)
        or weight.dim() != 1
        or not isinstance(eps, float)
        or any(True for _ in module.children())
    ):
        return None
    return FusedRMSNorm(weight, eps)


def _same(
    original: torch.nn.Module, fused: torch.nn.Module, width: int, dtype: torch.dtype, device: torch.device
) -> bool:
    """Whether `fused` computes what `original` computes, bit for bit, on a seeded probe input (eval mode, no
    gradients)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, width, generator=g).to(device=device, dtype=dtype)
    was_training = original.training
    original.eval()
    try:
        with torch.no_grad():
            return bool(torch.equal(original(x), fused(x)))
    except Exception as e:
        log.debug("fuse: %s not fused (%s)", type(original).__name__, e)
        return False
    finally:
        original.train(was_training)


def fuse(model: torch.nn.Module) -> int:
    """Swap `FusedRMSNorm` in for the model's Llama-style RMSNorms; return how many."""
    swaps = []
    for name, module in model.named_modules():
        fused = _as_rms_norm(module) if name else None
        if fused is None:
            continue
        w = fused.weight
        if _same(module, fused, w.shape[0], w.dtype if w.is_floating_point() else torch.float32, w.device):
            fused.train(module.training)
            swaps.append((name, fused))
    for name, fused in swaps:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, fused)
    return len(swaps)


def wants_fusion(model: torch.nn.Module, config, device: torch.device, steps: int) -> bool:
    """`train.fuse` for a run of `steps` optimizer steps: CPU training only, not with `train.compile` (which
    compiles whole blocks) nor on a 4-bit model. `auto` fuses where compiling (5-30 s over the first steps)
    pays back: models of `FUSE_MIN_PARAMETERS`+ parameters, runs of `FUSE_MIN_STEPS`+ steps."""
    t = config.train
    if not t.fuse or t.compile or device.type != "cpu" or config.model.quantize != "none":
        return False
    return t.fuse != "auto" or (
        steps >= FUSE_MIN_STEPS and sum(p.numel() for p in model.parameters()) >= FUSE_MIN_PARAMETERS
    )


def fuse_for_training(model: torch.nn.Module, config, device: torch.device, steps: int) -> int:
    """Fuse the model's RMSNorms where `wants_fusion` says so; return how many were swapped. (The run's
    loss is fused on the same condition: `training.loss.TokenLoss(fused=...)`.)"""
    return fuse(model) if wants_fusion(model, config, device, steps) else 0
