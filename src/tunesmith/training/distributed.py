"""Process-group facts in one place: which rank we are, who logs and saves, and how data is sharded.

A single process is world size 1 and needs no process group. Under `torchrun`, the environment names the
rank and world size; gradients are then averaged by DDP (or reduce-scattered by FSDP2, `train.distributed:
fsdp`), and token counts are summed across ranks so the loss stays normalised by the label tokens of the
whole global batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"  # this rank's device: collectives run there (NCCL on GPUs, gloo on CPUs)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init(device: torch.device | str = "cpu") -> DistInfo:
    """Read torchrun's environment and start the process group when there is more than one process:
    NCCL between GPUs (each rank on its own, `hardware.resolve_device`), gloo between CPU processes."""
    device = torch.device(device)
    info = DistInfo(
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
        str(device),
    )
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if info.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return info


def end(info: DistInfo) -> None:
    """End the process group on every rank together, once no rank has a collective left: a barrier, then
    `destroy_process_group`. Call it where the ranks are in step (right after training's last collective), not where
    one rank still has long work of its own ahead (the barrier would wait on it, up to the group's timeout)."""
    if info.enabled and _group_up():
        _end_group()


@contextmanager
def ended_after() -> Iterator[None]:
    """End, when the block finishes normally, a process group that `init` started inside it and that is still up
    (training ends it itself with `end`; a run found already finished returns before that), with `end`'s barrier.
    Not after an error: another rank may still be inside a collective, and ending the group then can hang it.
    (Ending the group does not stop gloo's threads once DDP has used it: `cli.leave` skips the teardown for that.)"""
    started_before = _group_up()
    yield  # an exception leaves here, past the cleanup below
    if not started_before and _group_up():
        _end_group()


def _group_up() -> bool:
    return dist.is_available() and dist.is_initialized()


def _end_group() -> None:
    dist.barrier()  # every rank here before any ends its side
    dist.destroy_process_group()


def shard(items: list, info: DistInfo) -> list:
    """This rank's share of a list (every rank gets the same count, so steps stay in lock step)."""
    if not info.enabled:
        return items
    usable = len(items) - len(items) % info.world_size
    return items[info.rank : usable : info.world_size]


def sum_across(value: float | int, info: DistInfo) -> float:
    """Sum a number over all ranks (identity in a single process)."""
    if not info.enabled:
        return value
    t = torch.tensor(float(value), dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return float(t)


def gather_object(obj, info: DistInfo) -> list:
    """Every rank's `obj`, in rank order, on every rank (`[obj]` in a single process)."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, info: DistInfo):
    """Rank 0's `obj` on every rank (`obj` itself in a single process)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_across(flag: bool, info: DistInfo) -> bool:
    """True on every rank when `flag` is true on any (so that all ranks stop at the same step)."""
    return bool(sum_across(float(flag), info) > 0) if info.enabled else flag


def wrap(model, info: DistInfo, strategy: str = "ddp"):
    """The model to train under torchrun; itself in a single process.

    `ddp` returns a DistributedDataParallel wrapper (the model itself stays the plain module, for saving).
    `fsdp` applies FSDP2's `fully_shard` to every decoder block and then to the whole model, in place: each
    rank then holds 1/world of every parameter, gradient and optimizer state. So wrap before building the
    optimizer, and gather (`gather_trainable`) before saving."""
    if not info.enabled:
        return model
    device = torch.device(info.device)
    if strategy == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(device.type, (info.world_size,))  # this rank's device, not whatever torch sees
        blocks = {name for m in model.modules() for name in getattr(m, "_no_split_modules", None) or []}
        for module in model.modules():
            if type(module).__name__ in blocks:
                fully_shard(module, mesh=mesh)
        return fully_shard(model, mesh=mesh)  # what no block holds: embeddings, final norm, LM head
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def is_sharded(model) -> bool:
    """True for a model that `wrap(..., "fsdp")` sharded."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def clip_grad_norm(params: list, max_norm: float) -> float:
    """Clip gradients to `max_norm` in total; return the norm before clipping (over all shards under FSDP)."""
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # a DTensor under FSDP


def _whole(**extra):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True, **extra)


def gather_trainable(model) -> dict[str, torch.Tensor]:
    """The trainable weights of a sharded model, whole, on rank 0's CPU (empty on other ranks), under the
    plain model's parameter names. A collective: every rank calls it."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    state = get_model_state_dict(model, options=_whole(ignore_frozen_params=True))
    return {n: cast(torch.Tensor, t) for n, t in state.items() if n in trainable}  # not tied frozen names


def gather_optimizer(model, optimizer) -> dict:
    """The optimizer state of a sharded model, whole, keyed by parameter name, on rank 0. A collective."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_whole(ignore_frozen_params=True))


def scatter_state(model, optimizer, weights: dict[str, torch.Tensor], optimizer_state: dict) -> None:
    """Load whole trainable weights and optimizer state (every rank passes them) into a sharded model."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    set_model_state_dict(model, cast(dict, weights), options=_whole(strict=False))
    set_optimizer_state_dict(model, optimizer, optimizer_state, options=_whole())
