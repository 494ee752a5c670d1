"""Data parallelism through real torchrun (gloo, CPU): 2 processes x batch 4 train exactly like 1 x batch 8."""

import os
import subprocess
import sys

import pytest
import yaml

from test_training import config
from tunesmith.training.metrics import read_metrics

pytestmark = pytest.mark.integration


def run(tmp_path, cfg, nproc):
    path = tmp_path / f"cfg{nproc}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, OMP_NUM_THREADS="1", TUNESMITH_CACHE=str(tmp_path / "cache"))
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] \
        if nproc > 1 else [sys.executable]
    done = subprocess.run([*launcher, "-m", "tunesmith.cli", "train", str(path)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [r["loss"] for r in read_metrics(tmp_path / cfg["output_dir"] / "metrics.jsonl")], done


def test_two_ranks_match_one(tmp_path, tiny_llama_dir):
    one = config(tmp_path, tiny_llama_dir, "one", batch_size=8)
    two = config(tmp_path, tiny_llama_dir, "two", batch_size=4)
    one["output_dir"], two["output_dir"] = "one", "two"
    losses1, _ = run(tmp_path, one, 1)
    losses2, done = run(tmp_path, two, 2)
    assert len(losses1) == 4
    assert losses2 == pytest.approx(losses1, abs=1e-5)
    assert (tmp_path / "two" / "adapter" / "adapter_model.safetensors").is_file()
