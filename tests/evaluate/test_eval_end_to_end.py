"""A tiny tuned run, evaluated at the end of training and again through the real `tunesmith eval` CLI."""

import json
import os
import subprocess
import sys

import pytest
from labeltask import REGEX

from tunesmith.data.types import Message


def test_training_writes_the_comparison_and_tuned_beats_prompting(tuned_run):
    run = tuned_run.run_dir
    for name in ("eval.json", "predictions.jsonl", "report.html", "report.md", "summary.json"):
        assert (run / name).is_file(), name
    report = json.loads((run / "eval.json").read_text())
    assert report["task"]["kind"] == "label" and report["task"]["labels"] == ["account", "billing", "shipping"]
    acc = {k: s["metrics"]["accuracy"] for k, s in report["systems"].items()}
    assert list(acc) == ["base_zero_shot", "base_few_shot", "tuned"]
    assert acc["tuned"]["value"] >= 0.75
    for base in ("base_zero_shot", "base_few_shot"):
        assert acc[base]["value"] <= 0.34
        assert acc["tuned"]["ci"][0] > acc[base]["ci"][1]  # the intervals do not even overlap
        vs = report["tuned_vs"][base]
        assert vs["ci"][0] > 0 and vs["fixed"] > vs["broke"]
        assert vs["delta"] == pytest.approx(acc["tuned"]["value"] - acc[base]["value"], abs=1e-12)
    loss = {k: s["loss"]["eval_loss"] for k, s in report["systems"].items()}
    assert loss["tuned"] < 0.5 < loss["base_zero_shot"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["comparison"]["tuned"] == acc["tuned"]["value"]
    assert summary["after"]["accuracy"] == acc["tuned"]["value"]  # the old before/after summary agrees
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and set(rows[0]["systems"]) == set(acc)
    fixed = report["tuned_vs"]["base_zero_shot"]["fixed"]
    assert sum(r["tuned_vs"]["base_zero_shot"] == "fixed" for r in rows) == fixed
    assert sum(r["systems"]["tuned"]["scores"]["accuracy"] for r in rows) / 24 == acc["tuned"]["value"]
    html = (run / "report.html").read_text()
    assert f"{100 * acc['tuned']['value']:.1f}" in html and "Confusion matrices" in html
    assert "http" not in html and " src=" not in html and "<link" not in html  # self-contained: nothing fetched
    assert f"| accuracy | {100 * acc['base_zero_shot']['value']:.1f}" in (run / "report.md").read_text()


def test_every_answer_is_generated_once_and_eval_reuses_them(tuned_run, monkeypatch):
    """Before/after and the report's base zero-shot/tuned share their answers and their held-out loss: 3 systems
    x 24 rows are generated, not 5 x 24, and 3 losses computed, not 5; `evaluate_run` on the same data then
    generates and computes nothing and scores the same."""
    from tunesmith.evaluate import answers, evaluate_run

    run = tuned_run.run_dir
    kept = (run / "answers.jsonl").read_text().splitlines()
    assert all(set(json.loads(line)) == {"key", "answer"} for line in kept)
    losses = [line for line in kept if json.loads(line)["answer"].startswith('{"eval_loss"')]
    assert len(kept) - len(losses) == 3 * 24 and len(losses) == 3
    summary = json.loads((run / "summary.json").read_text())
    report = json.loads((run / "eval.json").read_text())
    assert summary["before"]["accuracy"] == report["systems"]["base_zero_shot"]["metrics"]["accuracy"]["value"]
    assert summary["before"]["eval_loss"] == report["systems"]["base_zero_shot"]["loss"]["eval_loss"]
    assert summary["after"]["eval_loss"] == report["systems"]["tuned"]["loss"]["eval_loss"]

    def no_generation(*args, **kwargs):
        raise AssertionError("an answer was generated again")

    monkeypatch.setattr(answers, "generate_answers", no_generation)
    again = evaluate_run(run, out_dir=run / "again")
    for key, system in report["systems"].items():
        assert again["systems"][key]["metrics"] == system["metrics"]
    assert (run / "answers.jsonl").read_text().splitlines() == kept


def test_kept_answers_survive_a_cut_line_and_a_new_model_misses(tmp_path, tiny_llama_dir):
    from tunesmith.evaluate.answers import AnswerCache
    from tunesmith.model.load import load_model, load_tokenizer, resolve_model

    source = resolve_model(str(tiny_llama_dir))
    model, tok = load_model(source, dtype="float32"), load_tokenizer(source)
    convs = [[Message("user", f"ticket {i}")] for i in range(3)]
    path = tmp_path / "answers.jsonl"
    first = AnswerCache(path).answers("a", model, tok, convs, system_prompt=None, max_new_tokens=4, batch_size=2)
    path.write_text(path.read_text() + '{"key": "cut', encoding="utf-8")  # a writer killed mid-line
    cache = AnswerCache(path)
    assert len(cache.store) == 3
    assert cache.answers("a", model, tok, convs, system_prompt=None, max_new_tokens=4, batch_size=2) == first
    cache.answers("b", model, tok, convs[:1], system_prompt=None, max_new_tokens=4, batch_size=2)  # another model
    assert len(AnswerCache(path).store) == 4  # the cut line skipped, the new answer on a line of its own


def test_cli_eval_ranks_labels_and_compares_runs(tuned_run, label_data, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = tmp_path / "eval"
    cmd = [
        sys.executable,
        "-m",
        "tunesmith.cli",
        "eval",
        str(tuned_run.run_dir),
        "--data",
        label_data[1],
        "--few-shot",
        "2",
        "--method",
        "rank",
        "--resamples",
        "200",
        "--compare",
        str(tuned_run.run_dir),
        "--answer-regex",
        REGEX,
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tuned vs base zero-shot" in done.stdout and "report.html" in done.stdout
    report = json.loads((out / "eval.json").read_text())
    assert report["method"] == "rank" and report["bootstrap"]["resamples"] == 200
    assert list(report["systems"]) == ["base_zero_shot", "base_few_shot", "tuned", "run:run"]
    systems = report["systems"]
    assert list(systems["tuned"]["metrics"]) == ["accuracy", "macro_f1"]  # ranking scores labels only
    assert systems["tuned"]["metrics"]["accuracy"]["value"] >= 0.75
    assert systems["run:run"]["metrics"] == systems["tuned"]["metrics"]  # the same run, the same numbers
    assert systems["base_few_shot"]["title"] == "base 2-shot"
    assert (out / "report.html").is_file() and not (out / "summary.json").exists()


def test_cli_eval_errors_are_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", "eval", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert done.returncode == 2 and "not a tunesmith run folder" in done.stderr


def test_eval_precision_flag_reaches_generation(tuned_run, tmp_path, monkeypatch):
    """`tunesmith eval --precision model` decodes in the weights' own dtype (the run's eval.precision says
    float32): every answer is generated inside that precision."""
    import shutil

    from tunesmith.cli import main
    from tunesmith.evaluate import answers
    from tunesmith.precision import decoding_precision

    run = tmp_path / "run"
    shutil.copytree(tuned_run.run_dir, run, ignore=shutil.ignore_patterns("answers.jsonl", "checkpoints"))
    seen, real = [], answers.generate_answers

    def spy(*args, **kwargs):
        seen.append(decoding_precision())
        return real(*args, **kwargs)

    monkeypatch.setattr(answers, "generate_answers", spy)
    argv = ["eval", str(run), "--precision", "model", "--max-samples", "4", "--resamples", "10", "--few-shot", "0"]
    assert main(argv) == 0
    assert seen and set(seen) == {"model"}


def test_a_run_data_file_missing_from_here_is_named_before_the_model_loads(tuned_run, tmp_path, monkeypatch):
    """A run keeps its data paths as written; evaluated from another folder, a relative one is missing: the error
    names the file and the run's key, and comes before the model is loaded."""
    import shutil

    import yaml

    from tunesmith.errors import DataError
    from tunesmith.evaluate import runner

    run = tmp_path / "run"
    shutil.copytree(tuned_run.run_dir, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    test_file = config["data"]["eval"]
    config["data"]["train"] = "data/train.jsonl"  # relative: read from the current folder
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the data was checked")

    monkeypatch.setattr("tunesmith.model.tuned.load_tuned", never)
    with pytest.raises(DataError) as caught:
        runner.evaluate_run(run, data=test_file, include_base=False)
    message = str(caught.value)
    assert message.startswith("data/train.jsonl: no such file") and "the run's data.train" in message, message
