"""Make a base model trainable: LoRA, DoRA or rsLoRA through peft (QLoRA on a 4-bit model), or full fine-tuning."""

from __future__ import annotations

from tunesmith.config import LoraSpec
from tunesmith.errors import ConfigError


def apply_method(model, method: str, lora: LoraSpec, *, origin: str | None = None):
    """Return the model to train: a peft model for lora/dora, the model itself (all weights) for full.

    On a model loaded in 4 bits (QLoRA) peft's own bitsandbytes LoRA layers are used, after peft's
    `prepare_model_for_kbit_training` (norms and head in fp32, input gradients on; no checkpointing).
    `lora.targets` that the model cannot take are a `ConfigError` at `origin` (where the setting was given).
    """
    if method == "full":
        model.requires_grad_(True)
        return model
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from tunesmith.model.fastlora import FusedLoraLinear

    cfg = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,  # type: ignore[arg-type]  # peft types it int; any number works
        lora_dropout=lora.dropout,
        target_modules=lora.targets,
        use_dora=method == "dora",
        use_rslora=lora.rslora,
        bias="none",
        task_type="CAUSAL_LM",
    )
    check_targets(model, lora.targets, origin)
    if is_quantized(model):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:  # the fused layer is for plain (unquantized) nn.Linear weights only
        cfg._register_custom_module({torch.nn.Linear: FusedLoraLinear})  # peft's documented extension point
    try:
        return get_peft_model(model, cfg)
    except ValueError as e:  # a pattern that matches nothing, or only modules LoRA cannot wrap (a norm)
        if "arget module" not in str(e):
            raise
        reason = str(e).split(". ")[0].removesuffix(".")
        where = dict(origin=origin, field="lora.targets")
        raise ConfigError(f"{reason} (its linear layers: {_linear_names(model)})", **where) from None


def check_targets(model, targets: str | list[str], origin: str | None = None) -> None:
    """Every module named in `targets` must be in the model: peft refuses only when none matches, so a typo
    among several names would silently train fewer layers than asked."""
    if not isinstance(targets, list):
        return
    names = [name for name, _ in model.named_modules() if name]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        shown = ", ".join(f"'{t[:40]}'" for t in missing[:5])
        reason = f"{shown} {'names' if len(missing) == 1 else 'name'} no module of the model"
        raise ConfigError(f"{reason} (its linear layers: {_linear_names(model)})", origin=origin, field="lora.targets")


def _linear_names(model) -> str:
    """The distinct last names of the model's linear layers (q_proj, v_proj, ...): what `lora.targets` takes."""
    import torch

    found = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
    return ", ".join(found[:20]) + (f" and {len(found) - 20} more" if len(found) > 20 else "") if found else "none"


def is_quantized(model) -> bool:
    """Whether transformers loaded the model's weights quantized (bitsandbytes 4-bit here)."""
    return getattr(model, "hf_quantizer", None) is not None


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total
