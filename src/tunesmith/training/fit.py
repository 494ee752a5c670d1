"""Run the loop on a set-up `Run`: metrics file, progress bar, checkpoints, held-out loss, and a SIGTERM
that stops at the next step with a checkpoint saved.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tunesmith.errors import RunError
from tunesmith.model.load import compile_blocks, eager
from tunesmith.progress import TrainProgress
from tunesmith.runfolder import MetricsWriter
from tunesmith.training.loop import LoopHooks, train_loop
from tunesmith.training.loss import mean_loss
from tunesmith.training.setup import Run

log = logging.getLogger("tunesmith")


@dataclass
class Fitted:
    """What the loop did in this process: where it stopped, how long it took, what it started from."""

    seconds: float
    start_step: int
    start_tokens: int


class StopFlag:
    """Set by SIGTERM while the loop runs (main thread only); the previous handler is put back on exit."""

    def __init__(self) -> None:
        self.set = False
        self._previous: Any = None

    def __enter__(self) -> StopFlag:
        if hasattr(signal, "SIGTERM") and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, *_) -> None:
        self.set = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def fit(
    run: Run,
    *,
    show_progress: bool = True,
    annotate: Callable[[dict], None] | None = None,
    stop_early: Callable[[], bool] = lambda: False,
) -> Fitted:
    """Train `run` to its last step. `annotate(record)` may add fields to each step's record before it is
    logged (the periodic generation eval); `stop_early()` ends training after the current step."""
    t, dist, state = run.config.train, run.dist, run.state
    writer = MetricsWriter(run.folder.metrics, resume_step=state.step, enabled=dist.is_main, log_every=t.log_every)
    bar = TrainProgress(run.total_steps, state.step, enabled=dist.is_main and show_progress)

    def log_step(record: dict) -> None:
        if annotate is not None:
            annotate(record)
        writer(record)
        bar.update(record)

    def eval_loss() -> float:
        with eager(t.compile):
            return mean_loss(run.model, run.eval_batches)

    if t.compile:
        log.info("compiling %d decoder blocks with torch.compile (the first steps are slow)", compile_blocks(run.model))
    assert run.trainable is not None and run.wrapped is not None
    with StopFlag() as stop:
        hooks = LoopHooks(
            plan=run.plan,
            total_steps=run.total_steps,
            log=log_step,
            save=run.save,
            evaluate=eval_loss if run.eval_batches else None,
            should_stop=lambda: stop.set or stop_early(),
            loss=run.trainable.loss,
        )
        started, start_step, start_tokens = time.perf_counter(), state.step, state.tokens
        try:
            run.state = train_loop(run.wrapped, run.optimizer, run.scheduler, t, hooks, state, dist)
        finally:
            bar.close()
            writer.close()
    seconds = time.perf_counter() - started
    if stop.set:
        raise RunError(
            f"stopped by SIGTERM at step {run.state.step}; the checkpoint is saved, re-run to resume",
            origin=str(run.folder.root),
        )
    if run.state.step % t.save_every:
        run.save(run.state)
    return Fitted(seconds, start_step, start_tokens)
