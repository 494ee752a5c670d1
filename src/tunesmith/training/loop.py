"""THE training loop: one linear function.

Per optimizer step: take `grad_accum` micro-batches from the epoch's plan, count their label tokens (over
all ranks), backpropagate each micro-batch's summed loss divided by that count, clip, step, log, maybe
evaluate, maybe checkpoint. Everything else (data, model, saving) is prepared by the caller.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from tunesmith.config import TrainSpec
from tunesmith.errors import RunError
from tunesmith.pack import real_tokens
from tunesmith.render import IGNORE
from tunesmith.training.checkpoint import LoopState
from tunesmith.training.distributed import DistInfo, clip_grad_norm, sum_across
from tunesmith.training.loss import TokenLoss


class Diverged(RunError):
    """The loss or gradient norm became non-finite."""


@dataclass
class LoopHooks:
    """What the loop calls out to; each is a plain function so tests can pass their own."""

    plan: Callable[[int], list[dict[str, torch.Tensor]]]  # epoch -> this rank's collated micro-batches
    total_steps: int
    log: Callable[[dict], None]
    save: Callable[[LoopState], None]
    evaluate: Callable[[], float] | None = None
    should_stop: Callable[[], bool] = lambda: False
    loss: Callable[..., tuple[torch.Tensor, int]] = field(default_factory=TokenLoss)  # (model, batch) -> (sum, n)


def train_loop(
    model, optimizer, scheduler, cfg: TrainSpec, hooks: LoopHooks, state: LoopState, dist: DistInfo = DistInfo()
) -> LoopState:
    """Train from `state` until `hooks.total_steps` optimizer steps; return the final state."""
    params = [p for p in model.parameters() if p.requires_grad]
    clip = cfg.max_grad_norm if cfg.max_grad_norm is not None else math.inf
    model.train()
    while state.step < hooks.total_steps:
        plan = hooks.plan(state.epoch)
        while state.batch < len(plan) and state.step < hooks.total_steps:
            started = time.perf_counter()
            micro = plan[state.batch : state.batch + cfg.grad_accum]
            n_labels = sum_across(sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in micro), dist)
            total = 0.0
            for batch in micro:
                loss, _ = hooks.loss(model, batch)
                (loss * dist.world_size / max(n_labels, 1)).backward()  # DDP / FSDP average over ranks
                total += float(loss.detach())
            grad_norm = clip_grad_norm(params, clip)
            step_loss = sum_across(total, dist) / max(n_labels, 1)
            if not math.isfinite(step_loss) or not math.isfinite(grad_norm):
                raise Diverged(
                    f"training diverged at step {state.step + 1} (loss {step_loss}, grad norm "
                    f"{grad_norm}); lower train.lr or check the data"
                )
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            tokens = int(sum_across(sum(real_tokens(b) for b in micro), dist))
            state.step, state.batch, state.tokens = state.step + 1, state.batch + len(micro), state.tokens + tokens
            seconds = time.perf_counter() - started
            record = {
                "step": state.step,
                "epoch": state.epoch,
                "loss": step_loss,
                "lr": lr,
                "grad_norm": grad_norm,
                "tokens": state.tokens,
                "tokens_per_s": tokens / seconds,
            }
            if hooks.evaluate is not None and state.step % cfg.eval_every == 0:
                record["eval_loss"] = hooks.evaluate()
                model.train()
            hooks.log(record)
            if state.step % cfg.save_every == 0 or hooks.should_stop():
                hooks.save(state)
            if hooks.should_stop():
                return state
        if state.batch >= len(plan):
            state.epoch, state.batch = state.epoch + 1, 0
    return state
