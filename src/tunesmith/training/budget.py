"""How long an auto run trains and where its trials are compared: the step plan of a successive-halving search
over learning rates (each trial a prefix of the final run) fitted into `train.budget` from measured speeds.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

from tunesmith.config import TrainSpec

# Log-spaced learning rates, a factor of about 3 apart. LoRA's best rate sits roughly 10x above full fine-tuning's
# (Biderman et al. 2024, "LoRA Learns Less and Forgets Less"; Schulman et al. 2025, "LoRA Without Regret").
CANDIDATES = {"lora": (1e-4, 3e-4, 1e-3, 3e-3), "dora": (1e-4, 3e-4, 1e-3, 3e-3), "full": (1e-5, 3e-5, 1e-4, 3e-4)}
ETA = 2  # successive halving keeps the better half of the trials at each rung
FIRST_RUNG = 1 / 8  # the first comparison after this fraction of the final run's steps
DEFAULT_EPOCHS = 3  # epochs: auto without a budget
MAX_EPOCHS = 5  # epochs: auto with a budget: never more, however long the budget
COOLDOWN = 0.2  # the final run's learning rate decays linearly to 0 over its last 20% (warmup-stable-decay)
FINAL_EVALS = 4  # selection evaluations after the search (the best one's weights are kept)
MIN_FINAL_STEPS = 8
EVAL_SHARE = 0.25  # with a budget, the selection evaluations take at most this share of it


@dataclass
class Plan:
    """Steps of an auto run: the final length, the rungs (cumulative steps at which trials are compared),
    the learning rates tried, the warm-up, and the final run's evaluation steps."""

    final_steps: int
    rungs: list[int]
    candidates: list[float]
    warmup: int
    evals: list[int] = field(default_factory=list)

    @property
    def trial_steps(self) -> int:
        """Optimizer steps of the whole run: every trial's steps, the survivor's continuing to the end."""
        alive, done, total = len(self.candidates), 0, 0
        for rung in self.rungs:
            total += alive * (rung - done)
            alive, done = max(1, math.ceil(alive / ETA)), rung
        return total + max(0, self.final_steps - done)

    @property
    def evaluations(self) -> int:
        alive, total = len(self.candidates), 0
        for _ in self.rungs:
            total += alive
            alive = max(1, math.ceil(alive / ETA))
        return total + len(self.evals)

    def seconds(self, step_s: float, eval_s: float) -> float:
        return self.trial_steps * step_s + self.evaluations * eval_s

    def to_dict(self) -> dict:
        return asdict(self)


def planned_epochs(t: TrainSpec) -> int:
    """The epochs a run is planned for: the configured number, or with `auto` the most a budget may use (the
    budget then cuts the plan to fit) and DEFAULT_EPOCHS without one."""
    if t.epochs != "auto":
        return t.epochs
    return MAX_EPOCHS if t.budget is not None else DEFAULT_EPOCHS


def margin_s(budget: float) -> float:
    """Seconds of a budget held back for the final save and the stop check's own lag: 3%, at least 2 s."""
    return max(2.0, 0.03 * budget)


def selection_rows(seconds: float, row_s: float, rows: int, least: int, evaluations: int) -> int:
    """Rows each selection evaluation scores under a budget: all `rows` of the split when `evaluations` of them
    take at most EVAL_SHARE of `seconds` (at `row_s` a row), otherwise as many as do, but never fewer than
    `least` (the fewest that still decide: one per label, 20 at least). More rows only sharpen a comparison
    whose winner is usually clear; the seconds they cost are training steps the budget loses."""
    afford = int(EVAL_SHARE * max(seconds, 0.0) / max(evaluations * row_s, 1e-9))
    return max(min(least, rows), min(rows, afford))


def rungs_for(final_steps: int, candidates: int) -> list[int]:
    """Comparison points: the first after FIRST_RUNG of the final length, each later one ETA times further,
    until one trial is left (none for a single candidate)."""
    if candidates <= 1:
        return []
    first = max(1, math.ceil(final_steps * FIRST_RUNG))
    out: list[int] = []
    alive = candidates
    while alive > 1:
        out.append(min(final_steps, first * ETA ** len(out)))
        alive = math.ceil(alive / ETA)
    return out


def final_evals(final_steps: int, after: int, eval_ratio: float = 0.0) -> list[int]:
    """Evaluation steps spread over the final run after step `after`, the last at its end: FINAL_EVALS of them,
    or fewer where an evaluation costs `eval_ratio` steps and that many would take more than EVAL_SHARE of the
    final run's time (one at least: the end)."""
    span = final_steps - after
    if span <= 0:
        return [final_steps]
    count = FINAL_EVALS
    if eval_ratio > 0:
        count = max(1, int(min(FINAL_EVALS, EVAL_SHARE / (1 - EVAL_SHARE) * span / eval_ratio)))
    return sorted({after + max(1, round(span * (i + 1) / count)) for i in range(count)})


def make_plan(final_steps: int, candidates: list[float], warmup_ratio: float, eval_ratio: float = 0.0) -> Plan:
    """The plan of a run of `final_steps`; `eval_ratio` (an evaluation's cost in steps; 0: unknown) sets how
    many evaluations the final run affords."""
    final_steps = max(1, final_steps)
    rungs = rungs_for(final_steps, len(candidates))
    warmup = min(round(warmup_ratio * final_steps), rungs[0] if rungs else final_steps)
    evals = final_evals(final_steps, rungs[-1] if rungs else 0, eval_ratio)
    return Plan(final_steps, rungs, list(candidates), warmup, evals)


def fit_plan(
    seconds: float, step_s: float, eval_s: float, candidates: list[float], warmup_ratio: float, longest: int
) -> Plan | None:
    """The longest plan (at most `longest` final steps) whose estimated time fits `seconds`; None when not even
    the shortest one (MIN_FINAL_STEPS, or `longest` when shorter) fits."""
    shortest = min(MIN_FINAL_STEPS, longest)
    low, high = shortest, longest
    ratio = eval_s / max(step_s, 1e-9)

    def cost(n: int) -> float:  # never falls as the plan grows: bisect
        return make_plan(n, candidates, warmup_ratio, ratio).seconds(step_s, eval_s)

    if cost(low) > seconds:
        return None
    while low < high:
        mid = (low + high + 1) // 2
        if cost(mid) <= seconds:
            low = mid
        else:
            high = mid - 1
    return make_plan(low, candidates, warmup_ratio, ratio)


def shortest_budget(step_s: float, eval_s: float, candidates: list[float], warmup_ratio: float, longest: int) -> float:
    """Seconds the shortest plan is estimated to take."""
    ratio = eval_s / max(step_s, 1e-9)
    return make_plan(min(MIN_FINAL_STEPS, longest), candidates, warmup_ratio, ratio).seconds(step_s, eval_s)


def wsd(step: int, warmup: int, final_steps: int | None) -> float:
    """Warmup-stable-decay: linear warm-up, then constant; over the last COOLDOWN of `final_steps` (once it is
    known), linear decay to 0 (Hu et al. 2024, MiniCPM; Hägele et al. 2024)."""
    if warmup and step < warmup:
        return (step + 1) / (warmup + 1)
    if final_steps is None:
        return 1.0
    decay = max(1, round(COOLDOWN * final_steps))
    start = final_steps - decay
    return 1.0 if step < start else max(0.0, (final_steps - step) / decay)


def recipe_estimate(config, steps_per_epoch: int, step_s: float, row_s: float, split_rows: int, spent_s: float) -> dict:
    """What `tunesmith check` says of an auto run (or a budgeted one): the plan, its time, and whether it fits.
    `row_s`: seconds to score one selection row, of `split_rows`; `spent_s`: seconds spent before the first
    step (loading, calibrating)."""
    t = config.train
    longest = t.max_steps or planned_epochs(t) * steps_per_epoch
    rates = list(t.lr_candidates or CANDIDATES[config.method]) if t.lr == "auto" else [float(t.lr)]
    rows = split_rows
    if t.budget is not None:
        evaluations = make_plan(longest, rates, t.warmup_ratio).evaluations  # at most this many
        rows = selection_rows(t.budget - spent_s - margin_s(t.budget), row_s, split_rows, 20, evaluations)
    eval_s = row_s * rows
    if t.budget is None:
        plan: Plan | None = make_plan(longest, rates, t.warmup_ratio)
    else:
        plan = fit_plan(t.budget - spent_s - margin_s(t.budget), step_s, eval_s, rates, t.warmup_ratio, longest)
    shortest = spent_s + shortest_budget(step_s, row_s * min(20, split_rows), rates, t.warmup_ratio, longest)
    out = {
        "learning_rates": rates,
        "budget_s": t.budget,
        "fits": plan is not None,
        "shortest_budget_s": math.ceil(shortest + (margin_s(t.budget) if t.budget else 0)),
        "selection_rows": rows,
    }
    if plan is not None:
        out.update(
            final_steps=plan.final_steps,
            rungs=plan.rungs,
            trial_steps=plan.trial_steps,
            seconds=round(spent_s + plan.seconds(step_s, eval_s), 1),
        )
    return out


class Clock:
    """The budget's clock: seconds spent on the training part, with pauses (the base model's evaluation)."""

    def __init__(self, budget: float | None, spent: float = 0.0):
        self.budget, self._spent, self._since, self._paused = budget, spent, time.perf_counter(), False

    def spent(self) -> float:
        return self._spent + (0.0 if self._paused else time.perf_counter() - self._since)

    def left(self) -> float:
        return math.inf if self.budget is None else self.budget - self.spent()

    def pause(self) -> None:
        if not self._paused:
            self._spent, self._paused = self.spent(), True

    def resume(self) -> None:
        if self._paused:
            self._since, self._paused = time.perf_counter(), False
