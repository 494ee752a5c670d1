"""On a label task every system's generated answers are held to the label set (base zero-shot, few-shot and
tuned alike), unless `eval.free_text` or `--free-text` asks for free text."""

import json
import os
import subprocess
import sys

from labeltask import REGEX, TRIGGERS

import tiny
from tunesmith.data import load_conversations
from tunesmith.evaluate.runner import evaluate_run, run_system
from tunesmith.evaluate.systems import System, pick_shots
from tunesmith.evaluate.task import infer_task
from tunesmith.model.tuned import load_tuned

VALID = ["category: " + label for label in TRIGGERS]


def is_label_answer(answer: str) -> bool:
    return any(answer.startswith(v) for v in VALID)


def test_every_system_answers_with_a_label(tuned_run):
    run = tuned_run.run_dir
    assert json.loads((run / "eval.json").read_text())["label_constrained"] is True
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    answers = {key: [r["systems"][key]["answer"] for r in rows] for key in rows[0]["systems"]}
    assert set(answers) == {"base_zero_shot", "base_few_shot", "tuned"}
    for key, said in answers.items():
        assert all(is_label_answer(a) for a in said), (key, said)
        assert all(r["systems"][key]["label"] in TRIGGERS for r in rows)  # never "(other)"


def test_an_untrained_model_answers_with_a_label_zero_and_few_shot(chatml_tok, label_data):
    train, test = (load_conversations(path) for path in label_data)
    task = infer_task([c.reference() or "" for c in test], answer_regex=REGEX)
    assert task.label_set() is not None and task.label_set().end_of_turn is False  # the regex picks the label
    model = tiny.llama(chatml_tok)
    for shots in ([], pick_shots(train, 3, 0, task)):
        system = System("s", "s", "", model, chatml_tok, "Classify the ticket.", shots)
        kw = dict(method="generate", max_new_tokens=16, batch_size=8)
        held = run_system(system, task, test[:8], labels=task.label_set(), **kw)["answers"]
        assert all(is_label_answer(a) for a in held), held
        free = run_system(system, task, test[:8], **kw)["answers"]
        assert not any(is_label_answer(a) for a in free), free


def test_eval_free_text_setting_and_flag(tuned_run, label_data, tmp_path):
    model, tok, config = load_tuned(tuned_run.run_dir)
    config.eval.free_text = True
    report = evaluate_run(
        tuned_run.run_dir,
        data=label_data[1],
        out_dir=tmp_path / "setting",
        few_shot=0,
        n_resamples=50,
        model=model,
        tokenizer=tok,
        config=config,
    )
    assert report["label_constrained"] is False
    rows = [json.loads(line) for line in (tmp_path / "setting" / "predictions.jsonl").read_text().splitlines()]
    assert not any(is_label_answer(r["systems"]["base_zero_shot"]["answer"]) for r in rows)  # free: no label
    out = tmp_path / "flag"
    cmd = [sys.executable, "-m", "tunesmith.cli", "eval", str(tuned_run.run_dir), "--data", label_data[1]]
    cmd += ["--few-shot", "0", "--resamples", "50", "--no-base", "--free-text", "--out", str(out)]
    done = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "eval.json").read_text())["label_constrained"] is False
