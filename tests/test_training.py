"""Invariance tests through the real recipe on a tiny model: configs that must train identically do."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import tunesmith
from tunesmith.runfolder import read_metrics

QA = [
    ("What is the capital of France?", "Paris."),
    ("Reset my password please", "category: account"),
    ("Where is my order VC-123456?", "category: shipping"),
    ("I was charged twice", "category: billing"),
    ("How are you?", "Fine, thanks."),
    ("Say hello", "Hello!"),
    ("What colour is the sky?", "Blue."),
    ("The quick brown fox?", "Jumps over the lazy dog."),
    ("Refund me", "category: billing"),
    ("Count to three", "one two three"),
    ("Help", "How can I help you today?"),
    ("Bye", "Goodbye."),
]


def write_data(path, n=16):
    with open(path, "w") as fh:
        for i in range(n):
            q, a = QA[i % len(QA)]
            fh.write(
                json.dumps(
                    {"messages": [{"role": "user", "content": f"{q} #{i}"}, {"role": "assistant", "content": a}]}
                )
                + "\n"
            )
    return str(path)


def config(tmp_path, model_dir, name, **train):
    data = write_data(tmp_path / "train.jsonl")
    return {
        "model": {"name": str(model_dir), "dtype": "float32"},
        "data": {"train": data},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "train": {
            "max_steps": 4,
            "batch_size": 8,
            "grad_accum": 1,
            "lr": 1e-2,
            "max_length": 64,
            "group_by_length": False,
            "save_every": 100,
            **train,
        },
        "eval": {"enabled": False},
        "output_dir": str(tmp_path / name),
    }


def losses(result):
    return [r["loss"] for r in read_metrics(result.run_dir / "metrics.jsonl")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_llama_dir):
    tmp = tmp_path_factory.mktemp("ref")
    return losses(tunesmith.train(config(tmp, tiny_llama_dir, "ref"), show_progress=False))


def test_pinned_loss_curve(reference):
    # tiny Llama (seed 0), LoRA r4, lr 1e-2, 16 rows, batch 8: pinned so any change to rendering,
    # masking, loss normalisation or the optimizer shows up here.
    assert reference == pytest.approx([5.987208, 5.984734, 5.961330, 5.928272], abs=1e-4)
    assert reference[-1] < reference[0]


@pytest.mark.parametrize("batch,accum,packing", [(1, 8, False), (4, 2, False), (8, 1, True), (2, 4, True)])
def test_same_curve_for_batch_layouts(tmp_path, tiny_llama_dir, reference, batch, accum, packing):
    cfg = config(tmp_path, tiny_llama_dir, "run", batch_size=batch, grad_accum=accum, packing=packing)
    assert losses(tunesmith.train(cfg, show_progress=False)) == pytest.approx(reference, abs=1e-5)


def test_fused_kernels_train_the_same_curve(tmp_path, tiny_llama_dir, reference):
    cfg = config(tmp_path, tiny_llama_dir, "fused", fuse=True)  # compiled RMSNorm (fused.py)
    assert losses(tunesmith.train(cfg, show_progress=False)) == pytest.approx(reference, abs=1e-5)


def test_gradient_checkpointing_trains_the_same_curve(tmp_path, tiny_llama_dir, reference):
    cfg = config(tmp_path, tiny_llama_dir, "ckpt", gradient_checkpointing=True)  # activations recomputed
    assert losses(tunesmith.train(cfg, show_progress=False)) == pytest.approx(reference, abs=1e-5)


def test_resume_continues_the_same_curve(tmp_path, tiny_llama_dir):
    """Stopped after a checkpoint (step 3), re-run into the same folder: identical to uninterrupted."""
    cfg = config(tmp_path, tiny_llama_dir, "full", max_steps=6, save_every=3, lr=1e-2)
    cfg["lora"]["dropout"] = 0.1  # RNG state must be restored too
    full = losses(tunesmith.train(cfg, show_progress=False))
    cut = dict(cfg, output_dir=str(tmp_path / "cut"))
    first = tunesmith.train(cut, show_progress=False)
    # simulate a crash after step 3: drop the final artifacts and everything after the step-3 checkpoint
    run = first.run_dir
    for name in ("summary.json",):
        (run / name).unlink()
    ckpts = sorted((run / "checkpoints").iterdir())
    assert [c.name for c in ckpts] == ["step-000003", "step-000006"]
    import shutil

    shutil.rmtree(ckpts[-1])
    resumed = tunesmith.train(cut, show_progress=False)
    assert losses(resumed) == pytest.approx(full, abs=1e-6)
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]


def test_rerunning_a_finished_run_changes_nothing_and_more_steps_go_on(tmp_path, tiny_llama_dir):
    """The same command again leaves a finished run as it is (it used to resume at the last step and overwrite
    summary.json with a zero-second, no-throughput record); a higher max_steps trains on from its checkpoint."""
    cfg = config(tmp_path, tiny_llama_dir, "again", max_steps=2, save_every=1)
    first = tunesmith.train(cfg, show_progress=False)
    summary = (first.run_dir / "summary.json").read_bytes()
    again = tunesmith.train(cfg, show_progress=False)
    assert (first.run_dir / "summary.json").read_bytes() == summary and again.summary == first.summary
    assert [r["step"] for r in read_metrics(first.run_dir / "metrics.jsonl")] == [1, 2]
    more = tunesmith.train({**cfg, "train": {**cfg["train"], "max_steps": 3}}, show_progress=False)
    assert more.summary["steps"] == 3 and more.summary["tokens_per_s"] > 0
    assert [r["step"] for r in read_metrics(first.run_dir / "metrics.jsonl")] == [1, 2, 3]


def test_sigterm_saves_a_checkpoint_and_rerun_resumes(tmp_path, tiny_llama_dir):
    cfg = config(tmp_path, tiny_llama_dir, "sig", max_steps=300, save_every=1000, lr=1e-3)
    cfg["train"]["keep_checkpoints"] = 1
    path = tmp_path / "cfg.json"
    import yaml

    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, TUNESMITH_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "tunesmith.cli", "train", str(path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "sig" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 5):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err  # stopped, checkpoint saved: resume later (2 is bad input)
    assert "stopped by SIGTERM" in err
    step = len(read_metrics(metrics))
    assert 5 <= step < 300
    assert (tmp_path / "sig" / "checkpoints" / f"step-{step:06d}" / "state.json").is_file()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert [r["step"] for r in read_metrics(metrics)] == list(range(1, 301))


def test_adapter_reloads_in_peft_with_identical_logits(tmp_path, tiny_llama_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tunesmith.model.tuned import load_tuned

    result = tunesmith.train(config(tmp_path, tiny_llama_dir, "run", max_steps=2), show_progress=False)
    ours, _, _ = load_tuned(result.run_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    theirs = PeftModel.from_pretrained(base, result.run_dir / "adapter").eval()
    x = torch.tensor([[1, 5, 9, 20, 33, 2]])
    with torch.no_grad():
        a, b = ours(input_ids=x).logits, theirs(input_ids=x).logits
        plain = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)(input_ids=x).logits
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, plain, atol=1e-4)  # the adapter changed something


@pytest.mark.parametrize("method", ["dora", "full"])
def test_other_methods_train(tmp_path, tiny_llama_dir, method):
    result = tunesmith.train(
        dict(config(tmp_path, tiny_llama_dir, method, max_steps=3), method=method), show_progress=False
    )
    folder = "model" if method == "full" else "adapter"
    assert (result.run_dir / folder / "config.json").is_file() or (
        result.run_dir / folder / "adapter_config.json"
    ).is_file()
    assert losses(result)[-1] < losses(result)[0]


def test_gpt2_style_base_model_trains(tmp_path, tiny_gpt2_dir):
    result = tunesmith.train(config(tmp_path, tiny_gpt2_dir, "g", max_steps=2), show_progress=False)
    assert len(losses(result)) == 2


@pytest.mark.parametrize(
    "name,expected",
    [
        ("constant", [1e-2, 1e-2, 1e-2, 1e-2]),
        ("linear", [1e-2, 7.5e-3, 5e-3, 2.5e-3]),
        ("cosine", [1e-2, 8.5355e-3, 5e-3, 1.4645e-3]),
    ],
)
def test_lr_scheduler(tmp_path, tiny_llama_dir, name, expected):
    cfg = config(tmp_path, tiny_llama_dir, name, lr_scheduler=name)
    lrs = [r["lr"] for r in read_metrics(tunesmith.train(cfg, show_progress=False).run_dir / "metrics.jsonl")]
    assert lrs == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("eval_every,passes", [(2, 1), (3, 2)])
def test_the_after_training_loss_is_the_last_periodic_one_when_nothing_changed(
    tmp_path, tiny_llama_dir, monkeypatch, eval_every, passes
):
    """When train.eval_every divides the run's length, the last periodic held-out loss is the after-training one:
    computed once (the base model's is the other pass); otherwise the weights moved on and it is computed again."""
    from tunesmith.evaluate import heldout

    calls = []
    real = heldout.token_stats
    monkeypatch.setattr(heldout, "token_stats", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    cfg = config(tmp_path, tiny_llama_dir, "run", eval_every=eval_every)
    cfg["data"]["eval_fraction"] = 0.25
    cfg["eval"] = {"enabled": True, "report": False, "max_samples": 2, "max_new_tokens": 2}
    result = tunesmith.train(cfg, show_progress=False)
    periodic = [r["eval_loss"] for r in read_metrics(result.run_dir / "metrics.jsonl") if "eval_loss" in r]
    assert len(calls) == passes
    assert len(periodic) == 4 // eval_every
    if passes == 1:
        assert result.summary["after"]["eval_loss"] == periodic[-1]
