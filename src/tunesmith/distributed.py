"""Process-group facts in one place: which rank we are, who logs and saves, and how data is sharded.

A single process is world size 1 and needs no process group. Under `torchrun`, the environment names the
rank and world size; gradients are then averaged by DDP, and token counts are summed across ranks so the
loss stays normalised by the label tokens of the whole global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

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
    info = DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)), str(device))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if info.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return info


def shard(items: list, info: DistInfo) -> list:
    """This rank's share of a list (every rank gets the same count, so steps stay in lock step)."""
    if not info.enabled:
        return items
    usable = len(items) - len(items) % info.world_size
    return items[info.rank:usable:info.world_size]


def sum_across(value: float | int, info: DistInfo) -> float:
    """Sum a number over all ranks (identity in a single process)."""
    if not info.enabled:
        return value
    t = torch.tensor(float(value), dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return float(t)


def wrap(model, info: DistInfo):
    """Wrap for data parallelism when distributed; the unwrapped model is used for saving."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device = torch.device(info.device)
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
