"""Make a base model trainable: LoRA, DoRA or rsLoRA through peft, or full fine-tuning."""

from __future__ import annotations

from tunesmith.config import LoraSpec


def apply_method(model, method: str, lora: LoraSpec):
    """Return the model to train: a peft model for lora/dora, the model itself (all weights) for full."""
    if method == "full":
        model.requires_grad_(True)
        return model
    import torch
    from peft import LoraConfig, get_peft_model

    from tunesmith.fastlora import FusedLoraLinear

    cfg = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                     target_modules=lora.targets, use_dora=method == "dora", use_rslora=lora.rslora,
                     bias="none", task_type="CAUSAL_LM")
    cfg._register_custom_module({torch.nn.Linear: FusedLoraLinear})  # peft's documented extension point
    return get_peft_model(model, cfg)


def trainable_state(model) -> dict:
    """The trainable tensors by name: what a checkpoint must hold to resume exactly."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total
