"""The report's hyper-parameter search section from a synthetic search.json: the plots and the table name the
chosen rate, a run without search.json gets no section, and a loss metric's best is its minimum. One real
`train.lr: auto` run checks the section reads what the search writes."""

import json
import math
import re

import pytest
from labeltask import run_config
from searchrecord import RESULTS, loss_record, search_record, single_trial_record, summary

import tunesmith
from tunesmith.evaluate import search_report
from tunesmith.evaluate.report import write_reports
from tunesmith.runfolder import RunFolder, read_json


def write_run(tmp_path, record=None):
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    if record is not None:
        run.search.write_text(json.dumps(record))
    write_reports(run, summary(), [], [], RESULTS, {}, run.metrics)
    return run.report_html.read_text(), run.report_md.read_text()


def test_section_plots_and_table_name_the_chosen_rate(tmp_path):
    html, md = write_run(tmp_path, search_record())
    assert "<h2>Hyper-parameter search</h2>" in html
    assert html.count('<svg class="chart search') == 2  # against learning rate and against step
    lr_svg = re.search(r'<svg class="chart search lr".*?</svg>', html).group(0)
    assert len(re.findall(r'<circle class="trial', lr_svg)) == 4 and lr_svg.count("trial chosen") == 1
    assert "lr 1e-3: accuracy 0.82 at step 180 (chosen)" in lr_svg  # the chosen one at its last evaluation
    step_svg = re.search(r'<svg class="chart search steps".*?</svg>', html).group(0)
    assert step_svg.count("<polyline") == 2  # the trials with two or more evaluations
    chosen_line = re.search(r'<polyline class="trial chosen" points="([^"]+)"', step_svg).group(1)
    assert len(chosen_line.split()) == 2 + 4  # its rungs, then the final training's evaluations
    assert "best 0.83 · step 160" in step_svg and step_svg.count('class="rung"') == 2
    sentence = (
        "Chose learning rate 1e-3 (trial 2; 4 rates compared by successive halving on 750 selection rows): "
        "trained 180 steps and kept step 160, accuracy 0.83 (higher is better). "
        "It took 575 s of the 600 s budget: within the budget."
    )
    assert sentence in html and sentence in md
    assert "| 2 | 1e-3 | 180 (kept 160) | 0.83 | 497.2 | chosen |" in md
    assert "| 0 | 1e-4 | 22 | 0.41 | 30.0 | pruned |" in md
    assert "| 1 | 3e-4 | 44 | 0.61 | 36.0 | pruned |" in md


def test_no_search_json_no_section(tmp_path):
    html, md = write_run(tmp_path)
    assert "Hyper-parameter search" not in html and "Hyper-parameter search" not in md
    assert "chart search" not in html


def test_unreadable_search_json_is_skipped_with_a_warning(tmp_path, caplog):
    run = RunFolder(tmp_path)
    run.search.write_text("{not json")
    assert search_report.read_search(run.search) is None
    assert "not readable" in caplog.text


def test_loss_metric_best_is_the_minimum(tmp_path):
    record = loss_record()
    html, md = write_run(tmp_path, record)
    assert "kept step 135, eval_loss 0.9 (lower is better)" in md
    assert "No time budget was set (it took 575 s)." in md
    assert "best 0.9 · step 135" in html and "eval_loss (lower is better)" in html
    assert "| 2 | 1e-3 | 180 (kept 135) | 0.9 |" in md


def test_over_budget_and_cut_short():
    record = search_record(seconds=640.0)
    record["final"]["stopped_by_budget"] = True
    record["final"]["evals"] = record["final"]["evals"][:3]
    text = search_report.sentence(record, search_report.trials_of(record))
    assert "trained 160 steps" in text and "over the budget by 40 s (the budget ended the final training early)" in text
    assert "planned end" in search_report.html_section(record)


def test_single_trial_with_nulls(tmp_path):
    html, md = write_run(tmp_path, single_trial_record())
    assert "One learning rate, 1e-2 (nothing to search): trained 33 steps and kept step 33, accuracy 0.75" in md
    assert "| 0 | 1e-2 | 33 | 0.75 |" in md
    lr_svg = re.search(r'<svg class="chart search lr".*?</svg>', html).group(0)
    assert lr_svg.count("<circle") == 1 and "NaN" not in html and "nan" not in html


def test_diverged_and_running_trials_do_not_break_the_scale():
    record = search_record(chosen=None, final={"steps": 180, "best_step": None, "best_value": None, "evals": []})
    record["trials"][3].update(diverged=True, evals=[{"step": 22, "value": -1.0, "seconds": 66.0}])
    for t in record["trials"][1:3]:
        t["status"] = "running"
    record["trials"][0]["lr"] = None
    trials = search_report.trials_of(record)
    assert trials[3].diverged_at == 22 and trials[3].points == []
    assert search_report.best_of(record, trials) is None
    assert "not chosen yet: 2 of 4 trials still running" in search_report.sentence(record, trials)
    html = search_report.html_section(record)
    assert 'class="diverged"' in html and ">diverged<" in html
    assert "-1.0" not in re.search(r'<svg class="chart search steps".*?</svg>', html).group(0)


@pytest.mark.parametrize(
    ("lr", "text"),
    [(1e-4, "1e-4"), (3e-4, "3e-4"), (2.5e-5, "2.5e-5"), (0.01, "1e-2"), (0.3, "0.3"), (30.0, "30"), (None, "–")],
)
def test_learning_rates_read_short(lr, text):
    assert search_report.fmt_lr(lr) == text


def test_nice_ticks_cover_the_range():
    for lo, hi in [(0.38, 0.83), (0.9, 2.4), (0.75, 0.75), (0.0, 180.0), (0.0, 0.0)]:
        ticks = search_report.nice_ticks(lo, hi)
        assert ticks[0] <= lo and ticks[-1] >= hi and 2 <= len(ticks) <= 12
        steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
        assert len(steps) == 1 and all(math.isfinite(t) for t in ticks)


def test_a_real_auto_run_reports_its_search(tmp_path, tiny_llama_dir, label_data):
    cfg = run_config(
        tiny_llama_dir, *label_data, tmp_path / "run", lr="auto", max_steps=None, lr_candidates=[1e-4, 3e-2]
    )
    result = tunesmith.train(cfg, show_progress=False)
    record = read_json(result.run_dir / "search.json")
    chosen = record["chosen"]["lr"]
    html, md = (result.run_dir / "report.html").read_text(), (result.run_dir / "report.md").read_text()
    assert f"Chose learning rate {search_report.fmt_lr(chosen)} (trial {record['chosen']['trial']}; 2 rates" in md
    assert f"kept step {record['final']['best_step']}, {record['metric']}" in md
    assert html.count('<svg class="chart search') == 2 and "trial chosen" in html
    rows = [line for line in md.splitlines() if line.endswith("| chosen |")]
    assert len(rows) == 1 and f"| {search_report.fmt_lr(chosen)} |" in rows[0]
