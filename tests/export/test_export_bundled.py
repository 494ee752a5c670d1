"""Exports of a real model, the bundled SmolLM2-135M-Instruct: the merge check, and the GGUF read back by llama.cpp."""

from pathlib import Path

import pytest
import torch

from tunesmith.data.types import Message
from tunesmith.export.checks import FIXED_PROBES, Probes, greedy, until_stop
from tunesmith.export.gguf_check import verify_gguf
from tunesmith.export.gguf_llama import write_gguf
from tunesmith.model.load import load_model, load_tokenizer, resolve_model
from tunesmith.render import render_prompt

pytestmark = pytest.mark.integration


@torch.no_grad()
def test_bundled_smollm2_f16_gguf_answers_like_transformers(tmp_path):
    source = resolve_model("smollm2-135m")
    model, tok = load_model(source, dtype="float32").eval(), load_tokenizer(source)
    prompts = [render_prompt([Message("user", q)], tok) for q in FIXED_PROBES]
    probes = Probes(prompts, prompts, list(FIXED_PROBES) + ["Digits 1234567 and 3.14159, café naïve ✓"])
    reference = greedy(model, prompts, 16)
    last = [model(input_ids=torch.tensor([p])).logits[0, -1] for p in prompts]
    chats = [
        ([{"role": "user", "content": q}], tok.decode(until_stop(r, tok), skip_special_tokens=True))
        for q, r in zip(FIXED_PROBES, reference)
    ]
    assert chats[0][1] == "The capital of France is Paris."
    info = write_gguf(model, tok, tmp_path / "smollm2-f16.gguf", quant="f16", name="smollm2")
    assert info["tokenizer_pre"] == "gpt-2" and info["eot"] == tok.eos_token_id == 2
    check = verify_gguf(tmp_path / "smollm2-f16.gguf", tok, probes, reference, last, chats, quant="f16", n_ctx=512)
    print(f"\nSmolLM2-135M f16 GGUF in llama.cpp: {check}")
    assert check["greedy_matching_tokens"] == [16, 16, 16] and check["chat_identical"] == "3/3"
    assert check["tokenization_identical"] == "4/4" and check["max_logit_gap_after_prompt"] < 0.5


def test_merge_check_passes_a_strong_adapter_and_catches_one_layer_left_out(tmp_path):
    """Two steps of the demo config move SmolLM2's logits by ~16 (max |logit| ~39): merged vs adapter then differ
    by ~3e-4 from fp32 rounding alone, which a fixed 1e-4 limit refused. The scale-aware limit passes it, and
    still fails a merge that leaves one projection's LoRA update out."""
    import tunesmith
    from tunesmith.export.checks import load_run_fp32, logit_tolerance, make_probes, max_gap, probe_logits
    from tunesmith.export.merge import merge_verified

    demo = Path(__file__).resolve().parents[2] / "examples/support/config.yaml"
    run_dir = tunesmith.train(
        demo, ["train.max_steps=2", "eval.enabled=false", f"output_dir={tmp_path / 'run'}"], show_progress=False
    ).run_dir
    with torch.no_grad():
        run = load_run_fp32(run_dir)
        probes = make_probes(run.config, run.tokenizer)
        reference = probe_logits(run.model, probes)
        with run.model.disable_adapter():
            assert max_gap(reference, probe_logits(run.model, probes)) > 5  # a strong adapter, as in the failure
        name, layer = next((n, m) for n, m in run.model.named_modules() if n.endswith("layers.15.mlp.down_proj"))
        delta = layer.get_delta_weight("default").clone()
        merged, report = merge_verified(run, probes)
        assert report["merged"] and 1e-4 < report["tolerance"] < 2e-3
        assert report["max_logit_gap"] <= report["tolerance"]
        merged.get_submodule(name.removeprefix("base_model.model.")).weight -= delta  # that projection unmerged
        fault = max_gap(reference, probe_logits(merged, probes))
        print(
            f"\nmerge gap {report['max_logit_gap']:.2g}, limit {report['tolerance']:.2g}, "
            f"one layer left out {fault:.2g}"
        )
        assert fault > 10 * logit_tolerance(reference)
