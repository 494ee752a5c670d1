"""A LoRA linear layer with one fused autograd function: same maths as peft's, less memory and time.

peft's `lora.Linear` computes `base(x) + B(A(dropout(x.float()))) * scaling` through ordinary modules, so
autograd keeps, for every adapted layer, an fp32 copy of the input, an fp32 dropout mask and the fp32
dropped input: about 3 fp32 tensors of the input's size per layer, where the frozen layer itself keeps one
bf16 tensor; and it builds the layer's output in fp32 before casting it back. `LoraLinearFn` keeps the
(bf16) input once, shared with the frozen product, a 1-byte mask and the rank-r product, recomputes the
dropped input in backward, and adds the low-rank update into the frozen product in place.

The dropout mask is drawn as 16-bit random integers (four per 64-bit draw) compared with `p * 2**16`,
about 5x cheaper on CPU than `nn.Dropout`'s float Bernoulli; the rate is then `round(p * 2**16) / 2**16`
(for p = 0.05: 0.0500031).

The layer plugs into peft through its documented custom-module registration
(`LoraConfig._register_custom_module`), subclasses peft's `lora.Linear` and keeps its parameters and names,
so saving, loading, merging and every non-vanilla case (DoRA, merged, disabled, mixed adapters) are
peft's own. Saved adapters load into plain peft unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from peft.tuners.lora.layer import Linear as PeftLoraLinear

_LEVELS = 1 << 16


def dropout_mask(shape: torch.Size, p: float, device: torch.device) -> tuple[torch.Tensor, float]:
    """A boolean keep-mask with drop rate `p` quantised to 1/65536, and the kept rows' scale."""
    threshold = round(p * _LEVELS)
    n = 1
    for d in shape:
        n *= d
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(1 << 63), None)
    keep = bits.view(torch.int16)[:n].view(shape) >= threshold - (1 << 15)
    return keep, _LEVELS / (_LEVELS - threshold)


def _as(keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The boolean mask as 0/1 values of `dtype` (through uint8: ~8x faster than casting bool on CPU)."""
    return keep.view(torch.uint8).to(dtype)


class LoraLinearFn(torch.autograd.Function):
    """y = x W^T + b + scaling * (drop(x) A^T) B^T.

    The products run in the input's dtype, as under autocast: with bf16 activations, A and B (fp32 master
    weights) are cast to bf16 for the matmuls and their gradients come back in fp32. The low-rank update is
    accumulated into the frozen product in place (`addmm_`), so no full-width fp32 tensor is made.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scaling: float, p: float):
        a, b = lora_a.to(x.dtype), lora_b.to(x.dtype)
        keep, keep_scale = (None, 1.0) if p == 0 else dropout_mask(x.shape, p, x.device)
        xd = x if keep is None else x * _as(keep, x.dtype)
        h = xd.flatten(0, -2) @ a.t()  # (tokens, r)
        if keep is not None:
            h.mul_(keep_scale)
        out = F.linear(x, weight, bias)
        out.view(-1, out.shape[-1]).addmm_(h, b.t(), alpha=scaling)
        ctx.save_for_backward(x, weight, lora_a, lora_b, h, keep)
        ctx.scaling, ctx.keep_scale, ctx.has_bias = scaling, keep_scale, bias is not None
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, lora_a, lora_b, h, keep = ctx.saved_tensors
        s, c = ctx.scaling, ctx.keep_scale
        g = grad.reshape(-1, grad.shape[-1]).to(x.dtype)
        x2 = x.flatten(0, -2)
        a, b = lora_a.to(x.dtype), lora_b.to(x.dtype)
        gb = g @ b  # (tokens, r): gradient at the rank-r product, before scaling
        grad_x = grad_w = grad_bias = grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = g @ weight
            if keep is None:
                grad_x.addmm_(gb, a, alpha=s)
            else:
                grad_x.add_((gb @ a).mul_(_as(keep, x.dtype).flatten(0, -2)), alpha=s * c)
            grad_x = grad_x.view(x.shape)
        if ctx.needs_input_grad[1]:
            grad_w = g.t() @ x2
        if ctx.needs_input_grad[2] and ctx.has_bias:
            grad_bias = g.sum(0)
        if ctx.needs_input_grad[3]:
            xd = x2 if keep is None else x2 * _as(keep, x.dtype).flatten(0, -2)
            grad_a = (gb.t() @ xd).to(lora_a.dtype).mul_(s * c)
        if ctx.needs_input_grad[4]:
            grad_b = (g.t() @ h).to(lora_b.dtype).mul_(s)
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
        return LoraLinearFn.apply(x, base.weight, base.bias, self.lora_A[name].weight, self.lora_B[name].weight,
                                  float(self.scaling[name]), float(p))
