"""Merge a LoRA/DoRA adapter into its base weights, and prove the merged model computes the same function."""

from __future__ import annotations

import logging

import torch

from tunesmith.errors import ExportError
from tunesmith.export.checks import Probes, RunModel, logit_tolerance, max_gap, probe_logits

log = logging.getLogger("tunesmith")


def merge_verified(run: RunModel, probes: Probes) -> tuple[torch.nn.Module, dict]:
    """The plain (peft-free) model with the adapter merged in, and the check it passed.

    peft's `safe_merge` refuses non-finite merged weights; then the merged model's fp32 logits on every probe
    must equal the adapter model's within `logit_tolerance` (fp32 rounding at their scale), or an
    `ExportError` says by how much they differ.
    A fully fine-tuned run has nothing to merge and is returned as it is.
    """
    if not run.is_adapter:
        return run.model, {"merged": False, "reason": "full fine-tune: nothing to merge"}
    reference = probe_logits(run.model, probes)
    tolerance = logit_tolerance(reference)
    try:
        merged = run.model.merge_and_unload(safe_merge=True)
    except ValueError as e:  # peft: "NaNs detected in the merged weights. The adapter ... seems to be broken"
        raise ExportError(f"merging the adapter gives non-finite weights ({e}); nothing was written") from None
    bad = [n for n, p in merged.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise ExportError(f"the merged model has non-finite weights in {bad[:3]}; nothing was written")
    gap = max_gap(reference, probe_logits(merged, probes))
    log.info(
        "merge check: max |logit gap| merged vs adapter = %.3g over %d probes (limit %.2g)",
        gap,
        len(probes.sequences),
        tolerance,
    )
    if not gap <= tolerance:
        raise ExportError(
            f"the merged model does not match the adapter model: max |logit gap| {gap:.3g} > "
            f"{tolerance:.2g} (fp32) on the probe prompts; nothing was written"
        )
    return merged, {"merged": True, "probes": len(probes.sequences), "max_logit_gap": gap, "tolerance": tolerance}
