"""The model: resolve and load a base model, make it trainable (LoRA/DoRA/full), load a trained run.

`build_model(config, ...)` is the one way every stage gets a model from a config.
"""

from __future__ import annotations

import torch

from tunesmith.config import Config
from tunesmith.model.adapters import apply_method
from tunesmith.model.load import ModelSource, device_of, load_model, load_tokenizer, resolve_model


def build_model(
    config: Config,
    *,
    device: str | torch.device = "cpu",
    source: ModelSource | None = None,
    trainable: bool = True,
    dtype: str | None = None,
    quantize: str | None = None,
    trust_remote_code: bool | None = None,
):
    """The model `config.model` names, on `device`; made trainable by `config.method` unless `trainable` is
    False (the base model alone). `source`, `dtype`, `quantize` and `trust_remote_code` override the config's."""
    m = config.model
    model = load_model(
        source or resolve_model(m.name),
        dtype=dtype or m.dtype,
        attention=m.attention,
        trust_remote_code=m.trust_remote_code if trust_remote_code is None else trust_remote_code,
        device=device,
        quantize=quantize or m.quantize,
    )
    return apply_method(model, config.method, config.lora, origin=config.where("lora.targets")) if trainable else model


__all__ = ["ModelSource", "build_model", "device_of", "load_model", "load_tokenizer", "resolve_model"]
