"""kill -9 through the real CLI, again and again in one run: at steps drawn at random (seeded), inside
checkpoint writes and inside the final adapter write. Each kill is keyed on progress (logged steps, a write's
temporary folder appearing), never on the clock. After the last re-run the run is bit-exactly the uninterrupted
one (every logged loss, rate and gradient norm, and the final adapter), and nothing temporary is left.

`TUNESMITH_KILLS=N` sets the number of kills in the run (default 4, alternately at a step and inside a checkpoint
write; e.g. 40 for the long mode) and `TUNESMITH_KILL_SEED` the seed of the steps they land at."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_signals import _adapter, _curve, _env

from test_training import config

pytestmark = pytest.mark.integration

KILLS = int(os.environ.get("TUNESMITH_KILLS", "4"))
SEED = int(os.environ.get("TUNESMITH_KILL_SEED", "0"))
SAVE_EVERY = 3
STEPS = 8 * KILLS + 20  # room for every kill's progress, and for the steps each kill throws away
TIMEOUT = 300


def _command(tmp_path: Path, model_dir, name: str) -> list[str]:
    import sys

    import yaml

    cfg = config(tmp_path, model_dir, name, max_steps=STEPS, save_every=SAVE_EVERY, lr=1e-3, threads=1)
    cfg["lora"]["dropout"] = 0.1  # dropout draws random numbers: the RNG state must resume too
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return [sys.executable, "-m", "tunesmith.cli", "train", str(path)]


def _logged(run: Path) -> int:
    """Steps logged so far (a half-written last line does not count)."""
    try:
        lines = (run / "metrics.jsonl").read_bytes().split(b"\n")
    except FileNotFoundError:
        return 0
    return len(lines) - 1  # complete lines end in a newline


def _temporaries(run: Path) -> list[Path]:
    found = []
    for folder in (run, run / "checkpoints"):
        if folder.is_dir():
            found += [p for p in folder.iterdir() if p.name.startswith((".tmp-", ".old-"))]
    return found


def _reached(run: Path, step: int):
    return lambda: _logged(run) >= step


def _writing(run: Path, step: int):
    """Once `step` is logged: while a checkpoint is being written (its temporary folder exists)."""
    ckpts = run / "checkpoints"
    return lambda: _logged(run) >= step and ckpts.is_dir() and any(ckpts.glob(".tmp-*"))


def _kill_when(proc: subprocess.Popen, ready) -> bool:
    """SIGKILL `proc` as soon as `ready()` holds; False when the process ended first."""
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        if proc.poll() is not None:
            return False
    proc.kill()
    raise AssertionError("the run neither reached the kill point nor ended")


def test_repeated_kill_9_resumes_bit_exactly(tmp_path, tiny_llama_dir):
    reference = tmp_path / "whole"
    done = subprocess.run(
        _command(tmp_path, tiny_llama_dir, "whole"), env=_env(tmp_path), capture_output=True, timeout=600
    )
    assert done.returncode == 0, done.stderr.decode()

    rng = random.Random(SEED)
    cmd, env, run = _command(tmp_path, tiny_llama_dir, "run"), _env(tmp_path), tmp_path / "run"
    landed = {"step": 0, "checkpoint write": 0, "final write": 0}
    for k in range(KILLS):
        start = _logged(run)
        target = min(start + rng.randint(1, 2 * SAVE_EVERY), STEPS - 2)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if k % 2 == 0:  # at a step drawn at random
            assert _kill_when(proc, _reached(run, target)), proc.stderr.read().decode()
            landed["step"] += 1
        else:  # inside the first checkpoint write after that step
            assert _kill_when(proc, _writing(run, target)), proc.stderr.read().decode()
            landed["checkpoint write" if any((run / "checkpoints").glob(".tmp-*")) else "step"] += 1
        proc.stderr.close()
        assert not (run / "summary.json").exists(), "a kill landed after the run had finished"

    # the last run: killed inside its final adapter write, if it can be caught there, then run to the end
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if _kill_when(proc, lambda: any(run.glob(".tmp-adapter*"))):
        landed["final write"] += 1
    finished = subprocess.run(cmd, env=env, capture_output=True, timeout=600)
    assert finished.returncode == 0, finished.stderr.decode()

    print("kills landed:", landed)
    assert sum(landed.values()) >= KILLS and landed["checkpoint write"] >= KILLS // 4, landed
    assert _curve(run) == _curve(reference)  # bit-exact: no step repeated or missing, the same numbers
    mine, whole = _adapter(run), _adapter(reference)
    assert mine.keys() == whole.keys() and all((mine[k] == whole[k]).all() for k in mine)
    assert _temporaries(run) == []  # what the killed writers left was removed at the next start
