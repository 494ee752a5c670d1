"""Atomic checkpoints and exact resume.

A checkpoint is written into a temporary folder, every file fsynced, then renamed into place: it is
complete or absent, never half-written. It holds the trainable weights, optimizer and scheduler states,
every RNG state, and the loop's position (step, epoch, batch within the epoch), which together let a
resumed run continue the very same loss curve.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tunesmith.errors import RunError

PREFIX = "step-"


@dataclass
class LoopState:
    """Where training stands: enough to resume exactly."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0  # current epoch
    batch: int = 0  # next micro-batch within the epoch's plan
    tokens: int = 0  # real (non-pad) tokens trained on, summed over ranks


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for f in folder.rglob("*"):
        if f.is_file():
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
    fsync_dir(folder)


def atomic_folder(dest: Path, write) -> Path:
    """Run `write(tmp_folder)`, then fsync and rename it to `dest` (replacing an older one)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{dest.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
        _fsync_tree(tmp)
        if dest.exists():
            old = dest.parent / f".old-{dest.name}-{os.getpid()}"
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
        fsync_dir(dest.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small file atomically (temporary file, fsync, rename)."""
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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


def save(ckpt_root: Path, model, optimizer, scheduler, state: LoopState, keep: int) -> Path:
    """Write checkpoint `step-NNNNNN` atomically and keep only the newest `keep` checkpoints."""
    weights = {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}

    def write(tmp: Path) -> None:
        save_file(weights, str(tmp / "trainable.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": rng_state()}, tmp / "train_state.pt")
        (tmp / "state.json").write_text(json.dumps(asdict(state), indent=2))

    path = atomic_folder(ckpt_root / f"{PREFIX}{state.step:06d}", write)
    for old in list_checkpoints(ckpt_root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders are never listed)."""
    if not ckpt_root.is_dir():
        return []
    found = [p for p in ckpt_root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)
             and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: p.name)


def load(path: Path, model, optimizer, scheduler) -> LoopState:
    """Restore weights, optimizer, scheduler and RNG from a checkpoint; return the loop position."""
    weights = load_file(str(path / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [n for n in weights if n not in params]
    if missing:
        raise RunError(f"checkpoint does not match the model (unknown tensor '{missing[0]}')", origin=str(path))
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    blob = torch.load(path / "train_state.pt", weights_only=False, map_location="cpu")  # the optimizer moves
    # its state to each parameter's device, so a run resumes on another device than it was saved from
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    set_rng_state(blob["rng"])
    return LoopState(**json.loads((path / "state.json").read_text()))
