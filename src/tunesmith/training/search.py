"""`train.lr: auto`: successive halving over learning rates on the selection split. Every trial starts from the
same initial weights; at each rung the better half goes on from its checkpoint; the survivor is the final run.
Each finished rung is saved (checkpoints/search/, search.json), so a killed search resumes without redoing it.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from tunesmith.errors import BudgetError, Stopped
from tunesmith.progress import SearchTable
from tunesmith.runfolder import read_json, write_json
from tunesmith.training import checkpoint, distributed
from tunesmith.training.budget import (
    COOLDOWN,
    ETA,
    EVAL_SHARE,
    MIN_FINAL_STEPS,
    Clock,
    final_evals,
    fit_plan,
    margin_s,
    selection_rows,
    shortest_budget,
)
from tunesmith.training.checkpoint import LoopState
from tunesmith.training.fit import StopFlag
from tunesmith.training.loop import Diverged, LoopHooks, train_loop
from tunesmith.training.setup import Run, make_optimizer, make_scheduler

log = logging.getLogger("tunesmith")
Score = Callable[[torch.nn.Module], float]
GENERATION_COST = 8  # a metric of generated answers (exact match, JSON fields, codes): about this many passes a row


@dataclass
class Measure:
    """The selection metric, its direction, and the measured cost of a step and of one evaluation."""

    score: Score
    metric: str
    higher_is_better: bool
    rows: int
    step_s: float
    eval_s: float
    step_times: list[float] = field(default_factory=list)
    eval_times: list[float] = field(default_factory=list)
    tiebreak: float | None = None  # the last evaluation's secondary value (lower is better), where there is one

    def better(self, a: float, b: float | None) -> bool:
        return b is None or (a > b if self.higher_is_better else a < b)

    @property
    def worst(self) -> float:
        """The value of a trial that diverged (JSON-safe)."""
        return -1.0 if self.higher_is_better else 1e30

    def evaluate(self, run: Run) -> float:
        """The metric on every rank (FSDP needs them all), rank 0's value for all."""
        started = time.perf_counter()
        value = self.score(run.model)
        value, self.tiebreak = distributed.broadcast_object((value, getattr(self.score, "tiebreak", None)), run.dist)
        self.eval_times.append(time.perf_counter() - started)
        self.eval_s = sum(self.eval_times) / len(self.eval_times)
        return value

    def entry(self, step: int, value: float, seconds: float) -> dict:
        """An evaluation as search.json records it (with the tie-break value where there is one)."""
        out = {"step": step, "value": value, "seconds": round(seconds, 2)}
        if self.tiebreak is not None and math.isfinite(self.tiebreak):
            out["loss"] = round(self.tiebreak, 6)
        return out

    def resize(self, rows: int) -> None:
        """Score `rows` rows of the selection split from now on (a stratified prefix; where the score can)."""
        resize = getattr(self.score, "resize", None)
        if resize is not None:
            resize(rows)
            self.rows = self.score.rows  # type: ignore[attr-defined]

    def step_seconds(self) -> float:
        recent = self.step_times[-50:]
        return sum(recent) / len(recent) if recent else self.step_s


def trial_dir(run: Run, index: int):
    return run.folder.checkpoints / "search" / f"trial-{index}"


def new_record(run: Run, measure: Measure) -> dict:
    plan = run.recipe
    assert plan is not None
    return {
        "method": "successive_halving",
        "metric": measure.metric,
        "higher_is_better": measure.higher_is_better,
        "budget_s": run.config.train.budget,
        "selection_rows": measure.rows,
        "selection_split_rows": getattr(measure.score, "total", measure.rows),
        "planned": {**plan.to_dict(), "seconds": round(plan.seconds(measure.step_s, measure.eval_s), 1)},
        "trials": [
            {"trial": i, "lr": lr, "status": "running", "evals": [], "curve": []}
            for i, lr in enumerate(plan.candidates)
        ],
        "chosen": None,
        "final": {"steps": plan.final_steps, "best_step": None, "best_value": None, "evals": []},
        "seconds": 0.0,
    }


def load_record(run: Run) -> dict | None:
    return read_json(run.folder.search) if run.folder.search.is_file() else None


def save_record(run: Run, record: dict, clock: Clock) -> None:
    record["seconds"] = round(clock.spent(), 2)
    if run.dist.is_main:
        write_json(run.folder.search, record)


def search(run: Run, measure: Measure, clock: Clock, *, show_progress: bool = True) -> dict:
    """Run (or resume) the search; leave `run` on the survivor's state with its optimizer and schedule, and
    return the search record. Re-plans the final length at every rung from the measured speed."""
    plan = run.recipe
    assert plan is not None
    record = load_record(run)
    if record is not None:  # resumed: the same rows as before are scored
        measure.resize(record["selection_rows"])
    else:
        record = new_record(run, measure)
    initial = {n: p.detach().clone() for n, p in run.model.named_parameters() if p.requires_grad}
    trials = record["trials"]
    if record.get("chosen") is not None:
        if run.latest is None:  # chosen, but the final run has no checkpoint yet: go on from the survivor's
            _switch(run, trials[record["chosen"]["trial"]], initial)
        return record
    alive = [t["trial"] for t in trials if t["status"] != "pruned"]
    table = SearchTable(measure.metric, enabled=run.dist.is_main and show_progress)
    for t in trials:
        table.update(t["trial"], t["lr"], _last(t, "step"), _last(t, "value"), _last(t, "seconds"), t["status"])
    done = 0
    with table, StopFlag() as stop:
        for rung_index in range(len(plan.rungs)):
            rung = plan.rungs[rung_index]
            for k in alive:
                t = trials[k]
                if any(e["step"] == rung for e in t["evals"]):
                    continue  # finished before a restart
                diverged = _run_trial(run, t, rung, initial, measure, table, stop)
                if diverged:
                    t["diverged"], measure.tiebreak = True, None
                value = measure.worst if diverged else measure.evaluate(run)
                t["evals"].append(measure.entry(rung, value, clock.spent()))
                _save_trial(run, k)
                save_record(run, record, clock)
                table.update(k, t["lr"], rung, value, clock.spent(), "running")
                log.info("trial %d (lr %.0e): %s %.4f at step %d", k, t["lr"], measure.metric, value, rung)
            alive = _survivors(trials, alive, rung, measure)
            for t in trials:
                if t["trial"] not in alive and t["status"] != "pruned":
                    t["status"] = "pruned"
                    table.update(
                        t["trial"], t["lr"], _last(t, "step"), _last(t, "value"), _last(t, "seconds"), "pruned"
                    )
            done = rung
            _replan(run, record, measure, clock, done)
            save_record(run, record, clock)
    winner = trials[alive[0]]
    winner["status"] = "chosen"
    table.update(winner["trial"], winner["lr"], _last(winner, "step"), _last(winner, "value"), None, "chosen")
    for t in trials:  # a pruned trial is never needed again
        if t["status"] == "pruned" and run.dist.is_main:
            shutil.rmtree(trial_dir(run, t["trial"]), ignore_errors=True)
    record["chosen"] = {"trial": winner["trial"], "lr": winner["lr"], "step": done}
    _switch(run, winner, initial)  # the survivor's state at the last rung: the final run goes on from it
    save_record(run, record, clock)
    log.info("chose lr %.0e (trial %d); training on to step %d", winner["lr"], winner["trial"], run.total_steps)
    return record


def _last(trial: dict, key: str):
    return trial["evals"][-1][key] if trial["evals"] else None


def _survivors(trials: list[dict], alive: list[int], rung: int, measure: Measure) -> list[int]:
    """The better 1/ETA of the trials at this rung (ties: the lower gold-answer loss where the metric has one,
    then the lower learning rate, the safer one)."""

    def key(k: int) -> tuple[float, float, float]:
        e = next(e for e in trials[k]["evals"] if e["step"] == rung)
        v = e["value"] if measure.higher_is_better else -e["value"]
        return -v, e.get("loss", 0.0), trials[k]["lr"]

    keep = max(1, math.ceil(len(alive) / ETA))
    ranked = sorted(alive, key=key)
    return sorted(ranked[:keep])


def _switch(run: Run, trial: dict, initial: dict[str, torch.Tensor]) -> None:
    """Put `trial` in the model: its last checkpoint, or the initial weights and a fresh optimizer."""
    run.lr = trial["lr"]
    run.optimizer = make_optimizer(run.model, run.config.train, run.lr)
    run.scheduler = make_scheduler(run.optimizer, run.config.train, run.total_steps, run.recipe)
    found = checkpoint.list_checkpoints(trial_dir(run, trial["trial"]))
    if found:
        run.state = checkpoint.load(found[-1], run.model, run.optimizer, run.scheduler, run.dist.rank)
        return
    with torch.no_grad():
        params = dict(run.model.named_parameters())
        for name, value in initial.items():
            params[name].copy_(value)
    torch.manual_seed(run.config.train.seed + 1 + trial["trial"])  # each trial's dropout, the same on a re-run
    run.state = LoopState()


def _run_trial(run: Run, trial: dict, until: int, initial, measure: Measure, table: SearchTable, stop) -> bool:
    """Train `trial` on to step `until`; True when it diverged (a non-finite loss: pruned, never an error)."""
    assert run.trainable is not None
    _switch(run, trial, initial)
    if run.state.step >= until or trial.get("diverged"):
        return bool(trial.get("diverged"))
    curve = [c for c in trial["curve"] if c["step"] <= run.state.step]
    last = [time.perf_counter()]

    def log_step(rec: dict) -> None:
        now = time.perf_counter()
        measure.step_times.append(now - last[0])
        last[0] = now
        curve.append(dict(rec))
        table.update(trial["trial"], trial["lr"], rec["step"], None, None, f"training (loss {rec['loss']:.3f})")

    hooks = LoopHooks(
        plan=run.plan,
        total_steps=until,
        log=log_step,
        save=lambda state: None,
        should_stop=lambda: distributed.any_across(stop.set, run.dist),
        loss=run.trainable.loss,
    )
    try:
        run.state = train_loop(run.wrapped, run.optimizer, run.scheduler, run.config.train, hooks, run.state, run.dist)
    except Diverged:
        log.info("trial %d (lr %.0e) diverged: pruned", trial["trial"], trial["lr"])
        trial["curve"] = curve
        return True
    trial["curve"] = curve
    if run.state.step < until:  # stopped by SIGINT/SIGTERM, to this rank or another
        raise Stopped(
            f"stopped by {stop.name or 'a signal to another rank'} during search trial {trial['trial']}; finished "
            "trials are kept, re-run to resume",
            origin=str(run.folder.root),
        )
    return False


def _save_trial(run: Run, index: int) -> None:
    weights, optimizer_state = checkpoint.trainable_state(run.model, run.optimizer)
    rngs = distributed.gather_object(checkpoint.rng_state(), run.dist)
    if run.dist.is_main:
        checkpoint.save(trial_dir(run, index), weights, optimizer_state, run.scheduler, run.state, 1, rngs)
    distributed.sum_across(0.0, run.dist)  # a barrier: every rank sees the checkpoint before it may load it


def _replan(run: Run, record: dict, measure: Measure, clock: Clock, done: int) -> None:
    """With a budget: the final length that the time left allows at the measured speed (never below the
    last rung, never past the longest the run may train)."""
    budget = run.config.train.budget
    plan = run.recipe
    assert plan is not None
    if budget is None:
        return
    alive = sum(1 for t in record["trials"] if t["status"] != "pruned")
    left = clock.left() - measure.eval_s * (len(plan.evals) + 1)
    step_s = measure.step_seconds()
    later = [r for r in plan.rungs if r > done]
    # the rest: the alive trials to the next rungs, then the survivor to the end
    steps_left = left / max(step_s, 1e-9)
    cost_rungs = 0
    a, prev = alive, done
    for r in later:
        cost_rungs += a * (r - prev)
        a, prev = max(1, math.ceil(a / ETA)), r
    final = int(prev + max(0.0, steps_left - cost_rungs))
    final = max(prev, min(final, run.longest))
    if final != plan.final_steps:
        log.info("re-planned: %d final steps (was %d) at %.2f s a step", final, plan.final_steps, step_s)
    replan(run, final, prev, measure.eval_s / max(step_s, 1e-9))
    record["planned"].update(final_steps=final, evals=plan.evals)
    record["final"]["steps"] = final


def replan(run: Run, final: int, after: int, eval_ratio: float = 0.0) -> None:
    """Set the final length in place (the schedule reads the plan at every step); `eval_ratio`: an
    evaluation's measured cost in steps (how many final evaluations the time affords)."""
    plan = run.recipe
    assert plan is not None
    plan.final_steps, plan.evals = final, final_evals(final, after, eval_ratio)
    run.total_steps = final


def plan_budget(run: Run, measure: Measure) -> None:
    """Fit the plan into `train.budget` from a calibration (the real model, a few real steps); a budget too short
    for the shortest plan is a BudgetError that names the shortest budget the estimate allows."""
    from tunesmith.training.estimate import calibrate, count

    config, prep, plan = run.config, run.prep, run.recipe
    assert plan is not None and config.train.budget is not None
    cal = calibrate(config, prep.train_rows, prep.tokenizer, prep.source)
    per_token = cal["calibration"]["seconds_per_1k_tokens"] / 1000
    counted = count(prep.train_rows, config)
    step_s = per_token * counted["work_tokens"] / max(counted["steps"], 1)
    forward = cal["calibration"]["forward_seconds_per_1k_tokens"] / 1000  # measured, not a third of a step
    select_tokens = sum(len(r.input_ids) for r in prep.select_rows)
    split = max(len(prep.select_rows), 1)
    row_s = forward * select_tokens / split * (1 + GENERATION_COST * (measure.metric not in ("accuracy", "eval_loss")))
    margin = margin_s(config.train.budget)
    available = run.clock.left() - margin
    split, least = measure.rows, getattr(measure.score, "least", measure.rows)
    rows = selection_rows(available, row_s, split, least, plan.evaluations)
    warmup = config.train.warmup_ratio
    fitted = fit_plan(available, step_s, row_s * rows, plan.candidates, warmup, run.longest)
    if fitted is None and rows > least:  # the steps need the time more than the evaluations do
        rows = min(least, split)
        fitted = fit_plan(available, step_s, row_s * rows, plan.candidates, warmup, run.longest)
    if fitted is None:
        need = run.clock.spent() + margin + shortest_budget(step_s, row_s * rows, plan.candidates, warmup, run.longest)
        raise BudgetError(
            f"{config.train.budget:.0f}s is too short: the shortest search ({len(plan.candidates)} learning rates, "
            f"{MIN_FINAL_STEPS} steps) needs about {math.ceil(need)}s here ({step_s:.2f} s a step); give at least "
            f"train.budget={math.ceil(need)}s, or set train.lr and train.epochs",
            field="train.budget",
        )
    if rows < split:
        log.info(
            "budget %.0fs: each selection evaluation scores %d of the %d selection rows (every label in turn), "
            "to keep evaluations within about %.0f%% of the budget",
            config.train.budget,
            rows,
            split,
            100 * EVAL_SHARE,
        )
        measure.resize(rows)
    measure.step_s, measure.eval_s = step_s, row_s * measure.rows
    eval_s = measure.eval_s
    run.recipe, run.total_steps = fitted, fitted.final_steps
    log.info(
        "budget %.0fs: %d final steps, trials compared at steps %s, about %.0fs of training (%.2f s a step)",
        config.train.budget,
        fitted.final_steps,
        fitted.rungs or "-",
        fitted.seconds(step_s, eval_s),
        step_s,
    )


class Keeper:
    """The final run's selection evaluations (at the plan's steps and where the budget stops it), and its best
    weights: the final weights are the best step's by the selection metric, not simply the last."""

    def __init__(self, run: Run, measure: Measure, record: dict):
        self.run, self.measure, self.record = run, measure, record
        final = record["final"]
        chosen = record.get("chosen") or {}
        if final["best_step"] is None and chosen.get("step"):  # the survivor's last rung is a candidate too
            trial = record["trials"][chosen["trial"]]
            final.update(best_step=chosen["step"], best_value=trial["evals"][-1]["value"])
            found = checkpoint.list_checkpoints(trial_dir(run, chosen["trial"]))
            final["best_path"] = str(found[-1].relative_to(run.folder.root)) if found else None
        self.stopped_by_budget = False
        self.stopped_at_ceiling = False
        self._last: float | None = None  # when the previous step's record came (step time, evaluations left out)

    @property
    def evaluated(self) -> set[int]:
        return {e["step"] for e in self.record["final"]["evals"]}

    def annotate(self, rec: dict) -> None:
        plan = self.run.recipe
        assert plan is not None
        now = time.perf_counter()
        if self._last is not None:
            self.measure.step_times.append(now - self._last)
        self._refit(rec["step"])
        if rec["step"] in plan.evals or (self._out_of_budget() and rec["step"] not in self.evaluated):
            rec[f"select_{self.measure.metric}"] = self.evaluate(rec["step"])
        self._last = time.perf_counter()

    def _refit(self, step: int) -> None:
        """With a budget, until the decay starts: the final length that the time left affords at the step time
        measured so far, so the learning rate's decay ends inside the budget instead of being cut short (a
        calibration's step time ran 30% under the real one on CLINC150). Rank 0 decides for every rank."""
        run, plan = self.run, self.run.recipe
        assert plan is not None
        budget = run.config.train.budget
        if budget is None or step >= plan.final_steps - math.ceil(COOLDOWN * plan.final_steps):
            return
        final, step_s = plan.final_steps, self.measure.step_seconds()
        if run.dist.is_main and len(self.measure.step_times) >= 5:
            evals_left = sum(1 for e in plan.evals if e > step)
            left = run.clock.left() - margin_s(budget) - self.measure.eval_s * evals_left
            final = max(step + 1, min(step + max(1, int(left / max(step_s, 1e-9))), run.longest))
        final, ratio = distributed.broadcast_object((final, self.measure.eval_s / max(step_s, 1e-9)), run.dist)
        # within noise, or within one evaluation's cost (moving the end moves the evaluations, and with them the
        # time left: a smaller margin flip-flopped between two lengths at every step): keep the plan
        if abs(final - plan.final_steps) <= max(2, plan.final_steps // 50, math.ceil(ratio) + 2):
            return
        log.info("re-planned: %d final steps (was %d) at %.2f s a step", final, plan.final_steps, step_s)
        replan(run, final, (self.record.get("chosen") or {}).get("step", 0), ratio)
        self.record["planned"].update(final_steps=final, evals=plan.evals)
        self.record["final"]["steps"] = final

    def evaluate(self, step: int) -> float:
        run, final = self.run, self.record["final"]
        value = self.measure.evaluate(run)
        final["evals"].append(self.measure.entry(step, value, run.clock.spent()))
        if self.measure.better(value, final["best_value"]):
            final.update(best_step=step, best_value=value)
            weights, _ = checkpoint.trainable_state(run.model, run.optimizer)
            if run.dist.is_main:
                best = checkpoint.save(run.folder.checkpoints / "best", weights, {}, run.scheduler, run.state, 1)
                final["best_path"] = str(best.relative_to(run.folder.root))
        save_record(run, self.record, run.clock)
        return value

    def should_stop(self) -> bool:
        """True (on every rank) once the best selection value is the metric's maximum (nothing can beat it, and a
        tie never replaces the kept step), or the budget has no room for another step, an evaluation and the
        save."""
        return self._at_ceiling() or self._out_of_budget()

    def _at_ceiling(self) -> bool:
        ceiling = getattr(self.measure.score, "ceiling", None)
        best = self.record["final"].get("best_value")
        if ceiling is None or best is None or not best >= ceiling:
            return False
        if not self.stopped_at_ceiling:
            self.stopped_at_ceiling = True
            self.record["final"]["stopped_at_ceiling"] = True
            log.info(
                "selection %s is %g at step %d, its maximum: nothing can beat that step, so training stops here",
                self.measure.metric,
                best,
                self.record["final"]["best_step"],
            )
        return True

    def _out_of_budget(self) -> bool:
        run = self.run
        if run.config.train.budget is None:
            return False
        room = self.measure.step_seconds() + self.measure.eval_s + margin_s(run.config.train.budget)
        stop = distributed.any_across(run.clock.left() < room, run.dist)
        self.stopped_by_budget |= stop and run.state.step < run.total_steps
        return stop

    def finish(self, model) -> dict:
        """Put the best step's weights in the (unsharded, rank 0) model; the record's summary."""
        final = self.record["final"]
        best_path = final.get("best_path")
        if best_path and final["best_step"] != self.run.state.step:
            path = self.run.folder.root / best_path
            checkpoint.load_weights(model, checkpoint.read_weights(path), str(path))
            log.info(
                "kept the weights of step %d (%s %.4f)", final["best_step"], self.measure.metric, final["best_value"]
            )
        final["stopped_by_budget"] = self.stopped_by_budget
        save_record(self.run, self.record, self.run.clock)
        budget = self.run.config.train.budget
        return {
            "metric": self.measure.metric,
            "lr": self.run.lr,
            "best_step": final["best_step"],
            "best_value": final["best_value"],
            "trials": len(self.record["trials"]),
            "seconds": self.record["seconds"],
            "budget_s": budget,
            "within_budget": None if budget is None else self.record["seconds"] <= budget,
            "stopped_by_budget": self.stopped_by_budget,
            "stopped_at_ceiling": self.stopped_at_ceiling,
        }
