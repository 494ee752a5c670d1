"""`tunesmith check` end to end through the real CLI, and its HTML report in a real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chromium import HEADLESS
from tunesmith.check import load, render_html, run_check

pytestmark = pytest.mark.integration


def chat(user: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


QUESTIONS = [
    "Where is my parcel?",
    "I was charged twice.",
    "How do I reset my password?",
    "Can I return shoes?",
    "Does the lamp need batteries?",
    "My app crashes at login.",
    "Is the kettle cordless?",
    "Refund for order 1234 please.",
    "The tracking page is blank.",
    "Change the email on my account.",
    "What size is the blue jacket?",
    "The box arrived damaged.",
    "Send the invoice again.",
    "The screen stays black.",
]
LABELS = [
    "shipping",
    "billing",
    "account",
    "returns",
    "product",
    "technical",
    "product",
    "billing",
    "shipping",
    "account",
    "product",
    "returns",
    "billing",
    "technical",
]


def dataset(folder: Path, model: Path, *, duplicate: bool = False) -> Path:
    rows = [chat(q, f"category: {label}") for q, label in zip(QUESTIONS, LABELS)]
    if duplicate:
        rows.append(rows[2])  # train.jsonl:1
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[2:]))
    (folder / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    config = folder / "config.yaml"
    config.write_text(
        f"model: {str(model)!r}\ndata:\n  train: train.jsonl\n  eval: eval.jsonl\n"
        "train: {batch_size: 2, max_length: 128}\neval: {answer_regex: 'category: (\\w+)'}\n"
        "output_dir: out\n"
    )
    return config


def tunesmith(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "NO_COLOR": "1",
        "COLUMNS": "120",
        "TUNESMITH_CACHE": str(cwd / "cache"),
    }
    return subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_check_end_to_end(tmp_path, tiny_llama_dir):
    dataset(tmp_path, tiny_llama_dir)
    done = tunesmith(
        tmp_path,
        "check",
        "config.yaml",
        "--json",
        "report.json",
        "--html",
        "report.html",
        "--samples",
        "1",
        "--ids",
        "--price-per-hour",
        "3",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 errors, 0 warnings: ok" in done.stdout and "error:" not in done.stderr
    assert re.search(r"<\|im_end\|>\[2\]", done.stdout), "token ids are shown in the sample"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.yaml",
        "eval.jsonl",
        "report.html",
        "report.json",
        "train.jsonl",
    ]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["summary"] == {"error": 0, "warning": 0, "info": 1}
    estimate = report["estimate"]
    assert (
        estimate["calibrated"] and estimate["steps"] == 18 and estimate["rows"] == 12
    )  # epochs: auto, 3 without a budget
    assert estimate["time_s"]["train"] > 0 and estimate["memory_mb"]["peak_rss"] > estimate["memory_mb"]["weights"]
    cal = estimate["calibration"]  # a forward pass alone is measured too (what a selection evaluation costs)
    assert 0 < cal["forward_seconds_per_1k_tokens"] < cal["seconds_per_1k_tokens"]
    assert estimate["cost"]["price_per_hour"] == 3
    assert report["label_balance"]["counts"]["product"] == 3
    assert len(report["samples"]) == 1 and report["contract"]["kept"] == 12

    # a warning: exit 0, or 1 with --strict; the data-file form of the command
    dataset(tmp_path, tiny_llama_dir, duplicate=True)
    for strict, code in ((False, 0), (True, 1)):
        done = tunesmith(
            tmp_path,
            "check",
            "train.jsonl",
            "--model",
            str(tiny_llama_dir),
            "--no-calibrate",
            *(["--strict"] if strict else []),
        )
        assert done.returncode == code, done.stdout + done.stderr
        assert "warning: train.jsonl:13: exact duplicate of train.jsonl:1\n" in done.stdout


def test_report_paths(tmp_path, tiny_llama_dir):
    """A report goes into a folder made for it; a folder given as the report path fails before the check runs."""
    dataset(tmp_path, tiny_llama_dir)
    done = tunesmith(tmp_path, "check", "config.yaml", "--no-calibrate", "--json", "reports/today/check.json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((tmp_path / "reports/today/check.json").read_text())["summary"]["error"] == 0
    assert [p.name for p in (tmp_path / "reports/today").iterdir()] == ["check.json"]  # no temporary left
    done = tunesmith(tmp_path, "check", "config.yaml", "--no-calibrate", "--html", "reports")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: reports: is a folder; give a file path for the report"
    assert "token lengths" not in done.stdout  # refused before the check, not after it


def chromium() -> str:
    """The Chromium binary, installed from Debian when missing (the test needs it, so it gets it)."""
    path = shutil.which("chromium")
    if path is None:
        subprocess.run(
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium",
            shell=True,
            check=True,
            timeout=600,
        )
        path = shutil.which("chromium")
    assert path, "chromium could not be installed"
    return path


def test_html_report_renders_in_chromium(tmp_path, tiny_llama_dir, monkeypatch):
    dataset(tmp_path, tiny_llama_dir)
    monkeypatch.chdir(tmp_path)
    report = run_check(load("config.yaml"), samples=2, price_per_hour=1.0)
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    done = subprocess.run(
        [
            chromium(),
            *HEADLESS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console  # no console messages at all: no errors, no CSP violations
    dom = done.stdout
    assert 'data-ready="yes"' in dom  # the inline script ran
    hists = re.findall(r'<svg class="hist" data-split="(\w+)" data-kind="(\w+)"', dom)
    assert sorted(hists) == sorted((s, k) for s in ("train", "eval") for k in ("prompt", "completion", "total"))
    assert dom.count("<rect") >= 6 * 24 and '<svg class="balance"' in dom
    assert dom.count('<mark class="t">') >= 2 and "&lt;|im_end|&gt;</mark>" in dom  # trained tokens marked
    assert "peak_rss" in dom and "price_per_hour" in dom
