"""Divergence (issue 14): a diverged step stops the run before the optimizer changes anything, nothing diverged
is ever kept (every checkpoint and the final weights are loaded and checked), and a re-run at a lower
`train.lr` resumes from the last good checkpoint."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import tunesmith
from test_training import config, losses
from tunesmith.config import TrainSpec, dump_config, load_config
from tunesmith.errors import RunError
from tunesmith.runfolder import read_metrics
from tunesmith.training.checkpoint import LoopState
from tunesmith.training.loop import Diverged, Guard, LoopHooks, train_loop, weight_norm
from tunesmith.training.setup import open_run_dir

# --- the guard's rule on its own ---


def test_a_loss_explodes_only_over_both_bounds():
    guard = Guard(vocab_size=400)  # ln 400 = 5.99: a random tiny model starts about there
    for step, loss in enumerate([5.99, 6.02, 5.97], 1):
        guard.check(step, loss, 0.1)
    assert guard.problem(17.0) is None  # under 3x the early median (5.99): a noisy step, not a divergence
    assert "exploded" in guard.problem(18.5)
    pretrained = Guard(vocab_size=49152)  # ln V = 10.8
    pretrained.check(1, 1.0, 1.0)
    assert pretrained.problem(3.5) is None  # 3.5x the early loss, but better than a uniform guess
    assert "exploded" in pretrained.problem(11.0)
    assert pretrained.problem(float("nan")) == "not finite"
    assert pretrained.problem(1.0, float("inf")) == "not finite"
    assert pretrained.problem(1.0, 999.0) is None and "gradient norm" in pretrained.problem(1.0, 1001.0)


def test_the_reference_is_the_median_of_the_early_steps():
    guard = Guard()
    for step, loss in enumerate([4.0, 0.5, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 0.01, 0.01], 1):
        guard.check(step, loss, 1.0)  # an odd easy batch early does not lower it; later steps do not count
    assert guard.problem(11.9) is None and guard.problem(12.1) is not None
    guard.check(11, 0.0, 0.0)  # a step without labels (loss 0): not a figure
    assert len(guard.losses) == 8


# normal runs the guard must let pass: the pinned tiny curves, and measured SmolLM2-135M LoRA runs at lr 3e-3
# (batch 1 and 8: the noisiest per-step losses; tests/divergence_curves.json). At most 35% of the loss bound,
# 0.25% of the gradient-norm bound and 0.2% of the weight-norm bound were used by those two runs.
NORMAL_RUNS = {
    "tiny llama, LoRA lr 1e-2": ([5.987208, 5.984734, 5.961330, 5.928272], [0.106, 0.116, 0.249, 0.153], 400),
    "tiny llama, full lr 1e-2": (
        [5.987, 5.996, 5.846, 5.591, 5.283, 5.086, 4.784, 4.496, 4.244, 3.992, 3.761, 3.547, 3.305, 3.234, 3.13],
        [1.223, 1.278, 1.634, 1.354, 2.67, 1.246, 1.155, 2.136, 1.136, 1.096, 0.969, 1.277, 1.075, 1.098, 0.891],
        400,
    ),
    "tiny llama, LoRA lr 3e-2": (
        [5.987, 5.996, 5.983, 5.916, 5.884, 6.02, 5.846, 5.829, 5.809, 5.868, 5.825, 5.793, 5.769, 5.799, 5.805],
        [0.106, 0.093, 0.173, 0.164, 0.155, 0.802, 0.226, 0.356, 0.582, 0.612, 0.376, 0.305, 0.298, 0.201, 0.248],
        400,
    ),
    **{
        name: (run["loss"], run["grad_norm"], run["vocab_size"])
        for name, run in json.loads((Path(__file__).parent / "divergence_curves.json").read_text())["runs"].items()
    },
}
# measured diverging SmolLM2-135M LoRA runs (first steps; the guard must stop each at the step given)
DIVERGING_RUNS = {
    "lr 1e-1": ([3.988, 8.678, 27.94], [1.367, 60.57, 187488.0], 3),
    "lr 1": ([3.988, 20.68], [1.367, 1022.0], 2),
    "lr 1e4": ([3.988, 29.94], [1.367, math.nan], 2),
}


@pytest.mark.parametrize("name", NORMAL_RUNS)
def test_normal_runs_never_trip_the_guard(name):
    curve, norms, vocab = NORMAL_RUNS[name]
    guard = Guard(vocab)
    for step, (loss, norm) in enumerate(zip(curve, norms), 1):
        guard.check(step, loss, norm)


@pytest.mark.parametrize("name", DIVERGING_RUNS)
def test_diverging_runs_are_stopped(name):
    curve, norms, stopped_at = DIVERGING_RUNS[name]
    guard = Guard(49152)
    with pytest.raises(Diverged, match=f"step {stopped_at} "):
        for step, (loss, norm) in enumerate(zip(curve, norms), 1):
            guard.check(step, loss, norm)


# --- the loop: a diverged step changes nothing, and nothing diverged is handed to `save` ---


def _toy(explode_at: int, *, steps: int = 6, save_every: int = 1):
    """A linear model trained by the real loop; from step `explode_at` its loss (and gradient) is scaled 1e6x."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 4)
    batch = {"input_ids": torch.zeros(1, 3, dtype=torch.long), "labels": torch.ones(1, 3, dtype=torch.long)}
    x = torch.randn(8, 4)
    taken = []

    def loss_fn(m, b):
        scale = 1e6 if len(taken) + 1 >= explode_at and torch.is_grad_enabled() else 1.0
        return scale * m(x).pow(2).sum(), 2

    def step_hook(record):
        taken.append(record["step"])

    saved = {}

    def save(state):
        saved[state.step] = {n: p.detach().clone() for n, p in model.named_parameters()}

    t = TrainSpec(lr=1e-2, save_every=save_every)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    hooks = LoopHooks(plan=lambda e: [batch] * 100, total_steps=steps, log=step_hook, save=save, loss=loss_fn)
    return model, opt, sched, t, hooks, saved


def test_a_diverged_step_stops_before_the_optimizer_and_is_not_saved():
    model, opt, sched, t, hooks, saved = _toy(explode_at=4)
    with pytest.raises(Diverged, match="diverged at step 4"):
        train_loop(model, opt, sched, t, hooks, LoopState())
    assert sorted(saved) == [1, 2, 3]  # every step before, each saved after its check
    after = dict(model.named_parameters())
    for name, value in saved[3].items():  # the diverged step's gradient never reached the weights
        assert torch.equal(after[name].detach(), value)


def test_weights_are_checked_before_they_are_saved():
    model, opt, sched, t, hooks, saved = _toy(explode_at=99, steps=3)
    opt.param_groups[0]["lr"] = math.inf  # a finite step (loss, gradient) whose update leaves no finite weight
    with pytest.raises(Diverged, match="step 1: its updated weights are not finite"):
        train_loop(model, opt, sched, t, hooks, LoopState())
    assert not saved
    model, opt, sched, t, hooks, saved = _toy(explode_at=99, steps=3)
    start = weight_norm(list(model.parameters()))
    opt.param_groups[0]["lr"] = 1e4  # Adam moves every weight by about lr: 1e4, on weights of norm ~1
    with pytest.raises(Diverged, match=r"step 1: its weights' norm .* is over 1000x"):
        train_loop(model, opt, sched, t, hooks, LoopState())
    assert not saved and weight_norm(list(model.parameters())) > 1000 * start


# --- through the recipe: nothing diverged is kept, a lower rate resumes from the last good checkpoint ---


def _weights_ok(folder: Path, bound: float) -> None:
    """Every weights file under `folder` (a checkpoint's trainable weights, a final model) finite and small."""
    files = sorted(folder.glob("step-*/trainable.safetensors")) or sorted(folder.glob("*.safetensors"))
    assert files
    for f in files:
        for name, w in load_file(str(f)).items():
            assert torch.isfinite(w).all() and float(w.abs().max()) < bound, (f, name)


def test_divergence_keeps_the_good_checkpoints_and_a_lower_lr_resumes(tmp_path, tiny_llama_dir):
    def cfg(name, lr, steps):
        c = config(tmp_path, tiny_llama_dir, name, max_steps=steps, lr=lr, save_every=1, lr_scheduler="constant")
        c["method"] = "full"
        c["train"].update(keep_checkpoints=100, warmup_ratio=0.0)
        return c

    # what the re-run must equal: 3 steps at 1e-2, then on to 8 at 5e-3 (a rate change on resume, no divergence)
    tunesmith.train(cfg("ref", 1e-2, 3), show_progress=False)
    reference = tunesmith.train(cfg("ref", 5e-3, 8), show_progress=False)

    run = tmp_path / "run"
    tunesmith.train(cfg("run", 1e-2, 3), show_progress=False)
    with pytest.raises(Diverged, match="step 4.*last good checkpoint is step-000003") as err:
        tunesmith.train(cfg("run", 10.0, 8), show_progress=False)  # full fine-tune at lr 10: loss ~1000 at once
    assert "lower train.lr" in str(err.value)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [f"step-{i:06d}" for i in (1, 2, 3)]
    _weights_ok(run / "checkpoints", bound=2.0)  # tiny Llama's weights are ~0.02, its norms 1: nothing exploded

    resumed = tunesmith.train(cfg("run", 5e-3, 8), show_progress=False)
    assert losses(resumed) == losses(reference)  # bit-exact: the diverged attempt left nothing behind
    assert [r["lr"] for r in read_metrics(run / "metrics.jsonl")] == [1e-2] * 3 + [5e-3] * 5
    assert losses(resumed)[-1] < losses(resumed)[0]
    _weights_ok(run / "checkpoints", bound=2.0)
    _weights_ok(run / "model", bound=2.0)
    for a, b in zip(
        sorted((run / "model").glob("*.safetensors")), sorted((tmp_path / "ref" / "model").glob("*.safetensors"))
    ):
        wa, wb = load_file(str(a)), load_file(str(b))
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_one_diverged_step_exits_non_zero_and_saves_nothing(tmp_path, tiny_llama_dir):
    """The issue's case: `max_steps=1` at lr 1e4 used to exit 0 with garbage in the adapter."""
    cfg = config(tmp_path, tiny_llama_dir, "one", max_steps=1, lr=1e4)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, TUNESMITH_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1", COLUMNS="200")
    done = subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", "train", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert "training diverged at step 1" in done.stderr and "no checkpoint holds its weights" in done.stderr
    run = tmp_path / "one"
    assert not list(run.rglob("*.safetensors"))  # no checkpoint, no adapter
    assert not (run / "summary.json").exists() and not (run / "adapter").exists()


def test_train_lr_may_change_on_resume_but_not_to_or_from_auto(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "x"}\n')

    def cfg(lr, **train):
        return load_config(
            {
                "model": "m",
                "data": {"train": str(data)},
                "train": {"lr": lr, **train},
                "output_dir": str(tmp_path / "r"),
            }
        )

    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.yaml").write_text(dump_config(cfg(1e-3)))
    assert open_run_dir(cfg(1e-4, save_every=7, eval_every=3, keep_checkpoints=1), None)[0] == tmp_path / "r"
    with pytest.raises(RunError, match="'train.lr' differs"):
        open_run_dir(cfg("auto"), None)
    with pytest.raises(RunError, match="'train.batch_size' differs"):  # what is trained on may not change
        open_run_dir(cfg(1e-4, batch_size=3), None)
    (tmp_path / "r" / "config.yaml").write_text(dump_config(cfg("auto")))
    with pytest.raises(RunError, match="'train.lr' differs"):
        open_run_dir(cfg(1e-4), None)
