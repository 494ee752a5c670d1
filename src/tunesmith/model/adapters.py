"""Make a base model trainable: LoRA, DoRA or rsLoRA through peft (QLoRA on a 4-bit model), or full fine-tuning."""

from __future__ import annotations

from tunesmith.config import LoraSpec


def apply_method(model, method: str, lora: LoraSpec):
    """Return the model to train: a peft model for lora/dora, the model itself (all weights) for full.

    On a model loaded in 4 bits (QLoRA) peft's own bitsandbytes LoRA layers are used, after peft's
    `prepare_model_for_kbit_training` (norms and head in fp32, input gradients on; no checkpointing).
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
    if is_quantized(model):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:  # the fused layer is for plain (unquantized) nn.Linear weights only
        cfg._register_custom_module({torch.nn.Linear: FusedLoraLinear})  # peft's documented extension point
    return get_peft_model(model, cfg)


def is_quantized(model) -> bool:
    """Whether transformers loaded the model's weights quantized (bitsandbytes 4-bit here)."""
    return getattr(model, "hf_quantizer", None) is not None


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total
