"""What a run will cost before it starts: supervised tokens, optimizer steps, peak memory and wall-clock time.

Steps and tokens are exact: the batch plan is seeded, so the very batches the run will see are known.
Time and memory come from a short calibration: the real model, method and optimizer run a few real
steps through the real training loop (`training/loop.py`) on batches of this plan (the run's first step
and its largest), while a sampler records the process's resident memory.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import threading
import time
from collections.abc import Sequence

import psutil
import torch

from tunesmith.config import Config
from tunesmith.pack import collate, epoch_batches
from tunesmith.render import IGNORE, Rendered
from tunesmith.training.budget import planned_epochs

log = logging.getLogger("tunesmith")
MB = 1024 * 1024
CALIBRATION_STEPS = 3  # the run's first step (warm-up included), its largest, and one more


def plan_steps(lengths: Sequence[int], config: Config) -> tuple[list[list[list[int]]], int]:
    """The micro-batches (row indices) of every optimizer step of the run, as the loop takes them, and the
    number of steps per epoch."""
    t = config.train
    plans: dict[int, list[list[int]]] = {}

    def plan(epoch: int) -> list[list[int]]:
        if epoch not in plans:
            plans[epoch] = epoch_batches(lengths, t, epoch)
        return plans[epoch]

    per_epoch = math.ceil(len(plan(0)) / t.grad_accum)
    total = t.max_steps or planned_epochs(t) * per_epoch
    steps: list[list[list[int]]] = []
    epoch, batch = 0, 0
    while len(steps) < total and lengths:
        current = plan(epoch)
        while batch < len(current) and len(steps) < total:
            steps.append(current[batch : batch + t.grad_accum])
            batch += len(steps[-1])
        if batch >= len(current):
            epoch, batch = epoch + 1, 0
    return steps, per_epoch


def _work(rows: Sequence[Rendered], step: list[list[int]], packing: bool | str) -> int:
    """Token positions a step computes: padded rows x width, or the packed length (`auto` packs nearly always)."""
    if packing is not False:
        return sum(len(rows[i].input_ids) for micro in step for i in micro)
    return sum(len(micro) * max(len(rows[i].input_ids) for i in micro) for micro in step)


def count(rows: Sequence[Rendered], config: Config) -> dict:
    """Exact token and step counts of the run (no model needed)."""
    steps, per_epoch = plan_steps([len(r.input_ids) for r in rows], config)
    supervised = sum(sum(1 for x in rows[i].labels[1:] if x != IGNORE) for s in steps for m in s for i in m)
    per_epoch_tokens = sum(sum(1 for x in r.labels[1:] if x != IGNORE) for r in rows)
    return {
        "rows": len(rows),
        "steps": len(steps),
        "steps_per_epoch": per_epoch,
        "epochs": round(len(steps) / max(per_epoch, 1), 3),
        "supervised_tokens_per_epoch": per_epoch_tokens,
        "supervised_tokens": supervised,
        "tokens": sum(len(rows[i].input_ids) for s in steps for m in s for i in m),
        "work_tokens": sum(_work(rows, s, config.train.packing) for s in steps),
    }


class PeakRss:
    """Samples this process's resident memory in a thread; `peak` is the highest seen."""

    def __init__(self, interval: float = 0.005):
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(interval)

    def now(self) -> int:
        rss = self.proc.memory_info().rss
        self.peak = max(self.peak, rss)
        return rss

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.now()


FORWARD_BATCHES = 3  # calibration batches timed without gradients (the first a warm-up)


def _forward_seconds(model, loss, batches: list[dict]) -> float:
    """Seconds per (padded) token of a no-grad forward pass over `batches`, the first one a warm-up."""
    was_training = model.training
    model.eval()
    seconds, tokens = 0.0, 0
    try:
        with torch.no_grad():
            for i, batch in enumerate(batches):
                started = time.perf_counter()
                loss(model, batch)
                if i or len(batches) == 1:
                    seconds += time.perf_counter() - started
                    tokens += int(batch["input_ids"].numel())
    finally:
        model.train(was_training)
    return seconds / max(tokens, 1)


def calibrate(config: Config, rows: Sequence[Rendered], tokenizer, source, *, steps: int = CALIBRATION_STEPS) -> dict:
    """Load the model as training does, run a few real optimizer steps, and measure time and memory."""
    from tunesmith.hardware import choose_threads, kept_process_state, resolve_device
    from tunesmith.model.adapters import count_parameters
    from tunesmith.training.checkpoint import LoopState
    from tunesmith.training.loop import LoopHooks, train_loop
    from tunesmith.training.setup import make_optimizer, trainable_model

    t = config.train
    plan, _ = plan_steps([len(r.input_ids) for r in rows], config)
    work = [_work(rows, s, t.packing) for s in plan]  # before the model is loaded: `auto` counted as packed
    full = [i for i, s in enumerate(plan) if len(s) == t.grad_accum] or list(range(len(plan)))
    largest = max(full, key=lambda i: work[i])
    chosen = [0] + [i for i in [largest] + sorted(full, key=lambda i: -work[i])[len(full) // 2 :] if i != 0]
    chosen = list(dict.fromkeys(chosen))[:steps]
    with kept_process_state():
        threads = choose_threads(t.threads, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))  # as training chooses
        with PeakRss() as rss:
            base = rss.now()
            started = time.perf_counter()
            device = resolve_device(config.model.device)
            built = trainable_model(config, source, device, len(plan))  # as training builds it
            model = built.model
            load_seconds = time.perf_counter() - started
            trainable, total = count_parameters(model)
            weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
            train_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
            optimizer = make_optimizer(model, t, t.lr if t.lr != "auto" else 1e-4)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
            batches = [
                collate([rows[i] for i in micro], tokenizer.pad_token_id, built.packing)
                for s in chosen
                for micro in plan[s]
            ]
            marks: list[float] = []
            hooks = LoopHooks(
                plan=lambda epoch: batches if epoch == 0 else [],
                total_steps=len(chosen),
                log=lambda record: marks.append(time.perf_counter()),
                save=lambda state: None,
                loss=built.loss,
            )
            loop_started = time.perf_counter()
            train_loop(model, optimizer, scheduler, t, hooks, LoopState())
            peak = rss.peak
            forward_per_token = _forward_seconds(model, built.loss, batches[-FORWARD_BATCHES:])
            gpu_peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
            batches.clear()
            del model, built, optimizer, scheduler, hooks
            gc.collect()
    seconds = [b - a for a, b in zip([loop_started] + marks[:-1], marks)]
    measured = list(zip(chosen, seconds))
    later = measured[1:] or measured
    per_token = sum(s for _, s in later) / max(sum(work[i] for i, _ in later), 1)
    first = seconds[0] if seconds else 0.0
    train_seconds = first + per_token * sum(work[1:])
    optimizer_bytes = 2 * train_bytes  # AdamW: exp_avg and exp_avg_sq
    activations = max(0, peak - base - weight_bytes - 2 * train_bytes - optimizer_bytes)
    return {
        "threads": threads,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "calibration": {
            "steps": [{"step": i + 1, "seconds": round(s, 3), "work_tokens": work[i]} for i, s in measured],
            "seconds_per_1k_tokens": round(1000 * per_token, 4),
            "first_step_seconds": round(first, 3),
            # a forward pass alone (no gradients), over the same batches: what a selection evaluation costs
            "forward_seconds_per_1k_tokens": round(1000 * forward_per_token, 4),
        },
        "memory_mb": {
            "runtime": round(base / MB, 1),  # interpreter, libraries, tokenizer and data before the model
            "weights": round(weight_bytes / MB, 1),
            "adapters" if config.method != "full" else "trainable_weights": round(train_bytes / MB, 1),
            "gradients": round(train_bytes / MB, 1),
            "optimizer_state": round(optimizer_bytes / MB, 1),
            "activations": round(activations / MB, 1),  # and allocator workspace: measured, largest step
            "peak_rss": round(peak / MB, 1),
            **({"peak_gpu": round(gpu_peak / MB, 1)} if gpu_peak is not None else {}),  # on a GPU: the
            # weights, adapters, optimizer and activations are there, the host RSS is the runtime
        },
        "time_s": {
            "load": round(load_seconds, 2),
            "train": round(train_seconds, 2),
            "total": round(load_seconds + train_seconds, 2),
        },
    }


def estimate(
    config: Config,
    rows: Sequence[Rendered],
    tokenizer,
    source,
    *,
    calibrate_run: bool = True,
    price_per_hour: float | None = None,
) -> dict:
    """Counts always; time, memory and cost when calibrating (loads the model, runs a few steps)."""
    from tunesmith.hardware import resolve_device, resolve_dtype

    device = resolve_device(config.model.device)
    out = {
        "method": config.method,
        "dtype": resolve_dtype(config.model.dtype, device),
        "device": str(device),
        **count(rows, config),
    }
    if calibrate_run and rows:
        out.update(calibrate(config, rows, tokenizer, source))
        if config.train.auto or config.train.budget is not None:
            out["recipe"] = _recipe(config, rows, out)
        if price_per_hour is not None:
            hours = out["time_s"]["total"] / 3600
            out["cost"] = {
                "price_per_hour": price_per_hour,
                "hours": round(hours, 4),
                "cost": round(hours * price_per_hour, 4),
            }
    return out


def _recipe(config: Config, rows: Sequence[Rendered], out: dict) -> dict:
    """The auto recipe's plan and time (selection rows priced at a forward pass over a row of average length;
    the split taken as a tenth of the training rows, its usual size)."""
    from tunesmith.training.budget import recipe_estimate

    per_token = out["calibration"]["seconds_per_1k_tokens"] / 1000
    step_s = per_token * out["work_tokens"] / max(out["steps"], 1)
    forward = out["calibration"]["forward_seconds_per_1k_tokens"] / 1000
    row_s = forward * sum(len(r.input_ids) for r in rows) / max(len(rows), 1)
    split = min(1000, max(1, round(0.1 * len(rows))))
    spent = out["time_s"]["load"] + 10 * step_s
    return recipe_estimate(config, out["steps_per_epoch"], step_s, row_s, split, spent)
