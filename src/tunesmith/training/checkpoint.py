"""Atomic checkpoints and exact resume.

A checkpoint is written into a temporary folder, every file fsynced, then renamed into place: it is
complete or absent, never half-written. It holds the trainable weights, optimizer and scheduler states,
every RNG state, and the loop's position (step, epoch, batch within the epoch), which together let a
resumed run continue the very same loss curve.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tunesmith.errors import RunError
from tunesmith.runfolder import atomic_folder
from tunesmith.training import distributed

PREFIX = "step-"


@dataclass
class LoopState:
    """Where training stands: enough to resume exactly."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0  # current epoch
    batch: int = 0  # next micro-batch within the epoch's plan
    tokens: int = 0  # real (non-pad) tokens trained on, summed over ranks


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()  # LoRA dropout on a GPU draws from these
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model, optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """(trainable weights, optimizer state) to checkpoint. Under FSDP this gathers the shards, a collective
    every rank must call; the whole tensors land on rank 0, which writes them."""
    if distributed.is_sharded(model):
        return distributed.gather_trainable(model), distributed.gather_optimizer(model, optimizer)
    weights = {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    return weights, optimizer.state_dict()


def save(
    ckpt_root: Path,
    weights: dict[str, torch.Tensor],
    optimizer_state: dict,
    scheduler,
    state: LoopState,
    keep: int,
    rngs: list[dict] | None = None,
) -> Path:
    """Write checkpoint `step-NNNNNN` atomically and keep only the newest `keep` checkpoints. `rngs`: every
    rank's RNG state, in rank order (default: this process's), so LoRA dropout resumes exactly on each rank."""

    def write(tmp: Path) -> None:
        save_file(weights, str(tmp / "trainable.safetensors"))
        torch.save(
            {"optimizer": optimizer_state, "scheduler": scheduler.state_dict(), "rng": rngs or [rng_state()]},
            tmp / "train_state.pt",
        )
        (tmp / "state.json").write_text(json.dumps(asdict(state), indent=2))

    path = atomic_folder(ckpt_root / f"{PREFIX}{state.step:06d}", write)
    for old in list_checkpoints(ckpt_root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders are never listed)."""
    if not ckpt_root.is_dir():
        return []
    found = [
        p for p in ckpt_root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / "state.json").is_file()
    ]
    return sorted(found, key=lambda p: p.name)


def _match(model, weights: dict[str, torch.Tensor], origin: str) -> dict[str, torch.Tensor]:
    """The model's parameters by name; a saved tensor the model lacks is a clear error."""
    params = dict(model.named_parameters())
    missing = [n for n in weights if n not in params]
    if missing:
        raise RunError(f"checkpoint does not match the model (unknown tensor '{missing[0]}')", origin=origin)
    return params


def load_weights(model, weights: dict[str, torch.Tensor], origin: str) -> None:
    """Copy saved trainable weights into a plain (unsharded) model."""
    params = _match(model, weights, origin)
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)


def load(path: Path, model, optimizer, scheduler, rank: int = 0) -> LoopState:
    """Restore weights, optimizer, scheduler and this rank's RNG from a checkpoint; return the loop position."""
    weights = load_file(str(path / "trainable.safetensors"))
    blob = torch.load(path / "train_state.pt", weights_only=False, map_location="cpu")  # the optimizer moves
    # its state to each parameter's device, so a run resumes on another device than it was saved from
    if distributed.is_sharded(model):  # every rank reads the whole state; each keeps its shard
        _match(model, weights, str(path))
        distributed.scatter_state(model, optimizer, weights, blob["optimizer"])
    else:
        load_weights(model, weights, str(path))
        optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    rngs = blob["rng"] if isinstance(blob["rng"], list) else [blob["rng"]]  # a dict: saved before per-rank states
    set_rng_state(rngs[rank] if rank < len(rngs) else rngs[0])
    return LoopState(**json.loads((path / "state.json").read_text()))
