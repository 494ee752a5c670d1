"""A LoRA linear layer with one fused autograd function: the same maths as peft's, less memory and time.

The bf16 input is kept once (shared by the frozen and the low-rank product), the dropped input is recomputed
in backward, the update is added in place, and dropout is drawn as dropped positions (geometric gaps: exact
Bernoulli, far fewer draws). It plugs into peft through its documented custom-module registration and keeps
peft's parameters and names, so saving, loading and merging stay peft's own. Figures: docs/performance.md.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from peft.tuners.lora.layer import Linear as PeftLoraLinear


def dropped_positions(
    n: int, p: float, device: torch.device | None = None, *, draws: int | None = None
) -> torch.Tensor:
    """Sorted flat indices of the elements that i.i.d. dropout with rate `p` drops among `n` (global torch RNG).

    Position j is dropped with probability p independently of the others: the gaps between drops are
    geometric, `floor(log(1-u) / log(1-p))` for uniform u (float64, so the tail is not cut short). `draws`
    uniforms are drawn at a time (default: enough to pass n with all but negligible probability).
    """
    if p <= 0 or n == 0:
        return torch.empty(0, dtype=torch.int64, device=device)
    mean = n * p
    draws = draws or int(mean + 6 * math.sqrt(mean) + 16)
    log_keep = math.log1p(-p)
    parts, start = [], 0
    while True:
        u = torch.rand(draws, dtype=torch.float64, device=device)
        gaps = torch.floor(torch.log1p(-u) / log_keep).to(torch.int64) + 1
        pos = torch.cumsum(gaps, 0) + (start - 1)
        if int(pos[-1]) >= n:
            parts.append(pos[pos < n])
            return parts[0] if len(parts) == 1 else torch.cat(parts)
        parts.append(pos)
        start = int(pos[-1]) + 1


def _zero_at(t: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """`t` with the flat `positions` set to zero, in place (t must be contiguous)."""
    t.view(-1).index_fill_(0, positions, 0)
    return t


class LoraLinearFn(torch.autograd.Function):
    """y = x W^T + b + scaling * (drop(x) A^T) B^T.

    The products run in the input's dtype, as under autocast: with bf16 activations, A and B (fp32 master
    weights) are cast to bf16 for the matmuls and their gradients come back in fp32. The low-rank update is
    accumulated into the frozen product in place (`addmm_`), so no full-width fp32 tensor is made.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scaling: float, p: float):
        a, b = lora_a.to(x.dtype), lora_b.to(x.dtype)
        drop = None if p == 0 else dropped_positions(x.numel(), p, x.device)
        keep_scale = 1.0 / (1.0 - p)
        xd = x if drop is None else _zero_at(x.clone(memory_format=torch.contiguous_format), drop)
        h = xd.flatten(0, -2) @ a.t()  # (tokens, r)
        if drop is not None:
            h.mul_(keep_scale)
        out = F.linear(x, weight, bias)
        out.view(-1, out.shape[-1]).addmm_(h, b.t(), alpha=scaling)
        ctx.save_for_backward(x, weight, a, b, h, drop)  # A and B as cast for forward: no second cast
        ctx.scaling, ctx.keep_scale, ctx.has_bias = scaling, keep_scale, bias is not None
        ctx.lora_dtypes = (lora_a.dtype, lora_b.dtype)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, a, b, h, drop = ctx.saved_tensors
        s, c = ctx.scaling, ctx.keep_scale
        g = grad.reshape(-1, grad.shape[-1]).to(x.dtype)
        x2 = x.flatten(0, -2)
        gb = g @ b  # (tokens, r): gradient at the rank-r product, before scaling
        grad_x = grad_w = grad_bias = grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = g @ weight
            if drop is None:
                grad_x.addmm_(gb, a, alpha=s)
            else:
                grad_x.add_(_zero_at(gb @ a, drop), alpha=s * c)
            grad_x = grad_x.view(x.shape)
        if ctx.needs_input_grad[1]:
            grad_w = g.t() @ x2
        if ctx.needs_input_grad[2] and ctx.has_bias:
            grad_bias = g.sum(0)
        if ctx.needs_input_grad[3]:
            xd = x2 if drop is None else _zero_at(x2.clone(memory_format=torch.contiguous_format), drop)
            grad_a = (gb.t() @ xd).to(ctx.lora_dtypes[0]).mul_(s * c)
        if ctx.needs_input_grad[4]:
            grad_b = (g.t() @ h).to(ctx.lora_dtypes[1]).mul_(s)
        return grad_x, grad_w, grad_bias, grad_a, grad_b, None, None


class FusedLoraLinear(PeftLoraLinear):
    """peft's LoRA linear layer whose plain-LoRA forward goes through `LoraLinearFn`."""

    def _fused_adapter(self, kwargs) -> str | None:
        """The single active vanilla adapter, when the fused path computes exactly what peft would."""
        if self.disable_adapters or self.merged or kwargs or self.fan_in_fan_out:
            return None
        active = [a for a in self.active_adapters if a in self.lora_A]
        if len(active) != 1:
            return None
        name = active[0]
        base = self.get_base_layer()
        if name in self.lora_variant or self.lora_bias.get(name) or type(base) is not torch.nn.Linear:
            return None
        return name

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        name = None if args else self._fused_adapter(kwargs)
        if name is None:
            return super().forward(x, *args, **kwargs)
        base = self.get_base_layer()
        drop = self.lora_dropout[name]
        p = drop.p if isinstance(drop, torch.nn.Dropout) and drop.training else 0.0
        return LoraLinearFn.apply(
            x,
            base.weight,
            base.bias,
            self.lora_A[name].weight,
            self.lora_B[name].weight,
            float(self.scaling[name]),
            float(p),
        )
