"""The GPU path on a real CUDA device: `pytest -m gpu` (skipped, with that hint, where there is no GPU).

Each test compares the GPU run with what the CPU suite already pins: the same loss curve (within bf16
rounding), packed samples kept apart, exact resume (with the GPU's dropout RNG), QLoRA learning.
"""

import json

import pytest
import torch
import torch.nn.functional as F

import tiny
import tunesmith
from tunesmith.model import attention
from tunesmith.runfolder import read_metrics

pytestmark = pytest.mark.gpu


def _config(tmp_path, model_dir, name, *, device="cuda", dtype="auto", **extra):
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Where is my order VC-{i:06d}?"},
                {"role": "assistant", "content": "category: shipping" if i % 2 else "category: billing"},
            ]
        }
        for i in range(32)
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    train = {
        "max_steps": 6,
        "batch_size": 8,
        "lr": 5e-3,
        "lr_scheduler": "constant",
        "warmup_ratio": 0,
        "max_length": 64,
        "save_every": 3,
        **extra.pop("train", {}),
    }
    return {
        "model": {"name": str(model_dir), "device": device, "dtype": dtype, **extra.pop("model", {})},
        "data": {"train": str(tmp_path / "train.jsonl"), "eval_fraction": 0.25},
        "lora": {"r": 8, "alpha": 16, "dropout": extra.pop("dropout", 0.0)},
        "train": train,
        "eval": {"max_samples": 4, "max_new_tokens": 4, "report": False},
        "output_dir": str(tmp_path / name),
    }


def _losses(result):
    return [r["loss"] for r in read_metrics(result.run_dir / "metrics.jsonl")]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny.save_model_folder(tmp_path_factory.mktemp("tiny-llama-64"), "llama", hidden=64)


def test_cuda_run_matches_the_cpu_curve(tmp_path, model_dir):
    gpu = tunesmith.train(_config(tmp_path, model_dir, "gpu", dtype="float32"), show_progress=False)
    cpu = tunesmith.train(_config(tmp_path, model_dir, "cpu", device="cpu", dtype="float32"), show_progress=False)
    assert gpu.summary["device"].startswith("cuda") and gpu.summary["peak_gpu_mb"] > 0
    assert _losses(gpu) == pytest.approx(_losses(cpu), abs=2e-3)
    assert gpu.after["eval_loss"] == pytest.approx(cpu.after["eval_loss"], abs=2e-3)  # eval and generation ran


def test_bf16_packed_run_trains(tmp_path, model_dir):
    bf16 = tunesmith.train(_config(tmp_path, model_dir, "bf16"), show_progress=False)  # dtype auto: bf16 on GPUs
    fp32 = tunesmith.train(_config(tmp_path, model_dir, "fp32", dtype="float32"), show_progress=False)
    a, b = _losses(bf16), _losses(fp32)
    assert a[-1] < a[0] and max(abs(x - y) for x, y in zip(a, b)) < 0.05, (a, b)


def test_resume_on_gpu_continues_the_same_curve(tmp_path, model_dir):
    import shutil

    full = _losses(tunesmith.train(_config(tmp_path, model_dir, "full", dropout=0.1), show_progress=False))
    cut = _config(tmp_path, model_dir, "cut", dropout=0.1)
    run = tunesmith.train(cut, show_progress=False).run_dir
    (run / "summary.json").unlink()
    shutil.rmtree(sorted((run / "checkpoints").iterdir())[-1])
    # 1e-4, not the CPU suite's 1e-6: some CUDA backward kernels accumulate in a varying order
    assert _losses(tunesmith.train(cut, show_progress=False)) == pytest.approx(full, abs=1e-4)


def test_packed_attention_on_gpu_matches_per_sample_sdpa():
    lengths = [9, 3, 70, 1, 6]
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, n, sum(lengths), 64, generator=g).cuda().bfloat16().requires_grad_() for n in (8, 2, 2))

    class Module(torch.nn.Module):
        is_causal = True
        num_key_value_groups = 4

    positions = torch.cat([torch.arange(n) for n in lengths])[None].cuda()
    ids = torch.cat([torch.full((n,), i) for i, n in enumerate(lengths)]).cuda()
    mask = (ids[:, None] == ids[None, :]) & torch.ones(len(ids), len(ids), dtype=torch.bool).cuda().tril()
    with torch.enable_grad():
        out, _ = attention.BlockedAttention()(
            Module(), q, k, v, mask[None, None], scaling=0.125, position_ids=positions
        )
    bounds = [sum(lengths[:i]) for i in range(len(lengths) + 1)]
    ref = torch.cat(
        [
            F.scaled_dot_product_attention(
                q[:, :, a:e], k[:, :, a:e], v[:, :, a:e], is_causal=True, scale=0.125, enable_gqa=True
            ).transpose(1, 2)
            for a, e in zip(bounds[:-1], bounds[1:])
        ],
        1,
    )
    assert (out.float() - ref.float()).abs().max() < 2e-2


def test_qlora_on_gpu_learns_as_on_the_cpu(tmp_path, model_dir):
    """bitsandbytes' CUDA and CPU backends quantize to the same NF4 weights: the curves agree, and fall."""
    args = dict(model={"quantize": "4bit"}, train={"max_steps": 12})
    result = tunesmith.train(_config(tmp_path, model_dir, "gpu", **args), show_progress=False)
    cpu = _losses(tunesmith.train(_config(tmp_path, model_dir, "cpu", device="cpu", **args), show_progress=False))
    curve = _losses(result)
    assert min(curve[-3:]) < curve[0] - 0.2, curve
    assert max(abs(a - b) for a, b in zip(curve, cpu)) < 0.05, (curve, cpu)
    assert result.summary["device"].startswith("cuda")
