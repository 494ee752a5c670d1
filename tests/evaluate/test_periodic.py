"""During training: the periodic generation eval is logged, the best step's weights are kept, and training
stops early once the task metric stops improving."""

import json

from labeltask import run_config

import tunesmith
from tunesmith.runfolder import read_metrics


def test_periodic_task_metric_best_weights_and_early_stopping(tmp_path, tiny_llama_dir, label_data):
    cfg = run_config(tiny_llama_dir, *label_data, tmp_path / "run")
    # patience 3: answers held to the labels score chance (1/3) for the first 75 steps, until the mapping is learned
    cfg["eval"].update(generate_every=25, generate_samples=24, select_best=True, patience=3, report=False)
    result = tunesmith.train(cfg, show_progress=False)
    records = read_metrics(result.run_dir / "metrics.jsonl")
    probed = [(r["step"], r["eval_accuracy"]) for r in records if "eval_accuracy" in r]
    assert [s for s, _ in probed] == list(range(25, 25 * len(probed) + 1, 25))
    best = result.summary["best"]
    assert best["value"] == max(v for _, v in probed) >= 0.75
    assert best["step"] == min(s for s, v in probed if v == best["value"])
    # stopped three evaluations after the best one, before max_steps
    assert best["early_stopped"] and result.summary["steps"] == best["step"] + 75 < 300
    # the saved model is the best step's: its held-out accuracy (same 24 rows) is the best value
    assert result.summary["after"]["accuracy"] == best["value"]
    assert not (result.run_dir / "report.html").exists()  # eval.report: false
    assert json.loads((result.run_dir / "summary.json").read_text())["best"] == best
