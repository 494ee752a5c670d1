"""SIGINT (Ctrl-C) and SIGTERM through the real CLI: the step in progress finishes, a checkpoint is saved and the
exit code is 3 (stopped, resume later; 2 stays bad input); re-running resumes bit-exactly, with the losses and
the final adapter of an uninterrupted run. A second Ctrl-C aborts at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from test_training import config
from tunesmith.runfolder import read_json, read_metrics
from tunesmith.training.fit import StopFlag

pytestmark = pytest.mark.integration

STEPS = 200


def _command(tmp_path: Path, model_dir, name: str) -> list[str]:
    cfg = config(tmp_path, model_dir, name, max_steps=STEPS, save_every=1000, lr=1e-3, threads=1)
    cfg["lora"]["dropout"] = 0.1  # the RNG state must be restored too
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return [sys.executable, "-m", "tunesmith.cli", "train", str(path)]


def _env(tmp_path: Path) -> dict:
    return dict(os.environ, TUNESMITH_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1", COLUMNS="200")


def _curve(run: Path) -> list[tuple]:
    return [(r["step"], r["loss"], r["lr"], r["grad_norm"]) for r in read_metrics(run / "metrics.jsonl")]


def _adapter(run: Path) -> dict:
    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_llama_dir) -> Path:
    tmp = tmp_path_factory.mktemp("whole")
    done = subprocess.run(_command(tmp, tiny_llama_dir, "whole"), env=_env(tmp), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return tmp / "whole"


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_checkpoints_exits_3_and_the_rerun_resumes_exactly(tmp_path, tiny_llama_dir, uninterrupted, sig):
    cmd, env, run = _command(tmp_path, tiny_llama_dir, "run"), _env(tmp_path), tmp_path / "run"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and len(read_metrics(metrics)) < 5:
        time.sleep(0.02)  # keyed on progress (5 steps logged), not on the clock
    assert proc.poll() is None, "the run ended before it could be signalled"
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err
    assert f"stopped by {sig} at step" in err and "re-run to resume" in err
    step = len(read_metrics(metrics))
    assert 5 <= step < STEPS  # the step in progress was finished, then it stopped
    assert [p.name for p in (run / "checkpoints").iterdir()] == [f"step-{step:06d}"]
    assert not (run / "adapter").exists() and not (run / "summary.json").exists()

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert _curve(run) == _curve(uninterrupted)  # bit-exact: losses, rates and gradient norms
    mine, whole = _adapter(run), _adapter(uninterrupted)
    assert mine.keys() == whole.keys() and all((mine[k] == whole[k]).all() for k in mine)


def test_a_second_ctrl_c_aborts_at_once_and_the_handlers_are_put_back():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with StopFlag() as stop:
        signal.raise_signal(signal.SIGTERM)
        assert stop.set and stop.name == "SIGTERM"
        signal.raise_signal(signal.SIGTERM)  # a second SIGTERM: still stopping after the step
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # a second signal that is Ctrl-C: abort now
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    with StopFlag() as stop:
        signal.raise_signal(signal.SIGINT)
        assert stop.set and stop.name == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)


def test_ctrl_c_during_the_search_stops_with_exit_3_and_the_rerun_finishes(tmp_path, tiny_llama_dir):
    from test_search import auto_config

    cfg = auto_config(tmp_path, tiny_llama_dir, "auto", rows=400, lr_candidates=[1e-5, 1e-2, 30.0], threads=1)
    path = tmp_path / "auto.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd, env = [sys.executable, "-m", "tunesmith.cli", "train", str(path)], _env(tmp_path)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    search = tmp_path / "auto" / "search.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:  # once the first trial has finished its first rung
        if search.is_file() and any(t["evals"] for t in read_json(search)["trials"]):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the search ended before it could be signalled"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err
    assert "stopped by SIGINT during search trial" in err
    assert read_json(search)["chosen"] is None
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    record = read_json(search)
    assert record["chosen"] is not None and (tmp_path / "auto" / "summary.json").is_file()
    assert {t["lr"]: t["status"] for t in record["trials"]}[30.0] == "pruned"
