"""The GGUF converter on a real model: the bundled SmolLM2-135M-Instruct, read back by llama.cpp."""

import pytest
import torch

from tunesmith.data.types import Message
from tunesmith.export.checks import FIXED_PROBES, Probes, greedy, until_stop
from tunesmith.export.gguf_check import verify_gguf
from tunesmith.export.gguf_llama import write_gguf
from tunesmith.models import load_model, load_tokenizer, resolve_model
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
    chats = [([{"role": "user", "content": q}], tok.decode(until_stop(r, tok), skip_special_tokens=True))
             for q, r in zip(FIXED_PROBES, reference)]
    assert chats[0][1] == "The capital of France is Paris."
    info = write_gguf(model, tok, tmp_path / "smollm2-f16.gguf", quant="f16", name="smollm2")
    assert info["tokenizer_pre"] == "gpt-2" and info["eot"] == tok.eos_token_id == 2
    check = verify_gguf(tmp_path / "smollm2-f16.gguf", tok, probes, reference, last, chats, quant="f16", n_ctx=512)
    print(f"\nSmolLM2-135M f16 GGUF in llama.cpp: {check}")
    assert check["greedy_matching_tokens"] == [16, 16, 16] and check["chat_identical"] == "3/3"
    assert check["tokenization_identical"] == "4/4" and check["max_logit_gap_after_prompt"] < 0.5
