"""Atomic checkpoints and exact resume, with nothing unpickled.

A checkpoint folder is written whole or not at all (`atomic_folder`): the trainable weights, the optimizer, scheduler
and RNG states (tensors in `train_state.safetensors`, the rest as JSON in `train_state.json`) and the loop position
(`state.json`), enough for a resumed run to continue the same loss curve. No pickle: a run folder from someone else
runs no code. A checkpoint that does not read back whole is passed over for the one before it."""

from __future__ import annotations

import json
import logging
import random
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tunesmith import runfolder
from tunesmith.errors import RunError
from tunesmith.runfolder import atomic_folder
from tunesmith.training import distributed
from tunesmith.training.distributed import DistInfo

log = logging.getLogger("tunesmith")

PREFIX = "step-"
WEIGHTS = "trainable.safetensors"
TENSORS = "train_state.safetensors"  # optimizer moments, RNG states
TRAIN_STATE = "train_state.json"  # optimizer settings, schedule, RNG states, tensors by name
LOOP_STATE = "state.json"
LEGACY = "train_state.pt"  # what older versions wrote: a pickle, never loaded
FORMAT = 1


class DamagedCheckpoint(RunError):
    """A checkpoint that cannot be read back: cut short, tampered with, or of the old pickle format."""


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


# --- state dicts as JSON + tensors: exact (floats print round-trip in JSON), and no code in either file ---

_TAGS = ("__tensor__", "__tuple__", "__map__", "__ndarray__")


def _split(obj, tensors: dict[str, torch.Tensor], path: str):
    """`obj` as JSON, its tensors moved into `tensors` under their path (`optimizer/state/0/exp_avg`)."""
    if isinstance(obj, torch.Tensor):
        key = path if path not in tensors else f"{path}#{len(tensors)}"
        tensors[key] = obj.detach().to("cpu").contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": [obj.dtype.str, obj.tolist()]}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and k not in _TAGS for k in obj):
            return {k: _split(v, tensors, f"{path}/{k}") for k, v in obj.items()}
        return {"__map__": [[_split(k, tensors, path), _split(v, tensors, f"{path}/{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_split(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_split(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__} (at {path})")


def _join(obj, tensors: dict[str, torch.Tensor]):
    """The inverse of `_split`."""
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if len(obj) == 1 and next(iter(obj)) in _TAGS:
            tag, value = next(iter(obj.items()))
            if tag == "__tensor__":
                return tensors[value]
            if tag == "__tuple__":
                return tuple(_join(v, tensors) for v in value)
            if tag == "__map__":
                return {_join(k, tensors): _join(v, tensors) for k, v in value}
            dtype, values = value
            return np.array(values, dtype=np.dtype(dtype))
        return {k: _join(v, tensors) for k, v in obj.items()}
    return obj


def _nbytes(tensors: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


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
    tensors: dict[str, torch.Tensor] = {}
    train_state = _split(
        {
            "format": FORMAT,
            "optimizer": optimizer_state,
            "scheduler": scheduler.state_dict(),
            "rng": rngs or [rng_state()],
        },
        tensors,
        "",
    )

    def write(tmp: Path) -> None:
        save_file(weights, str(tmp / WEIGHTS))
        save_file(tensors, str(tmp / TENSORS))
        (tmp / TRAIN_STATE).write_text(json.dumps(train_state))
        (tmp / LOOP_STATE).write_text(json.dumps(asdict(state), indent=2))

    need = _nbytes(weights) + _nbytes(tensors)
    path = atomic_folder(ckpt_root / f"{PREFIX}{state.step:06d}", write, need_bytes=need)
    # the newest `keep` up to this one: a newer one is what a resume passed over (damaged), replaced when reached
    older = [p for p in list_checkpoints(ckpt_root) if p.name < path.name]
    for old in older[: max(len(older) - keep + 1, 0)]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders are never listed)."""
    if not ckpt_root.is_dir():
        return []
    found = [p for p in ckpt_root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / LOOP_STATE).is_file()]
    return sorted(found, key=lambda p: p.name)


@dataclass
class Saved:
    """A checkpoint as read back, before anything of it is loaded into a model."""

    path: Path
    weights: dict[str, torch.Tensor]
    optimizer: dict
    scheduler: dict
    rngs: list[dict]
    state: LoopState


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's trainable weights; a file cut short or not safetensors is a `DamagedCheckpoint`."""
    try:
        return load_file(str(path / WEIGHTS))
    except (OSError, SafetensorError) as e:
        raise DamagedCheckpoint(f"damaged checkpoint file, not loaded ({e})", origin=path / WEIGHTS) from None


def read(path: Path) -> Saved:
    """Everything a checkpoint holds, read without unpickling anything; a file that is missing, cut short or
    not as written is a `DamagedCheckpoint` naming it."""
    if not (path / TRAIN_STATE).is_file() and (path / LEGACY).is_file():
        raise DamagedCheckpoint(
            f"a checkpoint of an older tunesmith ({LEGACY}, a pickle): not loaded, since unpickling a file can run "
            "code",
            origin=path,
        )
    weights = read_weights(path)
    try:
        tensors = load_file(str(path / TENSORS))
    except (OSError, SafetensorError) as e:
        raise DamagedCheckpoint(f"damaged checkpoint file, not loaded ({e})", origin=path / TENSORS) from None
    name = TRAIN_STATE
    try:
        blob = _join(json.loads((path / name).read_text(encoding="utf-8")), tensors)
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise ValueError(f"not a tunesmith train state of format {FORMAT}")
        optimizer, scheduler, rngs = blob["optimizer"], blob["scheduler"], blob["rng"]
        if not (isinstance(optimizer, dict) and isinstance(scheduler, dict) and isinstance(rngs, list) and rngs):
            raise ValueError("optimizer, scheduler or rng state of the wrong kind")
        name = LOOP_STATE
        loop = json.loads((path / name).read_text(encoding="utf-8"))
        if not isinstance(loop, dict) or "step" not in loop or not set(loop) <= {f.name for f in fields(LoopState)}:
            raise ValueError("not a loop state")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in loop.values()):
            raise ValueError("loop position is not counts")
        state = LoopState(**loop)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:  # JSONDecodeError is a ValueError
        raise DamagedCheckpoint(f"damaged checkpoint file, not loaded ({e})", origin=path / name) from None
    return Saved(path, weights, optimizer, scheduler, rngs, state)


def _match(model, weights: dict[str, torch.Tensor], origin: str) -> dict[str, torch.Tensor]:
    """The model's parameters by name; a saved tensor the model lacks (or of another shape) is a clear error."""
    params = dict(model.named_parameters())
    missing = [n for n in weights if n not in params]
    if missing:
        raise RunError(f"checkpoint does not match the model (unknown tensor '{missing[0]}')", origin=origin)
    if not distributed.is_sharded(model):  # sharded parameters have their shard's shape
        wrong = [n for n, w in weights.items() if w.shape != params[n].shape]
        if wrong:
            raise RunError(
                f"checkpoint does not match the model (tensor '{wrong[0]}' has another shape)", origin=origin
            )
    return params


def load_weights(model, weights: dict[str, torch.Tensor], origin: str) -> None:
    """Copy saved trainable weights into a plain (unsharded) model."""
    params = _match(model, weights, origin)
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)


def restore(saved: Saved, model, optimizer, scheduler, rank: int = 0) -> LoopState:
    """Load a read checkpoint into the model, optimizer, scheduler and this rank's RNG; return the loop position.
    The optimizer moves its state to each parameter's device, so a run resumes on another device than it was
    saved from."""
    origin = str(saved.path)
    if not set(saved.scheduler) <= set(scheduler.state_dict()):  # load_state_dict sets whatever keys it is given
        raise DamagedCheckpoint("the scheduler state is not this run's schedule", origin=saved.path / TRAIN_STATE)
    try:
        if distributed.is_sharded(model):  # every rank reads the whole state; each keeps its shard
            _match(model, saved.weights, origin)
            distributed.scatter_state(model, optimizer, saved.weights, saved.optimizer)
        else:
            load_weights(model, saved.weights, origin)
            optimizer.load_state_dict(saved.optimizer)
        scheduler.load_state_dict(saved.scheduler)
        set_rng_state(saved.rngs[rank] if rank < len(saved.rngs) else saved.rngs[0])
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as e:
        raise DamagedCheckpoint(f"checkpoint does not load into this run ({e})", origin=saved.path) from None
    return saved.state


def load(path: Path, model, optimizer, scheduler, rank: int = 0) -> LoopState:
    """Restore weights, optimizer, scheduler and this rank's RNG from a checkpoint; return the loop position."""
    return restore(read(path), model, optimizer, scheduler, rank)


def resume(ckpt_root: Path, model, optimizer, scheduler, dist: DistInfo) -> tuple[Path, LoopState]:
    """Restore the newest checkpoint that reads back whole; return it with its loop position. A damaged one (a
    disk that filled, a file cut short or tampered with) is passed over with a warning for the one before it
    (and replaced when training reaches its step again); none left is an error."""
    found = list_checkpoints(ckpt_root)
    damaged: list[DamagedCheckpoint] = []
    for path in reversed(found):
        try:
            return path, restore(read(path), model, optimizer, scheduler, dist.rank)
        except DamagedCheckpoint as e:
            damaged.append(e)
            log.warning("%s%s", e, "; resuming from the checkpoint before it" if path != found[0] else "")
    why = f"{damaged[0]}" if damaged else f"{ckpt_root}: no checkpoint"
    raise RunError(
        f"no checkpoint left to resume from ({why}); to start fresh, move the run folder away or choose another "
        "output_dir",
        origin=ckpt_root.parent,
    )


# --- room for a run's checkpoints and outputs ---

MARGIN = 16 * 2**20  # tokenizer files, reports and metrics of a run


def space_needed(model, method: str, keep: int, extra_checkpoints: int = 0) -> tuple[int, int, int]:
    """(bytes of one checkpoint, of the final deliverable, in all) a run of `model` writes: `keep` checkpoints
    plus the one written before the oldest is removed, `extra_checkpoints` more (a search's trials), and the
    deliverable. AdamW keeps two moments of every trainable weight, in its dtype."""
    params = list(model.parameters())
    trainable = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    final = sum(p.numel() * p.element_size() for p in params) if method == "full" else trainable
    checkpoint = 3 * trainable + 2**18  # weights, exp_avg, exp_avg_sq; RNG states and JSON
    return checkpoint, final, checkpoint * (keep + 1 + extra_checkpoints) + final + MARGIN


def check_space(root: Path, model, method: str, keep: int, extra_checkpoints: int = 0) -> None:
    """Refuse to start a run that would fill the disk of `root` before it ends (what it has already written
    counts as written)."""
    checkpoint, final, total = space_needed(model, method, keep, extra_checkpoints)
    written = runfolder.folder_bytes(root / "checkpoints")
    need, free = max(total - written, final + MARGIN), runfolder.free_bytes(root)
    if need > free:
        mb = runfolder.megabytes
        raise RunError(
            f"not enough free space for this run: need about {mb(need)} MB ({keep + 1 + extra_checkpoints} "
            f"checkpoints of {mb(checkpoint)} MB and a final {mb(final)} MB), {mb(free)} MB free; free some space, "
            "lower train.keep_checkpoints, or choose another output_dir",
            origin=root,
        )
