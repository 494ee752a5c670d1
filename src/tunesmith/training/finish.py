"""After the last step: the trained model as one plain module, the deliverable written atomically, and the
run's figures for `summary.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tunesmith.hardware import peak_rss_mb
from tunesmith.model import build_model
from tunesmith.runfolder import RunFolder, atomic_folder
from tunesmith.training import checkpoint, distributed
from tunesmith.training.fit import Fitted
from tunesmith.training.setup import Run


def gather(run: Run) -> dict | None:
    """Under FSDP, the trainable weights gathered whole (a collective every rank joins; on rank 0 the tensors,
    elsewhere nothing of use). None when the model is not sharded."""
    if not distributed.is_sharded(run.model):
        return None
    weights = distributed.gather_trainable(run.model)
    run.wrapped = run.optimizer = None
    return weights


def unshard(run: Run, gathered: dict | None) -> torch.nn.Module | None:
    """The trained model as one plain module on rank 0 (None on the others): the model itself, or, from `gather`'s
    weights under FSDP, the base model loaded again with them. No collective: the group may be ended by now."""
    if not run.dist.is_main:
        return None
    if gathered is None:
        return run.model
    model = build_model(run.config, device=run.device, source=run.prep.source)
    checkpoint.load_weights(model, gathered, "the sharded model")
    return model


def save_final(model, tokenizer, folder: RunFolder, method: str, base_id: str | None = None) -> Path:
    """The deliverable: a PEFT adapter folder (`adapter/`) or a full model folder (`model/`), with tokenizer.
    An adapter names its base model by `base_id` (the id another machine loads it by), not the local copy."""

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        config = tmp / "adapter_config.json"
        if base_id is not None and config.is_file():
            data = json.loads(config.read_text())
            data["base_model_name_or_path"] = base_id
            config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    return atomic_folder(folder.deliverable(method), write)


def summary(run: Run, fitted: Fitted) -> dict:
    """The run's training figures (the evaluations are added by the caller)."""
    config, state, device = run.config, run.state, run.device
    trained = state.step > fitted.start_step
    return {
        "run_dir": str(run.folder.root),
        "model": config.model.name,
        "method": config.method,
        "steps": state.step,
        "epochs": state.epoch + state.batch / max(run.micro_per_epoch, 1),
        "train_rows": len(run.prep.train_rows),
        "eval_rows": len(run.prep.eval_rows),
        "select_rows": len(run.prep.select_rows),
        "dropped_rows": [str(r.origin) for r in run.prep.dropped],
        "trainable_parameters": run.parameters[0],
        "total_parameters": run.parameters[1],
        "threads": run.threads,
        "device": str(device),
        "train_seconds": round(fitted.seconds, 2),
        "tokens": state.tokens,
        "tokens_per_s": round((state.tokens - fitted.start_tokens) / fitted.seconds, 1) if trained else None,
        "peak_rss_mb": peak_rss_mb(),
        **({"peak_gpu_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)} if device.type == "cuda" else {}),
    }
