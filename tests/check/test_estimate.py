"""The estimate against reality: `tunesmith check` calibrates on the bundled model, then the same config trains.

The time estimate must be within 25% of the run's measured training time, and the memory estimate within 25%
of its measured peak RSS (summary.json). Kept short: 6 steps of batch 2 on one thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def tunesmith(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "tunesmith.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_estimate_matches_the_demo_run(tmp_path):
    run = tmp_path / "run"
    overrides = ["train.max_steps=6", "train.batch_size=2", "train.threads=1", "eval.enabled=false",
                 f"output_dir={run}"]
    checked = tunesmith("check", "examples/support/config.yaml", *overrides, "--samples", "0",
                        "--json", str(tmp_path / "check.json"), "--price-per-hour", "2.0")
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert not run.exists(), "check wrote into the run folder"
    estimate = json.loads((tmp_path / "check.json").read_text())["estimate"]

    trained = tunesmith("train", "examples/support/config.yaml", *overrides)
    assert trained.returncode == 0, trained.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())

    assert estimate["steps"] == summary["steps"] == 6
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert estimate["tokens"] == metrics[-1]["tokens"]  # the seeded plan makes token counts exact
    time_error = estimate["time_s"]["train"] / summary["train_seconds"] - 1
    memory_error = estimate["memory_mb"]["peak_rss"] / summary["peak_rss_mb"] - 1
    print(f"time: estimated {estimate['time_s']['train']:.1f} s, measured {summary['train_seconds']:.1f} s "
          f"({100 * time_error:+.1f}%); peak RSS: estimated {estimate['memory_mb']['peak_rss']:.0f} MB, measured "
          f"{summary['peak_rss_mb']:.0f} MB ({100 * memory_error:+.1f}%)")
    assert abs(time_error) <= 0.25, (estimate["time_s"], summary["train_seconds"])
    assert abs(memory_error) <= 0.25, (estimate["memory_mb"], summary["peak_rss_mb"])
    assert estimate["cost"]["cost"] == pytest.approx(estimate["time_s"]["total"] / 3600 * 2.0, abs=1e-4)
