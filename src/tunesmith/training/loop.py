"""THE training loop: one linear function.

Per optimizer step: take `grad_accum` micro-batches from the epoch's plan, count their label tokens (over
all ranks), backpropagate each micro-batch's summed loss divided by that count, clip, check, step, log, maybe
evaluate, maybe checkpoint. The caller prepares data, model and saving. A diverged step (`Guard`) raises
`Diverged` before the optimizer step, and weights are checked before `save` sees them: none kept is diverged.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from tunesmith.config import TrainSpec
from tunesmith.errors import RunError
from tunesmith.model.load import eager
from tunesmith.pack import real_tokens
from tunesmith.render import IGNORE
from tunesmith.training.checkpoint import LoopState
from tunesmith.training.distributed import DistInfo, clip_grad_norm, sum_across
from tunesmith.training.loss import TokenLoss

REFERENCE_STEPS = 8  # the early steps whose median loss and gradient norm are the run's reference
LOSS_FACTOR = 3.0  # an exploded loss is over this many times the reference (and over ln(vocabulary))
GRAD_FACTOR = 1e3  # an exploded gradient norm is this many times the reference: three orders of magnitude
WEIGHT_FACTOR = 1e3  # exploded weights: their norm this many times what it was when the loop started


class Diverged(RunError):
    """The loss, gradient norm or weights became non-finite, or the loss or gradient norm exploded (`Guard`)."""


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


class Guard:
    """Tells a diverged run from a noisy one, with the same answer on every rank (it sees only global figures).

    A step diverged when its loss or gradient norm is not finite, or when it exploded: its loss is over both
    LOSS_FACTOR x the reference loss and ln(vocabulary size), the loss of a uniform guess (a noisy batch can
    pass one bound; a model worse than guessing on a whole step is broken), or its gradient norm is GRAD_FACTOR x
    the reference. The references are the medians of the first REFERENCE_STEPS steps this process took, so one
    odd batch does not move them and a falling loss does not tighten them. Weights about to be kept are checked
    as well (`check_weights`): finite, their norm under WEIGHT_FACTOR x the norm they started the loop at, and
    their loss on the step's first micro-batch not exploded.
    """

    def __init__(self, vocab_size: int | None = None, start_norm: float = 0.0):
        self.uniform = math.log(vocab_size) if vocab_size else 0.0
        self.start_norm = start_norm
        self.losses: list[float] = []
        self.norms: list[float] = []

    def problem(self, loss: float, grad_norm: float | None = None) -> str | None:
        """Why a step with this loss (and gradient norm) diverged; None when it did not."""
        if not math.isfinite(loss) or (grad_norm is not None and not math.isfinite(grad_norm)):
            return "not finite"
        if self.losses and loss > max(LOSS_FACTOR * statistics.median(self.losses), self.uniform):
            return (
                f"exploded: over {LOSS_FACTOR:g}x the early loss {statistics.median(self.losses):.4g} and over "
                f"{self.uniform:.3g}, a uniform guess's"
            )
        if grad_norm is not None and self.norms and grad_norm > GRAD_FACTOR * statistics.median(self.norms):
            return f"exploded: the gradient norm is over {GRAD_FACTOR:g}x the early {statistics.median(self.norms):.4g}"
        return None

    def check(self, step: int, loss: float, grad_norm: float) -> None:
        """Raise `Diverged` for a diverged step; otherwise count it towards the references."""
        why = self.problem(loss, grad_norm)
        if why is not None:
            raise Diverged(f"training diverged at step {step} (loss {loss:.4g}, grad norm {grad_norm:.4g}: {why})")
        if len(self.losses) < REFERENCE_STEPS and loss > 0 and grad_norm > 0:  # a step without labels: no figure
            self.losses.append(loss)
            self.norms.append(grad_norm)

    def check_weights(self, step: int, model, params: list, batch: dict, loss_fn, compiled: bool, dist) -> None:
        """Raise `Diverged` unless the weights `params` are fit to keep: finite, not grown by WEIGHT_FACTOR, and
        the loss of `batch` under them (evaluation mode: no dropout, so no random draw) not exploded. Every rank
        calls it (a sharded forward pass)."""
        norm = weight_norm(params, dist)
        if not math.isfinite(norm):
            raise Diverged(f"training diverged at step {step}: its updated weights are not finite (or too large)")
        if self.start_norm and norm > WEIGHT_FACTOR * self.start_norm:
            raise Diverged(
                f"training diverged at step {step}: its weights' norm {norm:.4g} is over {WEIGHT_FACTOR:g}x the "
                f"{self.start_norm:.4g} they started at"
            )
        model.eval()
        with torch.no_grad(), eager(compiled):
            total, n = loss_fn(model, batch)
            loss = sum_across(float(total), dist) / max(sum_across(n, dist), 1)
        model.train()
        why = self.problem(loss)
        if why is not None:
            raise Diverged(f"training diverged at step {step}: after its update the loss is {loss:.4g} ({why})")


def weight_norm(params: list, dist: DistInfo = DistInfo()) -> float:
    """The L2 norm of all `params` together (inf or nan when one is not finite); of every rank's shard together
    under FSDP (DDP ranks hold the same whole weights)."""
    sharded = any(hasattr(p, "to_local") for p in params)
    local = [(p.to_local() if hasattr(p, "to_local") else p).detach() for p in params]
    norms = torch._foreach_norm(local) if local else []  # one fused pass per device and dtype
    squares = float(torch.stack([n.double().to(norms[0].device) for n in norms]).square().sum()) if norms else 0.0
    return math.sqrt(sum_across(squares, dist) if sharded else squares)


def _vocab_size(model) -> int | None:
    inner = getattr(model, "module", model)  # DDP
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    return int(weight.shape[0]) if weight is not None else None


def train_loop(
    model, optimizer, scheduler, cfg: TrainSpec, hooks: LoopHooks, state: LoopState, dist: DistInfo = DistInfo()
) -> LoopState:
    """Train from `state` until `hooks.total_steps` optimizer steps (saving the last); return the final state."""
    params = [p for p in model.parameters() if p.requires_grad]
    clip = cfg.max_grad_norm if cfg.max_grad_norm is not None else math.inf
    guard = Guard(_vocab_size(model), weight_norm(params, dist))
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
            guard.check(state.step + 1, step_loss, grad_norm)  # before the optimizer changes anything
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
            stop = hooks.should_stop()
            if stop or state.step % cfg.save_every == 0 or state.step == hooks.total_steps:
                guard.check_weights(state.step, model, params, micro[0], hooks.loss, cfg.compile, dist)
                hooks.save(state)
            if stop:
                return state
        if state.batch >= len(plan):
            state.epoch, state.batch = state.epoch + 1, 0
    return state
