"""train.lr / train.epochs auto on a tiny model: the search picks the rate that is clearly best, plans fit the
budget, the selection split is carved as promised, and a killed search resumes exactly."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tunesmith
from tunesmith.data import split_selection
from tunesmith.data.types import Conversation, Message
from tunesmith.errors import Origin
from tunesmith.evaluate.selection import interleave
from tunesmith.runfolder import read_json, read_metrics
from tunesmith.training.budget import (
    EVAL_SHARE,
    MIN_FINAL_STEPS,
    final_evals,
    fit_plan,
    make_plan,
    rungs_for,
    selection_rows,
    wsd,
)

LABELS = ["alpha", "beta", "gamma", "delta"]


def write_task(path: Path, n: int = 96) -> str:
    """A label task a tiny model can learn: the label is the first word of the question."""
    with open(path, "w") as fh:
        for i in range(n):
            label = LABELS[i % len(LABELS)]
            user = f"{label} ticket number {i}"
            fh.write(
                json.dumps({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": label}]})
            )
            fh.write("\n")
    return str(path)


def auto_config(tmp_path: Path, model_dir, name: str, rows: int = 96, **train) -> dict:
    return {
        "model": {"name": str(model_dir), "dtype": "float32"},
        "data": {"train": write_task(tmp_path / f"train-{rows}.jsonl", rows)},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "train": {"batch_size": 8, "max_length": 64, "group_by_length": False, "save_every": 1000, **train},
        "eval": {"enabled": False},
        "output_dir": str(tmp_path / name),
    }


@pytest.mark.parametrize("order", [1, -1])
def test_auto_picks_the_clearly_best_rate(tmp_path, tiny_llama_dir, order):
    # 1e-5 barely moves a tiny LoRA in 40 steps and 30 overshoots (clipped, still far worse): 1e-2 is best. The
    # candidates come in both orders, so a search that keeps its first (or its last) candidate fails.
    rates = [1e-5, 1e-2, 30.0][::order]
    result = tunesmith.train(auto_config(tmp_path, tiny_llama_dir, "run", lr_candidates=rates), show_progress=False)
    record = read_json(result.run_dir / "search.json")
    assert record["chosen"]["lr"] == 1e-2
    assert result.summary["search"]["lr"] == 1e-2
    statuses = {t["lr"]: t["status"] for t in record["trials"]}
    assert statuses == {1e-5: "pruned", 1e-2: "chosen", 30.0: "pruned"}
    # the survivor's rung evaluations, then the final run's; the final weights are the best step's
    final = record["final"]
    values = [e["value"] for e in final["evals"]]
    assert final["best_value"] == min(values + [record["trials"][record["chosen"]["trial"]]["evals"][-1]["value"]])
    assert result.summary["search"]["best_step"] == final["best_step"]
    # pruned trials' checkpoints are gone; the metrics curve is the survivor's, one record per step
    assert not (result.run_dir / "checkpoints" / "search" / f"trial-{rates.index(1e-5)}").exists()
    steps = [r["step"] for r in read_metrics(result.run_dir / "metrics.jsonl")]
    assert steps == list(range(1, len(steps) + 1)) and steps[-1] == record["final"]["steps"]
    assert json.loads((result.run_dir / "labels.json").read_text())["labels"] == sorted(LABELS)


def test_explicit_rate_and_length_run_no_search(tmp_path, tiny_llama_dir):
    cfg = auto_config(tmp_path, tiny_llama_dir, "fixed", lr=1e-2, max_steps=3)
    result = tunesmith.train(cfg, show_progress=False)
    assert not (result.run_dir / "search.json").exists() and "search" not in result.summary
    assert result.summary["train_rows"] == 96  # nothing carved off


def test_explicit_rate_with_auto_length_keeps_the_best_step(tmp_path, tiny_llama_dir):
    result = tunesmith.train(auto_config(tmp_path, tiny_llama_dir, "len", lr=1e-2), show_progress=False)
    record = read_json(result.run_dir / "search.json")
    assert [t["lr"] for t in record["trials"]] == [1e-2] and record["planned"]["rungs"] == []
    assert record["final"]["steps"] == 3 * 11  # 3 epochs (86 rows after the selection split, batch 8)
    assert record["final"]["best_step"] in [e["step"] for e in record["final"]["evals"]]


@settings(max_examples=200, deadline=None)
@given(
    budget=st.floats(1.0, 5000.0),
    step_s=st.floats(0.01, 5.0),
    eval_s=st.floats(0.0, 20.0),
    n=st.integers(1, 6),
    longest=st.integers(1, 3000),
)
def test_planned_steps_fit_the_budget(budget, step_s, eval_s, n, longest):
    rates = [10.0**-k for k in range(n)]
    ratio = eval_s / step_s
    plan = fit_plan(budget, step_s, eval_s, rates, 0.05, longest)
    if plan is None:  # not even the shortest plan fits
        assert make_plan(min(MIN_FINAL_STEPS, longest), rates, 0.05, ratio).seconds(step_s, eval_s) > budget
        return
    assert plan.seconds(step_s, eval_s) <= budget
    assert plan.final_steps <= longest
    if plan.final_steps < longest:  # the longest that fits: one more step would not
        assert make_plan(plan.final_steps + 1, rates, 0.05, ratio).seconds(step_s, eval_s) > budget
    assert plan.rungs == sorted(plan.rungs) and all(r <= plan.final_steps for r in plan.rungs)
    assert plan.evals[-1] == plan.final_steps


def test_rungs_halve_the_trials():
    assert rungs_for(80, 4) == [10, 20]
    assert rungs_for(80, 1) == []
    assert len(rungs_for(80, 8)) == 3
    plan = make_plan(80, [1e-4, 3e-4, 1e-3, 3e-3], 0.05)
    assert plan.trial_steps == 80 + 4 * 10  # 4 trials to 10, 2 on to 20, the survivor to 80


def test_the_final_run_evaluates_only_as_often_as_it_can_afford():
    assert final_evals(100, 20) == [40, 60, 80, 100]  # no cost known: FINAL_EVALS
    assert final_evals(100, 20, eval_ratio=1.0) == [40, 60, 80, 100]  # cheap: all four
    # an evaluation costs 10 steps: 80 steps afford 80 * (0.25 / 0.75) / 10 = 2 of them within EVAL_SHARE
    assert final_evals(100, 20, eval_ratio=10.0) == [60, 100]
    assert final_evals(30, 20, eval_ratio=50.0) == [30]  # never fewer than one, at the end
    cheap, costly = make_plan(80, [1e-3, 3e-3], 0.05, 0.5), make_plan(80, [1e-3, 3e-3], 0.05, 40.0)
    assert len(cheap.evals) == 4 and costly.evals == [80]


def test_warmup_stable_decay():
    factors = [wsd(s, 4, 100) for s in range(100)]
    assert factors[0] < factors[3] < 1.0 and factors[4:80] == [1.0] * 76
    assert factors[80] == 1.0 and factors[90] == pytest.approx(0.5) and factors[99] == pytest.approx(0.05)
    assert wsd(1000, 4, None) == 1.0


def _conv(i: int, answer: str) -> Conversation:
    return Conversation(Origin("f", i), (Message("user", f"q{i}"), Message("assistant", answer)))


def test_selection_split_is_stratified_and_seeded():
    convs = [_conv(i, LABELS[i % 4]) for i in range(40)] + [_conv(100 + i, "rare") for i in range(3)]
    train, select = split_selection(convs, seed=3)
    picked = [c.reference() for c in select]
    for label in LABELS:
        assert picked.count(label) == 2  # max(2, 10% of 10)
    assert picked.count("rare") == 1  # never more than half of a label
    assert len(train) + len(select) == len(convs) and not {c.origin for c in train} & {c.origin for c in select}
    assert split_selection(convs, seed=3)[1] == select and split_selection(convs, seed=4)[1] != select
    free = [_conv(i, f"a different answer {i}") for i in range(50)]
    assert len(split_selection(free, seed=0)[1]) == 5  # no labels: a plain 10%


def test_small_selection_split_warns_and_uses_loss(tmp_path, tiny_llama_dir, caplog):
    cfg = auto_config(tmp_path, tiny_llama_dir, "small", lr=1e-2, max_steps=None)
    with caplog.at_level("WARNING", logger="tunesmith"):
        result = tunesmith.train(cfg, show_progress=False)
    assert "too few to decide by accuracy" in caplog.text
    assert read_json(result.run_dir / "search.json")["metric"] == "eval_loss"


def test_enough_selection_rows_use_label_accuracy(tmp_path, tiny_llama_dir):
    select = write_task(tmp_path / "select.jsonl", n=24)
    cfg = auto_config(tmp_path, tiny_llama_dir, "acc", lr=1e-2)
    cfg["data"]["select"] = select
    result = tunesmith.train(cfg, show_progress=False)
    record = read_json(result.run_dir / "search.json")
    assert record["metric"] == "accuracy" and record["selection_rows"] == 24
    assert result.summary["train_rows"] == 96  # a selection file: nothing carved from train
    assert all(0.0 <= e["value"] <= 1.0 for e in record["final"]["evals"])


def test_killed_search_resumes_exactly(tmp_path, tiny_llama_dir):
    rates = [1e-5, 1e-2, 30.0]  # 400 rows: 150 final steps, trials compared at 19 and 38 (long enough to kill in)
    # one thread in every run: 1 and 2 threads round fp32 matmuls differently on some CPUs (seen with oneDNN on
    # an AMX Xeon), and the killed run is a subprocess while the others run here
    ref_cfg = auto_config(tmp_path, tiny_llama_dir, "ref", rows=400, lr_candidates=rates, threads=1)
    reference = tunesmith.train(ref_cfg, show_progress=False)
    ref = read_json(reference.run_dir / "search.json")

    cfg = auto_config(tmp_path, tiny_llama_dir, "killed", rows=400, lr_candidates=rates, threads=1)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    script = "import json, sys, tunesmith; tunesmith.train(json.load(open(sys.argv[1])), show_progress=False)"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "cfg.json")], env=env)
    search = Path(cfg["output_dir"]) / "search.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:  # kill once two trials have finished their first rung
        if search.is_file() and sum(len(t["evals"]) for t in read_json(search)["trials"]) >= 2:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {t["trial"]: len(t["evals"]) for t in read_json(search)["trials"]}
    assert sum(done_before.values()) >= 2 and read_json(search)["chosen"] is None

    resumed = tunesmith.train(cfg, show_progress=False)
    got = read_json(resumed.run_dir / "search.json")
    assert got["chosen"] == ref["chosen"]
    for a, b in zip(got["trials"], ref["trials"]):
        assert [e["value"] for e in a["evals"]] == pytest.approx([e["value"] for e in b["evals"]], abs=1e-6)
        assert [r["loss"] for r in a["curve"]] == pytest.approx([r["loss"] for r in b["curve"]], abs=1e-6)
    assert [e["value"] for e in got["final"]["evals"]] == pytest.approx(
        [e["value"] for e in ref["final"]["evals"]], abs=1e-6
    )
    losses = [r["loss"] for r in read_metrics(resumed.run_dir / "metrics.jsonl")]
    assert losses == pytest.approx([r["loss"] for r in read_metrics(reference.run_dir / "metrics.jsonl")], abs=1e-6)


@settings(max_examples=300, deadline=None)
@given(
    seconds=st.floats(0.0, 5000.0),
    row_s=st.floats(1e-4, 1.0),
    rows=st.integers(1, 2000),
    least=st.integers(1, 200),
    evaluations=st.integers(1, 20),
)
def test_selection_rows_keep_evaluations_within_their_share(seconds, row_s, rows, least, evaluations):
    n = selection_rows(seconds, row_s, rows, least, evaluations)
    assert min(least, rows) <= n <= rows
    if evaluations * rows * row_s <= EVAL_SHARE * seconds:
        assert n == rows  # affordable: the whole split
    elif n > min(least, rows):
        assert evaluations * n * row_s <= EVAL_SHARE * seconds  # within the share, and the most that is
        assert n == rows or evaluations * (n + 1) * row_s > EVAL_SHARE * seconds


def test_interleave_makes_every_prefix_stratified():
    items = [("a", i) for i in range(5)] + [("b", i) for i in range(2)] + [("", 0)] + [("c", i) for i in range(3)]
    out = interleave(items, lambda x: x[0])
    assert out[:3] == [("a", 0), ("b", 0), ("c", 0)] and out[3:6] == [("a", 1), ("b", 1), ("c", 1)]
    assert out[-1] == ("", 0) and sorted(out) == sorted(items)


def test_a_resized_selector_scores_a_stratified_prefix(tiny_llama_dir):
    from tunesmith.evaluate.selection import ConstrainedAccuracy, make_selector
    from tunesmith.model.load import load_model, load_tokenizer, resolve_model
    from tunesmith.render import render_all

    source = resolve_model(str(tiny_llama_dir))
    model, tok = load_model(source, dtype="float32"), load_tokenizer(source)
    convs = [_conv(i, LABELS[i % 4]) for i in range(48)]
    rows, _ = render_all(convs, tok, max_length=64)
    selector = make_selector(convs, rows, convs, tok, system_prompt=None, answer_regex=None)
    assert selector.metric == "accuracy" and selector.rows == selector.total == 48 and selector.least == 20
    selector.resize(3)
    assert selector.rows == 20  # never fewer than decide
    selector.resize(24)
    subset = [convs[i] for i in range(48) if i // 4 < 6]  # the first 6 rows of every label
    direct = ConstrainedAccuracy(selector.task, subset, tok, None, 32)(model)
    assert selector(model) == pytest.approx(direct)
    selector.resize(10_000)
    assert selector.rows == 48


def test_a_tight_budget_scores_a_subset_of_the_selection_split(tmp_path, tiny_llama_dir, monkeypatch):
    """When the evaluations of the whole split would take more than their share of the budget, each scores a
    stratified subset (recorded in search.json, and the same after a resume) instead of the run being refused."""
    from tunesmith.training import estimate

    real = estimate.calibrate

    def slow_forward(*args, **kwargs):  # a machine where scoring 96 selection rows takes most of the budget
        out = real(*args, **kwargs)
        out["calibration"]["seconds_per_1k_tokens"] = 60.0
        out["calibration"]["forward_seconds_per_1k_tokens"] = 20.0
        return out

    monkeypatch.setattr(estimate, "calibrate", slow_forward)
    select = write_task(tmp_path / "select.jsonl", n=96)
    cfg = auto_config(tmp_path, tiny_llama_dir, "tight", lr_candidates=[1e-3, 1e-2], budget="10m")
    cfg["data"]["select"] = select
    result = tunesmith.train(cfg, show_progress=False)
    record = read_json(result.run_dir / "search.json")
    assert record["metric"] == "accuracy" and record["selection_split_rows"] == 96
    assert 20 <= record["selection_rows"] < 96
    again = tunesmith.train(cfg, show_progress=False)  # finished: the same record
    assert read_json(again.run_dir / "search.json")["selection_rows"] == record["selection_rows"]


def _keeper_at(step_s: float, left: float, final: int = 100):
    """A Keeper of a budgeted final run planned for `final` steps, whose real steps take `step_s` and whose
    budget has `left` seconds left (a paused clock)."""
    from types import SimpleNamespace

    from tunesmith.training.budget import Clock, make_plan, margin_s
    from tunesmith.training.distributed import DistInfo
    from tunesmith.training.search import Keeper, Measure

    plan = make_plan(final, [1e-3, 3e-3], 0.0, eval_ratio=2.0)
    clock = Clock(100.0, spent=100.0 - left)
    clock.pause()
    run = SimpleNamespace(
        recipe=plan,
        config=SimpleNamespace(train=SimpleNamespace(budget=100.0)),
        clock=clock,
        dist=DistInfo(),
        longest=10_000,
        total_steps=final,
    )
    measure = Measure(lambda m: 0.0, "accuracy", True, 20, step_s=step_s / 2, eval_s=1.0)
    measure.step_times = [step_s] * 10
    record = {"final": {"best_step": None, "evals": []}, "chosen": None, "planned": {}}
    return Keeper(run, measure, record), run, plan, margin_s(100.0)


def test_the_final_run_refits_its_length_to_the_measured_step_time():
    """Steps twice as slow as calibrated: the final length shrinks so the decay ends inside the budget (it was
    cut short on CLINC150); twice as fast: it grows. Past the decay's start nothing moves."""
    keeper, run, plan, margin = _keeper_at(step_s=1.0, left=50.0)
    keeper._refit(10)
    evals_left = sum(1 for e in plan.evals if e > 10)
    assert plan.final_steps < 100 and run.total_steps == plan.final_steps
    assert (plan.final_steps - 10) * 1.0 + evals_left * 1.0 <= 50.0 - margin + 1.0  # fits, to a step
    assert plan.final_steps >= 10 + (50.0 - margin - 5 * 1.0) - 2  # and uses the time
    assert plan.evals[-1] == plan.final_steps

    fast, run, plan, _ = _keeper_at(step_s=0.25, left=50.0)
    fast._refit(10)
    assert plan.final_steps > 100

    late, run, plan, _ = _keeper_at(step_s=1.0, left=5.0)
    late._refit(90)  # inside the decay (the last 20%): the schedule is not moved
    assert plan.final_steps == 100


def test_json_and_codes_tasks_choose_by_their_generated_metric_with_the_loss_as_tiebreak(tiny_llama_dir):
    from tunesmith.config import EvalSpec
    from tunesmith.evaluate.selection import make_selector
    from tunesmith.model.load import load_model, load_tokenizer, resolve_model
    from tunesmith.render import render_all

    source = resolve_model(str(tiny_llama_dir))
    model, tok = load_model(source, dtype="float32"), load_tokenizer(source)
    convs = [
        _conv(i, json.dumps({"kind": LABELS[i % 4], "note": f"row {i} is about {LABELS[i % 4]}"})) for i in range(24)
    ]
    rows, _ = render_all(convs, tok, max_length=64)
    picked = make_selector(
        convs, rows, convs, tok, system_prompt=None, answer_regex=None, max_new_tokens=4, spec=EvalSpec()
    )
    assert picked.metric == "field_accuracy" and picked.higher_is_better and picked.rows == 24
    assert picked.tiebreak is None
    value = picked(model)
    assert 0.0 <= value <= 1.0 and picked.tiebreak is not None and picked.tiebreak > 0
    codes = [_conv(i, f"E11.{i % 3}, I10") for i in range(24)]
    rows, _ = render_all(codes, tok, max_length=64)
    coder = make_selector(codes, rows, codes, tok, system_prompt=None, answer_regex=None, spec=EvalSpec(task="codes"))
    assert coder.metric == "set_f1_micro" and coder.task is None  # codes are never a label set
    code = make_selector(codes, rows, codes, tok, system_prompt=None, answer_regex=None, spec=EvalSpec(task="code"))
    assert code.metric == "eval_loss"  # running tests at every selection point costs more than a search can spend


def test_the_final_run_stops_once_the_selection_metric_is_at_its_maximum():
    """Accuracy 1.0 cannot be beaten and a tie never replaces the kept step: training on would only spend time
    (support's auto run spent its last 130 s at 1.0). A loss has no maximum: it never stops that way."""
    from types import SimpleNamespace

    from tunesmith.evaluate.selection import Selector

    keeper, *_ = _keeper_at(step_s=1.0, left=90.0)
    keeper.measure.score = Selector("accuracy", True, 20, lambda model, n: 0.0)
    assert keeper.measure.score.ceiling == 1.0 and not keeper.should_stop()
    keeper.record["final"].update(best_step=30, best_value=0.95)
    assert not keeper.should_stop()
    keeper.record["final"].update(best_step=40, best_value=1.0)
    assert keeper.should_stop() and keeper.record["final"]["stopped_at_ceiling"] and keeper.stopped_at_ceiling
    assert not keeper.stopped_by_budget

    by_loss, *_ = _keeper_at(step_s=1.0, left=90.0)
    by_loss.measure.score = SimpleNamespace(ceiling=Selector("eval_loss", False, 20, lambda m, n: 0.0).ceiling)
    by_loss.record["final"].update(best_step=40, best_value=0.0)
    assert not by_loss.should_stop()
