"""QLoRA (`model.quantize: 4bit`) through the real recipe: NF4 frozen weights from bitsandbytes (its CPU
backend here, CUDA on a GPU), LoRA in fp32 on top, the adapter saved for the unquantized base."""

import json

import bitsandbytes  # noqa: F401  (a test dependency: a missing install fails here, it never skips)
import pytest
import torch

import tiny
import tunesmith
from tunesmith.config import LoraSpec
from tunesmith.errors import ModelError
from tunesmith.model.adapters import apply_method, is_quantized
from tunesmith.model.load import ModelSource, load_model, quantization_config
from tunesmith.runfolder import read_metrics


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny.save_model_folder(tmp_path_factory.mktemp("tiny-llama-64"), "llama", hidden=64)


def test_4bit_load_gives_nf4_linear_layers_and_lora_on_them(model_dir):
    from bitsandbytes.nn import Linear4bit
    from peft.tuners.lora.bnb import Linear4bit as LoraLinear4bit

    model = load_model(ModelSource("tiny", model_dir), dtype="bfloat16", quantize="4bit")
    assert is_quantized(model)
    q = model.model.layers[0].self_attn.q_proj
    assert isinstance(q, Linear4bit) and q.weight.quant_type == "nf4" and q.compute_dtype == torch.bfloat16
    peft_model = apply_method(model, "lora", LoraSpec(r=4, alpha=8))
    wrapped = peft_model.base_model.model.model.layers[0].self_attn.q_proj
    assert isinstance(wrapped, LoraLinear4bit)  # peft's bitsandbytes layer, not tunesmith's fused nn.Linear one
    trainable = {p.dtype for p in peft_model.parameters() if p.requires_grad}
    assert trainable == {torch.float32}
    assert not is_quantized(load_model(ModelSource("tiny", model_dir), dtype="float32"))


def test_missing_bitsandbytes_is_a_clear_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a)
    )
    with pytest.raises(ModelError, match=r"model.quantize.*pip install 'tunesmith\[qlora\]'"):
        quantization_config("4bit", torch.bfloat16)


def _run(tmp_path, model_dir, name, **model):
    rows = [
        {"messages": [{"role": "user", "content": f"Say hello #{i}"}, {"role": "assistant", "content": "Hello!"}]}
        for i in range(16)
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = {
        "model": {"name": str(model_dir), **model},
        "data": {"train": str(tmp_path / "train.jsonl")},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "train": {
            "max_steps": 12,
            "batch_size": 8,
            "lr": 5e-3,
            "lr_scheduler": "constant",
            "warmup_ratio": 0,
            "max_length": 64,
            "save_every": 6,
        },
        "eval": {"enabled": False},
        "output_dir": str(tmp_path / name),
    }
    result = tunesmith.train(cfg, show_progress=False)
    return result, [r["loss"] for r in read_metrics(result.run_dir / "metrics.jsonl")]


def test_qlora_run_tracks_lora_saves_and_reloads(tmp_path, model_dir):
    result, curve = _run(tmp_path, model_dir, "qlora", quantize="4bit")
    _, reference = _run(tmp_path, model_dir, "lora", dtype="float32")
    # NF4 weights change this random model's logits little: QLoRA follows the fp32 LoRA curve, and learns
    assert len(curve) == 12 and curve[-1] < curve[0] - 0.7, curve
    assert max(abs(a - b) for a, b in zip(curve, reference)) < 0.1, (curve, reference)
    assert result.summary["device"] == "cpu"

    from bitsandbytes.nn import Linear4bit

    from tunesmith.model.tuned import load_tuned

    served, tok, _ = load_tuned(result.run_dir)  # as the run trained it: 4-bit base + adapter
    assert isinstance(served.base_model.model.model.layers[0].mlp.up_proj.base_layer, Linear4bit)
    full, _, _ = load_tuned(result.run_dir, dtype="float32", device="cpu")  # for export: unquantized base
    assert type(full.base_model.model.model.layers[0].mlp.up_proj.base_layer) is torch.nn.Linear
    from tunesmith.data.types import Message
    from tunesmith.render import render_prompt

    ids = torch.tensor([render_prompt([Message("user", "Say hello #3")], tok, system_prompt=None)])
    with torch.no_grad():
        a, b = served(input_ids=ids).logits[0, -1].float(), full(input_ids=ids).logits[0, -1].float()
    # the adapter does the same job on the full-precision base: same next token, logits near
    assert int(a.argmax()) == int(b.argmax())
    assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.95
