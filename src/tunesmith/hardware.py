"""What this machine can do, measured rather than assumed: the device, free cores, bf16 support, a compiler."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import shutil
from collections.abc import Iterator

import torch

log = logging.getLogger("tunesmith")


@functools.cache
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def fast_bf16(device: torch.device | str = "cpu") -> bool:
    """True where bf16 matmuls are fast: a CUDA GPU with bf16, or a CPU with AMX-BF16 / AVX-512 BF16."""
    if torch.device(device).type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def resolve_device(requested: str = "auto", local_rank: int | None = None) -> torch.device:
    """`model.device`: `auto` is this process's CUDA GPU where there is one (under torchrun, the GPU of its
    local rank), else the CPU; `cpu`, `cuda` and `cuda:N` are taken as given, after checking they exist."""
    from tunesmith.errors import ConfigError

    if local_rank is None:
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"'{requested}' asked for, but this torch build sees no CUDA GPU "
                f"(torch {torch.__version__}); use model.device=cpu or auto",
                field="model.device",
            )
        index = device.index if device.index is not None else local_rank % torch.cuda.device_count()
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"'{requested}' asked for, but there are {torch.cuda.device_count()} CUDA GPUs", field="model.device"
            )
        device = torch.device("cuda", index)
    return device


def resolve_dtype(requested: str, device: torch.device | str = "cpu") -> str:
    """`auto` -> bfloat16 where the device runs it fast, else float32; anything else passes through."""
    if requested != "auto":
        return requested
    return "bfloat16" if fast_bf16(device) else "float32"


def can_compile() -> bool:
    """torch.compile needs a C++ compiler for the CPU backend (inductor); on CUDA, triton ships with torch."""
    return torch.cuda.is_available() or bool(shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++"))


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: Linux's VmHWM, which starts afresh at exec. (`ru_maxrss` keeps
    the high-water mark of the process that started this one: launched from a 3 GB parent, a small run reported
    3 GB.) Elsewhere `ru_maxrss`, in the unit each system reports it."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def free_cores(sample_s: float = 0.3) -> int:
    """Cores not busy with other work right now (busy = over half used during a short sample)."""
    try:
        import psutil

        busy = psutil.cpu_percent(interval=sample_s, percpu=True)
    except Exception:
        return usable_cores()
    return max(1, min(usable_cores(), sum(1 for b in busy if b < 50.0)))


def choose_threads(requested: int | None, local_world_size: int = 1) -> int:
    """Torch threads: as requested, else OMP_NUM_THREADS, else the free cores split between local ranks.

    Oversubscribing matters: with another process busy on a 2-core machine, 2 threads ran 5-30x slower
    than 1, so only cores that are free at start are used.
    """
    if requested is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        requested = int(env) if env.isdigit() and int(env) > 0 else max(1, free_cores() // max(1, local_world_size))
    torch.set_num_threads(requested)
    return requested


@contextlib.contextmanager
def kept_process_state(seed: int | None = None) -> Iterator[None]:
    """Run a block that may set torch's thread count or reseed the RNGs (torch, CUDA, Python, NumPy), then put
    them back as they were: a library call leaves the caller's process as it found it. `seed` seeds torch's
    RNG for the block."""
    import numpy as np

    threads, py_state, np_state = torch.get_num_threads(), random.getstate(), np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=cuda):
            if seed is not None:
                torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(threads)
        random.setstate(py_state)
        np.random.set_state(np_state)
