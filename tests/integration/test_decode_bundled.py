"""The decode path on the bundled SmolLM2-135M-Instruct: greedy tokens equal transformers' `generate` (batch sizes
1/3/16, with and without a LoRA adapter, rows ending at their own end of turn mid-batch), and every row's answer
alone equals its answer in a batch of 16 prompts of mixed lengths (batch invariance), as the product loads it."""

import pytest
import torch
from peft import LoraConfig, get_peft_model

import tiny
from tunesmith.data.types import Message
from tunesmith.generation import generate_ids
from tunesmith.model.load import load_model, load_tokenizer, resolve_model
from tunesmith.render import render_prompt, stop_token_ids

pytestmark = pytest.mark.integration

QUESTIONS = [
    "What is the capital of France?",
    "I was charged twice for order VC-123456, please fix it.",
    "hi",
    "Write one sentence about the sea.",
    "My parcel has not arrived and the tracking page has said 'in transit' for nine days now. What can I do?",
    "Translate 'good morning' into Spanish.",
    "Is 17 a prime number?",
    "Name three colours.",
    "How do I reset my password?",
    "Say 'yes' or 'no': is water wet?",
    "What does a support agent do? Answer in a few words.",
    "List two fruits.",
    "Give me a short greeting.",
    "What is 12 plus 30?",
    "Which is larger, a cat or an elephant?",
    "Why is the sky blue? One sentence.",
]
SYSTEM = "You are a concise assistant. Answer briefly."


@pytest.fixture(scope="module")
def bundled():
    source = resolve_model("smollm2-135m")
    tok = load_tokenizer(source)
    model = load_model(source, dtype="float32").eval()
    prompts = [render_prompt([Message("user", q)], tok, system_prompt=SYSTEM) for q in QUESTIONS]
    return model, tok, prompts


@pytest.fixture(scope="module")
def adapted():
    source = resolve_model("smollm2-135m")
    peft = get_peft_model(
        load_model(source, dtype="float32"), LoraConfig(r=8, lora_alpha=16, target_modules="all-linear")
    )
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)  # an adapter that changes some answers
    return peft.eval()


@pytest.mark.parametrize("which", ["base", "adapter"])
def test_greedy_tokens_equal_transformers_generate_on_the_bundled_model(bundled, adapted, which):
    model, tok, prompts = bundled
    m = model if which == "base" else adapted
    for size in (1, 3, 16):
        batch = prompts[:size]
        ours = generate_ids(m, tok, batch, max_new_tokens=24)
        assert ours == tiny.hf_generate(m, tok, batch, 24, stop_token_ids(tok)), f"batch of {size}"
    assert any(len(r) < 24 for r in ours) and any(len(r) == 24 for r in ours)  # rows ended mid-batch


def test_each_row_alone_equals_its_answer_in_a_batch_of_16(bundled):
    """As the product loads it (`dtype: auto`: bf16 where the CPU is fast at it), decoding in its float32 copy."""
    _, tok, prompts = bundled
    model = load_model(resolve_model("smollm2-135m")).eval()
    together = generate_ids(model, tok, prompts, max_new_tokens=24)
    alone = [generate_ids(model, tok, [p], max_new_tokens=24)[0] for p in prompts]
    assert together == alone
    assert len({len(p) for p in prompts}) > 8  # mixed lengths
