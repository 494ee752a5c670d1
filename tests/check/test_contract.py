"""The training contract on crafted tokenizers: each silent failure is caught at its record, by `check` and by
`train` (which refuses to start), and sound rows pass."""

from __future__ import annotations

import json
from pathlib import Path

import tiny
from tunesmith import cli
from tunesmith.check import load, run_check
from tunesmith.check.contract import row_findings, truncate
from tunesmith.check.view import runs, segments
from tunesmith.data.types import Conversation, Message
from tunesmith.errors import Origin
from tunesmith.render import IGNORE, Rendered, render, stop_token_ids

NO_END_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}:\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:\n{% endif %}"
)
TRAILING_SPACE_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def conv(user: str = "Where is my parcel?", answer: str = "It left today.", line: int = 1) -> Conversation:
    return Conversation(Origin("data.jsonl", line), (Message("user", user), Message("assistant", answer)))


def findings(tok, c: Conversation, **opts) -> list[str]:
    row = render(c, tok, max_length=512, **opts)
    return [f.check for f in row_findings(c, row, tok, None, set(stop_token_ids(tok)))]


def model_with_template(folder: Path, template: str) -> Path:
    tiny.save_model_folder(folder)
    tok = tiny.chatml_tokenizer()
    tok.chat_template = template
    tok.save_pretrained(folder)
    return folder


def test_sound_rows_pass(chatml_tok, base_tok):
    assert findings(chatml_tok, conv()) == []
    assert findings(base_tok, conv()) == []
    assert findings(chatml_tok, Conversation(Origin("t.jsonl", 1), text="Plain text to continue.")) == []


def test_masked_eos_is_an_error(chatml_tok):
    tok = tiny.chatml_tokenizer()
    tok.chat_template = NO_END_TEMPLATE
    assert findings(tok, conv()) == []  # render appends a trained eos after each assistant turn
    assert findings(tok, conv(), train_on_prompt=True) == ["eos_not_trained"]


def test_generation_prompt_that_tokenizes_differently_is_an_error():
    tok = tiny.chatml_tokenizer()
    tok.chat_template = TRAILING_SPACE_TEMPLATE  # "assistant: " + "Paris" trains ' Paris', infers ' ' + ...
    assert findings(tok, conv(answer="Paris")) == ["prompt_not_prefix"]


def test_double_bos_is_an_error(chatml_tok):
    bos = chatml_tok.bos_token_id
    row = render(conv(), chatml_tok, max_length=512)
    doubled = Rendered([bos] + row.input_ids, [IGNORE] + row.labels, row.origin)
    found = row_findings(conv(), doubled, chatml_tok, None, set(stop_token_ids(chatml_tok)))
    assert found[0].check == "double_bos" and "token 0" in found[0].message
    assert found[1].check == "prompt_not_prefix"  # and inference, which has one BOS, no longer matches


def test_truncate_matches_render(chatml_tok):
    c = conv(" ".join(["The quick brown fox jumps over the lazy dog."] * 6), "Yes, " * 20)
    full = render(c, chatml_tok, max_length=10**9)
    for max_length in (40, 80, 120, len(full.input_ids), 10**6):
        assert truncate(full, max_length) == render(c, chatml_tok, max_length=max_length)


def test_masked_view_covers_every_token(chatml_tok):
    row = render(conv(), chatml_tok, max_length=512)
    pieces = segments(chatml_tok, row)
    assert "".join(p["text"] for p in pieces) == chatml_tok.decode(row.input_ids)
    assert [p["trained"] for p in pieces] == [x != IGNORE for x in row.labels]
    assert [p["id"] for p in pieces] == row.input_ids
    trained = "".join(r["text"] for r in runs(pieces) if r["trained"])
    assert trained == "It left today.<|im_end|>"  # the answer and its end-of-turn token, nothing else


def write(tmp_path: Path, rows: list[dict], model: Path, extra: str = "") -> Path:
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "config.yaml"
    config.write_text(f"model: {str(model)!r}\ndata:\n  train: train.jsonl\n{extra}output_dir: out\n")
    return config


def chat(user: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def test_train_refuses_a_masked_eos(tmp_path, capsys, monkeypatch):
    model = model_with_template(tmp_path / "model", NO_END_TEMPLATE)
    config = write(
        tmp_path,
        [chat("Where is my parcel?", "On its way."), chat("Hi", "Hello!")],
        model,
        extra="  train_on_prompt: true\n",
    )
    monkeypatch.chdir(tmp_path)
    message = (
        "error: train.jsonl:1: no end-of-turn/eos token is trained in this row (looked for '<|endoftext|>', "
        "'<|im_end|>'): the model would never learn to stop"
    )
    for verb in ("check", "train"):
        assert cli.main([verb, str(config), "--no-calibrate"] if verb == "check" else [verb, str(config)]) == 2
        out = capsys.readouterr()
        errors = [line for line in (out.out + out.err).splitlines() if line.startswith("error:")]
        assert errors[0] == message, errors
    assert not (tmp_path / "out").exists()


def test_truncation_and_dropped_rows_are_counted(tmp_path, tiny_llama_dir, monkeypatch):
    long = " ".join(["The quick brown fox jumps over the lazy dog."] * 8)
    rows = [chat("Where is my parcel?", "On its way."), chat(long, "Yes."), chat("Short question?", long)]
    config = write(tmp_path, rows, tiny_llama_dir)
    monkeypatch.chdir(tmp_path)
    report = run_check(load(str(config), ["train.max_length=60"]), calibrate=False)
    by_check = {f.check: f for f in report.findings}
    assert report.exit_code() == 0 and report.exit_code(strict=True) == 1
    assert by_check["no_trained_tokens"].origin == "train.jsonl:2"
    truncated = by_check["truncated"]
    assert truncated.related == ("train.jsonl:2", "train.jsonl:3") and "2 of 3 training rows" in truncated.message
    assert report.contract["truncated"] == 2 and 0 < report.contract["lost_share"] < 1
    assert report.contract["eos_lost_to_truncation"] == 2  # both lose the end of their answer
    assert report.lengths["train"]["total"]["over_max_length"] == 2


def test_base_model_without_chat_template_is_a_warning(tmp_path, tiny_gpt2_dir, monkeypatch):
    config = write(tmp_path, [chat("Where is my parcel?", "On its way.")], tiny_gpt2_dir)
    monkeypatch.chdir(tmp_path)
    report = run_check(load(str(config)), calibrate=False)
    assert [f.check for f in report.of("warning")] == ["no_chat_template"]
    assert [f.check for f in report.of("info")] == ["pad_is_eos"]  # load_tokenizer pads with eos
