"""Run the loop on a set-up `Run`: metrics file, progress bar, checkpoints, held-out loss, the learning rate
of a resumed run whose `train.lr` changed, and SIGINT/SIGTERM, which stop after the current step with a
checkpoint saved (`Stopped`, exit code 3; a second Ctrl-C aborts at once).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from tunesmith.errors import Stopped
from tunesmith.model.load import compile_blocks, eager
from tunesmith.progress import TrainProgress
from tunesmith.runfolder import MetricsWriter
from tunesmith.training import checkpoint, distributed
from tunesmith.training.loop import Diverged, LoopHooks, train_loop
from tunesmith.training.setup import Run, eval_stats
from tunesmith.training.trackers import Trackers

log = logging.getLogger("tunesmith")


@dataclass
class Fitted:
    """What the loop did in this process: where it stopped, how long it took, what it started from."""

    seconds: float
    start_step: int
    start_tokens: int


class StopFlag:
    """Set by the first SIGINT (Ctrl-C) or SIGTERM while training runs: the loop then finishes its step, saves a
    checkpoint and stops. A second SIGINT aborts at once (KeyboardInterrupt: exit 130, nothing saved since the
    last checkpoint). Main thread only; the previous handlers are put back on exit."""

    def __init__(self) -> None:
        self.set = False
        self.name = ""  # the signal that set it
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for name in ("SIGINT", "SIGTERM"):
                if hasattr(signal, name):
                    self._previous[getattr(signal, name)] = signal.signal(getattr(signal, name), self._handle)
        return self

    def _handle(self, signum: int, _frame) -> None:
        if self.set and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not self.set:
            self.set, self.name = True, signal.Signals(signum).name
            log.warning("%s: stopping after this step with a checkpoint saved (Ctrl-C again aborts)", self.name)

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()


def fit(
    run: Run,
    *,
    show_progress: bool = True,
    annotate: Callable[[dict], None] | None = None,
    stop_early: Callable[[], bool] = lambda: False,
    trackers: Trackers | None = None,
) -> Fitted:
    """Train `run` to its last step. `annotate(record)` may add fields to each step's record before it is
    logged (the periodic generation eval); `stop_early()` ends training after the current step; `trackers` see
    what `metrics.jsonl` gets."""
    t, dist, state = run.config.train, run.dist, run.state
    writer = MetricsWriter(run.folder.metrics, resume_step=state.step, enabled=dist.is_main, log_every=t.log_every)
    bar = TrainProgress(run.total_steps, state.step, enabled=dist.is_main and show_progress)

    def log_step(record: dict) -> None:
        if annotate is not None:
            annotate(record)
            hooks.total_steps = run.total_steps  # a budget may have re-planned the length (auto runs)
        writer(record)
        if trackers is not None and writer.wants(record):
            trackers.log(record)
        bar.update(record, run.total_steps)

    def eval_loss() -> float:
        with eager(t.compile):
            return eval_stats(run)["eval_loss"]

    if t.compile:
        log.info("compiling %d decoder blocks with torch.compile (the first steps are slow)", compile_blocks(run.model))
    assert run.trainable is not None and run.wrapped is not None
    _train_at_configured_lr(run)
    with StopFlag() as stop:

        def should_stop() -> bool:
            stop.set |= distributed.any_across(stop.set, dist)  # every rank stops at the same step
            return stop.set or stop_early()

        hooks = LoopHooks(
            plan=run.plan,
            total_steps=run.total_steps,
            log=log_step,
            save=run.save,
            evaluate=eval_loss if run.prep.eval_rows else None,
            should_stop=should_stop,
            loss=run.trainable.loss,
        )
        started, start_step, start_tokens = time.perf_counter(), state.step, state.tokens
        try:
            run.state = train_loop(run.wrapped, run.optimizer, run.scheduler, t, hooks, state, dist)
        except Diverged as e:
            raise Diverged(f"{e.reason}; {_kept(run)}", origin=str(run.folder.root)) from None
        finally:
            bar.close()
            writer.close()
    seconds = time.perf_counter() - started
    if stop.set:
        raise Stopped(
            f"stopped by {stop.name or 'a signal to another rank'} at step {run.state.step}; the checkpoint is saved, "
            "re-run to resume",
            origin=str(run.folder.root),
        )
    if run.state.step == start_step and run.state.step % t.save_every:  # nothing trained here (the loop saves)
        run.save(run.state)
    return Fitted(seconds, start_step, start_tokens)


def _kept(run: Run) -> str:
    """What a diverged run keeps, and how to go on."""
    found = checkpoint.list_checkpoints(run.folder.checkpoints)
    if not found:
        return "no checkpoint holds its weights; lower train.lr (or check the data) and re-run"
    return (
        f"its weights were not saved: the last good checkpoint is {found[-1].name}, and re-running with a lower "
        "train.lr resumes from it"
    )


def _train_at_configured_lr(run: Run) -> None:
    """A resumed run whose `train.lr` changed trains on at the new rate: the optimizer's and the schedule's base
    rate become the config's, and the schedule keeps its shape and where it stands (every schedule here is a
    base rate times a factor of the step)."""
    optimizer, scheduler, lr = run.optimizer, cast(Any, run.scheduler), run.config.train.lr
    assert optimizer is not None
    lr = run.lr if lr == "auto" else float(lr)
    bases = list(scheduler.base_lrs)
    if all(base == lr for base in bases):
        return
    log.info("train.lr is now %g (the checkpoint trained at %g): training on at the new rate", lr, bases[0])
    for group, base in zip(optimizer.param_groups, bases):
        group["lr"], group["initial_lr"] = group["lr"] * lr / base, lr
    scheduler.base_lrs = [lr] * len(bases)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]  # what get_last_lr() reports
    run.lr = lr
