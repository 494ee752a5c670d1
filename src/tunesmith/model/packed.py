"""Linear layers with their weights packed once for oneDNN, for decoding on a CPU (`pack_linears`).

oneDNN's linear on a weight reordered once into its blocked layout (the one `torch.compile`'s CPU freezing uses)
ran SmolLM2's float32 decode step 1.4-1.5x faster than torch's own linear (MKL on the weight as it lies) on 2 EPYC
cores; outputs agree to float32 rounding (another summation order). Figures: docs/eval.md.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger("tunesmith")

PROBE_RTOL = 1e-4  # a packed layer's probe output against F.linear's, relative to the output's scale


def can_pack(weight: torch.Tensor) -> bool:
    """Whether this PyTorch build packs `weight` for oneDNN: a float32 or bfloat16 matrix on a CPU."""
    return (
        weight.device.type == "cpu"
        and weight.dtype in (torch.float32, torch.bfloat16)
        and weight.dim() == 2
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


class PackedLinear(torch.nn.Module):
    """`linear` on a weight packed once for oneDNN. Inference only: the packed weight is not a parameter (it neither
    trains nor saves; the model it sits in is a throwaway copy)."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), None)
        self.bias = None if linear.bias is None else linear.bias.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed for oneDNN"


def _agrees(linear: torch.nn.Linear, packed: PackedLinear) -> bool:
    """The packed layer's output on a few random rows is F.linear's, to float32 rounding (bf16's for bf16)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, linear.in_features, generator=g).to(linear.weight.dtype)
    want = torch.nn.functional.linear(x, linear.weight, linear.bias).float()
    got = packed(x).float()
    rtol = PROBE_RTOL if linear.weight.dtype == torch.float32 else 3e-2
    return got.shape == want.shape and bool(((got - want).abs().max() <= rtol * (want.abs().max() + 1)).item())


@torch.no_grad()
def pack_linears(model: torch.nn.Module) -> int:
    """Swap a `PackedLinear` in for every plain `torch.nn.Linear` in `model` (in place), once the first one's probe
    agrees with F.linear; the number swapped (0: this build or device cannot, and `model` is unchanged)."""
    swaps = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear and can_pack(child.weight)
    ]
    if not swaps:
        return 0
    try:
        first = PackedLinear(swaps[0][2])
        if not _agrees(swaps[0][2], first):
            log.warning("oneDNN's packed linear disagreed with torch's on a probe: decoding with torch's")
            return 0
    except RuntimeError as e:  # a build whose oneDNN lacks the kernel for this dtype
        log.info("linear layers left unpacked: %s", e)
        return 0
    for i, (parent, name, child) in enumerate(swaps):
        setattr(parent, name, first if i == 0 else PackedLinear(child))
    return len(swaps)
