"""`data.template`: the named chat templates render and mask as goldens say, a template the vocabulary cannot
carry or a broken file is a config error, and the choice travels with the trained model."""

import json

import pytest
from transformers import PreTrainedTokenizerFast

import tiny
import tunesmith
from test_render import conv, view
from tunesmith.data.types import Message
from tunesmith.errors import ConfigError, RunError
from tunesmith.model.tuned import load_tuned
from tunesmith.render import LLAMA3_TEMPLATE, render, render_prompt, stop_token_ids, use_template

QA = conv(("user", "What is 2+2?", None), ("assistant", "4", None))


def llama3_tokenizer() -> PreTrainedTokenizerFast:
    specials = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    return PreTrainedTokenizerFast(
        tokenizer_object=tiny._bpe(specials), bos_token="<|begin_of_text|>", eos_token="<|eot_id|>"
    )


def test_auto_keeps_the_models_own_or_says_it_is_plain():
    chat, base = tiny.chatml_tokenizer(), tiny.base_tokenizer()
    assert use_template(chat, "auto") == "the model's own" and chat.chat_template == tiny.CHATML
    assert use_template(base, "auto") == "plain (the model has no chat template)" and base.chat_template is None


def test_chatml_golden_replaces_the_models_template():
    tok = tiny.chatml_tokenizer()  # its own template inserts a default system prompt; chatml does not
    assert use_template(tok, "chatml") == "chatml (data.template)"
    r = render(QA, tok, max_length=512)
    assert view(tok, r) == "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n[[4<|im_end|>]]\n"
    assert tok.decode(render_prompt([Message("user", "What is 2+2?")], tok)) == (
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_llama3_golden_trains_the_answer_and_its_eot():
    tok = llama3_tokenizer()
    use_template(tok, "llama3")
    assert tok.chat_template == LLAMA3_TEMPLATE
    r = render(QA, tok, max_length=512, system_prompt="Be brief.")
    assert view(tok, r) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n[[4<|eot_id|>]]"
    )
    assert tok.convert_tokens_to_ids("<|eot_id|>") in stop_token_ids(tok)


@pytest.mark.parametrize("name,missing", [("chatml", "<|im_start|>, <|im_end|>"), ("llama3", "<|start_header_id|>")])
def test_a_template_whose_tokens_the_vocabulary_lacks_is_refused(name, missing):
    with pytest.raises(ConfigError) as e:
        use_template(tiny.base_tokenizer(), name)
    assert e.value.field == "data.template" and missing in str(e.value)


def test_plain_is_explicit_on_a_model_that_has_a_template():
    tok = tiny.chatml_tokenizer()
    use_template(tok, "plain")
    r = render(QA, tok, max_length=512)
    assert view(tok, r) == "<|im_start|>### User:\nWhat is 2+2?\n\n### Assistant:\n[[4<|im_end|>]]\n\n"


def test_a_template_file_renders_and_masks(tmp_path):
    path = tmp_path / "qa.jinja"
    path.write_text(
        "{% for m in messages %}{% if m['role'] == 'user' %}Q: {{ m['content'] }}\n"
        "{% elif m['role'] == 'assistant' %}A: {{ m['content'] }}{{ eos_token }}\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}A: {% endif %}"
    )
    tok = tiny.base_tokenizer()
    assert use_template(tok, str(path)) == f"{path} (data.template)"
    assert view(tok, render(QA, tok, max_length=512)) == "Q: What is 2+2?\nA: [[4<|endoftext|>]]\n"


@pytest.mark.parametrize(
    "text,says",
    [
        (None, "no such file"),
        ("{% for m in messages %}{{ m['content'] }", "does not render"),
        ("{% for m in messages %}{{ m['role'] }}{% endfor %}", "leaves out the messages' content"),
    ],
)
def test_a_bad_template_file_is_a_config_error_naming_it(tmp_path, text, says):
    path = tmp_path / "t.jinja"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError) as e:
        use_template(tiny.base_tokenizer(), str(path))
    assert e.value.field == "data.template" and str(e.value.origin) == str(path) and says in str(e.value)


def _config(tmp_path, model_dir, template: str, steps: int = 2) -> dict:
    data = tiny.say_words(tmp_path / "train.jsonl", 16)
    return {
        "model": {"name": str(model_dir), "dtype": "float32"},
        "data": {"train": data, "template": template},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "train": {"max_steps": steps, "batch_size": 8, "lr": 1e-2, "max_length": 64, "epochs": 1},
        "eval": {"enabled": False},
        "output_dir": str(tmp_path / "run"),
    }


def test_the_chosen_template_travels_with_the_trained_model(tmp_path, tiny_gpt2_dir):
    """A base model trained with a template file (transformers renders with trim_blocks: a newline right after a
    block tag is dropped, hence `{{ '\\n' }}`): the adapter's tokenizer carries it, so generate,
    serve and exports render as training did; a re-run with another template is refused, not mixed."""
    path = tmp_path / "qa.jinja"
    path.write_text(
        "{% for m in messages %}{{ m['role'] }}:\n{{ m['content'] }}{% if m['role'] == 'assistant' %}"
        "{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}assistant:\n{% endif %}"
    )
    result = tunesmith.train(_config(tmp_path, tiny_gpt2_dir, str(path)), show_progress=False)
    _, tokenizer, config = load_tuned(result.run_dir)
    assert tokenizer.chat_template == path.read_text() and config.data.template == str(path)
    prompt = tokenizer.decode(render_prompt([Message("user", "Say hello")], tokenizer))
    assert prompt.endswith("user:\nSay hello\nassistant:\n")
    with pytest.raises(RunError, match="data.template"):
        tunesmith.train(_config(tmp_path, tiny_gpt2_dir, "plain", steps=3), show_progress=False)


def test_the_cli_names_the_template_setting_when_the_vocabulary_cannot_carry_it(tmp_path, tiny_gpt2_dir):
    """`tunesmith check` on a base model with data.template=llama3: one error line naming the setting, exit 2."""
    import tiny

    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"prompt": "Say hi", "completion": "hi"}) + "\n")
    done = tiny.cli("check", str(data), "--model", str(tiny_gpt2_dir), "data.template=llama3")
    assert done.returncode == 2
    assert "field 'data.template': 'llama3' needs the tokens <|start_header_id|>" in done.stderr
    assert "Traceback" not in done.stderr
