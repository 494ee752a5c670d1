"""A trained run's model, loaded back from its run folder: base model + PEFT adapter, or the whole tuned model."""

from __future__ import annotations

from pathlib import Path

from tunesmith.errors import RunError
from tunesmith.hardware import kept_process_state, resolve_device
from tunesmith.model import ModelSource, build_model
from tunesmith.runfolder import RunFolder, run_config


def load_tuned(run_dir: str | Path, dtype: str | None = None, device: str | None = None):
    """(model, tokenizer, config) of a run, in eval mode.

    By default the model is loaded as the run trained it (dtype, 4-bit base for QLoRA) on `model.device`.
    `dtype` overrides the dtype and loads the base unquantized (exports compare against a float32 reference
    and merge into full-precision weights); `device` overrides where it is loaded.
    """
    from transformers import AutoTokenizer

    run = RunFolder(run_dir)
    config = run_config(run.root)
    where = resolve_device(device or config.model.device)
    with kept_process_state(seed=0):  # the caller's RNG is left as it was
        if run.has_adapter:
            from peft import PeftModel

            base = build_model(
                config, device=where, dtype=dtype, trainable=False, quantize=None if dtype is None else "none"
            )
            model = PeftModel.from_pretrained(base, run.adapter)
            folder = run.adapter
        elif run.has_model:
            folder = run.model
            model = build_model(
                config,
                trainable=False,
                source=ModelSource(name=str(folder), folder=folder),
                quantize="none",
                trust_remote_code=False,
                device=where,
                dtype=dtype,
            )
        else:
            raise RunError(
                "has no trained model yet (no adapter/ or model/ folder): is training finished?", origin=str(run.root)
            )
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer, config
