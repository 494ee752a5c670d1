"""Reading a finished (or running) run folder: its config, summary and tuned model."""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith.checkpoint import atomic_write_text
from tunesmith.config import Config, load_config
from tunesmith.errors import RunError


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def run_config(run_dir: str | Path) -> Config:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunError("not a tunesmith run folder (no config.yaml)", origin=str(run_dir))
    return load_config(path)


def load_tuned(run_dir: str | Path, dtype: str | None = None, device: str | None = None):
    """(model, tokenizer, config) of a run: base model + PEFT adapter, or the fully tuned model.

    By default the model is loaded as the run trained it (dtype, 4-bit base for QLoRA) on `model.device`.
    `dtype` overrides the dtype and loads the base unquantized (exports compare against a float32 reference
    and merge into full-precision weights); `device` overrides where it is loaded.
    """
    import torch
    from transformers import AutoTokenizer

    from tunesmith.hardware import resolve_device
    from tunesmith.models import load_model, resolve_model

    run_dir = Path(run_dir)
    config = run_config(run_dir)
    where = {"device": resolve_device(device or config.model.device),
             "quantize": config.model.quantize if dtype is None else "none"}
    torch.manual_seed(0)
    if (run_dir / "adapter" / "adapter_config.json").is_file():
        from peft import PeftModel

        base = load_model(resolve_model(config.model.name), dtype=dtype or config.model.dtype,
                          attention=config.model.attention, trust_remote_code=config.model.trust_remote_code, **where)
        model = PeftModel.from_pretrained(base, run_dir / "adapter")
        folder = run_dir / "adapter"
    elif (run_dir / "model" / "config.json").is_file():
        from tunesmith.models import ModelSource

        folder = run_dir / "model"
        model = load_model(ModelSource(name=str(folder), folder=folder), dtype=dtype or config.model.dtype,
                           attention=config.model.attention, device=where["device"])
    else:
        raise RunError("has no trained model yet (no adapter/ or model/ folder): is training finished?",
                       origin=str(run_dir))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer, config
