"""The real CLI, end to end, on the bundled SmolLM2-135M-Instruct and the shipped example data."""

import json
import os
from pathlib import Path

import pytest

from tiny import cli

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def tunesmith(*args, env, timeout=900):
    return cli(*args, env=env, timeout=timeout)


def test_demo_config_trains_evaluates_and_generates(tmp_path):
    env = dict(os.environ)  # the session's model cache (conftest)
    run = tmp_path / "run"
    held_out = (ROOT / "examples/support/eval.jsonl").read_text().splitlines(keepends=True)
    few = tmp_path / "eval.jsonl"  # 12 held-out rows: the before/after loss over all 80 took 15 s of the test
    few.write_text("".join(held_out[:12]))
    done = tunesmith(
        "train",
        "examples/support/config.yaml",
        f"data.eval={few}",
        "train.max_steps=3",
        "train.batch_size=4",
        "eval.max_samples=4",
        "eval.max_new_tokens=12",
        f"output_dir={run}",
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert str(run) in done.stdout and "task accuracy" in done.stdout
    # what a user sees besides progress: tunesmith's own lines, no third-party warnings or notices
    noise = [line for line in done.stderr.splitlines() if "Warning" in line or "WARNING" in line]
    assert not noise, noise
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["before"]["samples"] == 4
    assert summary["after"]["eval_loss"] < summary["before"]["eval_loss"]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert {"step", "loss", "lr", "tokens", "tokens_per_s"} <= set(metrics[0])
    for f in (
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "adapter/tokenizer.json",
        "config.yaml",
        "checkpoints/step-000003/trainable.safetensors",
    ):
        assert (run / f).is_file(), f
    gen = tunesmith(
        "generate", str(run), "--prompt", "I was charged twice for order VC-123456.", "--max-new-tokens", "12", env=env
    )
    assert gen.returncode == 0, gen.stderr[-3000:]
    assert gen.stdout.strip()
    assert "Warning" not in gen.stderr and "WARNING" not in gen.stderr, gen.stderr
