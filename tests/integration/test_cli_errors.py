"""The real `tunesmith` CLI on bad inputs: exit code 2, one `error:` line naming where and what, nothing written.

Each case starts a subprocess (which imports torch and transformers: a few seconds each). The model is the
tiny in-process Llama from tests/tiny.py, loaded by path: no bundled model, no network.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tiny
from tunesmith.render import template_overhead

pytestmark = pytest.mark.integration

OUT = "out"  # output_dir of every config, relative to the subprocess's cwd (tmp_path)


def chat(user: str = "What is 2+2?", answer: str = "4") -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def write_config(tmp_path: Path, model, *, train: str = "train.jsonl", extra: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"model: {json.dumps(str(model))}\ndata:\n  train: {train}\n{extra}output_dir: {OUT}\n", encoding="utf-8"
    )
    return path


def run_cli(tmp_path: Path, *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "TUNESMITH_CACHE": str(tmp_path / "cache"),
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "2",
        "NO_COLOR": "1",
        "COLUMNS": "100",
    }
    return subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>" for p in folder.rglob("*")}


def train_fails(tmp_path: Path, *args: str, needles: tuple[str, ...]) -> str:
    """Run `tunesmith train ARGS` and check the failure contract; return the error line."""
    before = snapshot(tmp_path)
    result = run_cli(tmp_path, "train", *args)
    return check_failure(tmp_path, result, before, needles)


def check_failure(tmp_path: Path, result: subprocess.CompletedProcess, before: dict, needles) -> str:
    detail = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 2, detail
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, detail
    line = errors[0]
    assert line.startswith("error: "), detail
    assert "Traceback" not in result.stderr, detail
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert snapshot(tmp_path) == before, "the failed command wrote files"
    return line


# --- config problems --------------------------------------------------------------------------------


def test_missing_config_file(tmp_path):
    train_fails(tmp_path, "nope.yaml", needles=("nope.yaml", "no such config file"))
    assert not (tmp_path / OUT).exists()


def test_unknown_config_key(tmp_path, tiny_llama_dir):
    write_jsonl(tmp_path / "train.jsonl", [chat()])
    write_config(tmp_path, tiny_llama_dir, extra="train:\n  max_steps: 1\n  lrr: 1.0e-3\n")
    train_fails(tmp_path, "config.yaml", needles=("config.yaml:6", "train.lrr", "did you mean 'lr'?"))
    assert not (tmp_path / OUT).exists()


def test_unknown_override_key(tmp_path, tiny_llama_dir):
    write_jsonl(tmp_path / "train.jsonl", [chat()])
    write_config(tmp_path, tiny_llama_dir)
    train_fails(
        tmp_path,
        "config.yaml",
        "train.bach_size=2",
        needles=("override", "train.bach_size", "did you mean 'batch_size'?"),
    )
    assert not (tmp_path / OUT).exists()


def test_invalid_value_names_the_field(tmp_path, tiny_llama_dir):
    write_jsonl(tmp_path / "train.jsonl", [chat()])
    write_config(tmp_path, tiny_llama_dir, extra="train:\n  lr: -0.1\n")
    train_fails(tmp_path, "config.yaml", needles=("config.yaml:5", "train.lr", "greater than 0"))
    assert not (tmp_path / OUT).exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA GPU")
def test_gpu_asked_for_where_there_is_none(tmp_path, tiny_llama_dir):
    write_jsonl(tmp_path / "train.jsonl", [chat()])
    write_config(tmp_path, tiny_llama_dir)
    train_fails(
        tmp_path,
        "config.yaml",
        "model.device=cuda",
        needles=("model.device", "sees no CUDA GPU", "model.device=cpu or auto"),
    )
    assert not (tmp_path / OUT).exists()


@pytest.mark.parametrize(
    "override,needles",
    [
        ("model.device=gpu0", ("override", "model.device", "'auto', 'cpu', 'cuda' or 'cuda:N'")),
        ("method=full", ("quantize=4bit", "use method lora or dora")),
        ("train.distributed=fsdp", ("quantize=4bit", "use train.distributed=ddp")),
        ("train.distributed=zero3", ("train.distributed", "'ddp' or 'fsdp'")),
    ],
)
def test_device_and_quantize_values(tmp_path, tiny_llama_dir, override, needles):
    write_jsonl(tmp_path / "train.jsonl", [chat()])
    write_config(tmp_path, tiny_llama_dir)
    train_fails(tmp_path, "config.yaml", "model.quantize=4bit", override, needles=needles)
    assert not (tmp_path / OUT).exists()


# --- data problems ----------------------------------------------------------------------------------


def test_missing_train_file(tmp_path, tiny_llama_dir):
    write_config(tmp_path, tiny_llama_dir)
    train_fails(tmp_path, "config.yaml", needles=("train.jsonl", "no such file"))
    assert not (tmp_path / OUT).exists()


@pytest.mark.parametrize(
    "rows, needles",
    [
        pytest.param([chat(), chat(), '{"messages": [oops'], ("train.jsonl:3", "invalid JSON"), id="malformed-jsonl"),
        pytest.param(
            [chat(), {"question": "q", "answer": "a"}], ("train.jsonl:2", "no usable field"), id="no-usable-field"
        ),
        pytest.param(
            [{"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "yo"}]}],
            ("train.jsonl:1", "messages[1].role", "unknown role 'bot'"),
            id="unknown-role",
        ),
        pytest.param(
            [chat(), {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "x"}]}],
            ("train.jsonl:2", "messages[0].content", "expected a string"),
            id="non-string-content",
        ),
        pytest.param(
            [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "weight": 2}]}],
            ("train.jsonl:1", "messages[1].weight", "expected 0 or 1"),
            id="bad-weight",
        ),
        pytest.param(
            [chat(), chat(), chat(answer="   ")],
            ("train.jsonl:3", "messages[1].content", "assistant message is empty"),
            id="empty-assistant",
        ),
    ],
)
def test_bad_record(tmp_path, tiny_llama_dir, rows, needles):
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_config(tmp_path, tiny_llama_dir)
    train_fails(tmp_path, "config.yaml", needles=needles)
    assert not (tmp_path / OUT).exists()


def test_invalid_utf8(tmp_path, tiny_llama_dir):
    (tmp_path / "train.jsonl").write_bytes(json.dumps(chat()).encode() + b"\n" + b'{"text": "caf\xe9"}\n')
    write_config(tmp_path, tiny_llama_dir)
    train_fails(tmp_path, "config.yaml", needles=("train.jsonl:2", "invalid UTF-8"))
    assert not (tmp_path / OUT).exists()


def test_empty_file(tmp_path, tiny_llama_dir):
    (tmp_path / "train.jsonl").write_bytes(b"")
    write_config(tmp_path, tiny_llama_dir)
    train_fails(tmp_path, "config.yaml", needles=("train.jsonl", "file is empty"))
    assert not (tmp_path / OUT).exists()


def test_unsupported_extension(tmp_path, tiny_llama_dir):
    (tmp_path / "train.txt").write_text("hello\n")
    write_config(tmp_path, tiny_llama_dir, train="train.txt")
    train_fails(tmp_path, "config.yaml", needles=("train.txt", "unsupported file type '.txt'"))
    assert not (tmp_path / OUT).exists()


def test_bad_eval_file(tmp_path, tiny_llama_dir):
    write_jsonl(tmp_path / "train.jsonl", [chat(), chat()])
    write_jsonl(tmp_path / "eval.jsonl", [chat(), {"messages": [{"role": "user", "content": "only a question"}]}])
    write_config(tmp_path, tiny_llama_dir, extra="  eval: eval.jsonl\n")
    train_fails(tmp_path, "config.yaml", needles=("eval.jsonl:2", "messages"))
    assert not (tmp_path / OUT).exists()


# --- model and length problems ----------------------------------------------------------------------


def test_unknown_model_name(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [chat()])
    write_config(tmp_path, "no-such-model")
    train_fails(tmp_path, "config.yaml", needles=("unknown model 'no-such-model'",))
    assert not (tmp_path / OUT).exists()


def test_model_folder_without_config_json(tmp_path):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\0")
    write_jsonl(tmp_path / "train.jsonl", [chat()])
    write_config(tmp_path, folder)
    train_fails(tmp_path, "config.yaml", needles=(str(folder), "no config.json"))
    assert not (tmp_path / OUT).exists()


def test_max_length_below_template_overhead(tmp_path, tiny_llama_dir):
    write_jsonl(tmp_path / "train.jsonl", [chat()])
    write_config(tmp_path, tiny_llama_dir)
    line = train_fails(
        tmp_path,
        "config.yaml",
        "train.max_length=10",
        needles=("train.max_length", "10 is below the chat template's overhead", "use at least"),
    )
    overhead = template_overhead(tiny.chatml_tokenizer(), None)
    assert f"use at least {overhead + 8}" in line
    assert not (tmp_path / OUT).exists()


def test_every_row_dropped_by_truncation(tmp_path, tiny_llama_dir):
    max_length = template_overhead(tiny.chatml_tokenizer(), None) + 8  # the smallest max_length allowed
    long_question = " ".join(["The quick brown fox jumps over the lazy dog."] * 20)
    write_jsonl(tmp_path / "train.jsonl", [chat(long_question, "Yes."), chat(long_question, "No.")])
    write_config(tmp_path, tiny_llama_dir)
    train_fails(
        tmp_path,
        "config.yaml",
        f"train.max_length={max_length}",
        needles=("train.jsonl", f"max_length={max_length}", "train.jsonl:1"),
    )
    assert not (tmp_path / OUT).exists()


# --- run folder problems ----------------------------------------------------------------------------


def test_existing_output_folder_that_is_not_a_run(tmp_path, tiny_llama_dir):
    write_jsonl(tmp_path / "train.jsonl", [chat()] * 4)
    write_config(tmp_path, tiny_llama_dir)
    (tmp_path / OUT).mkdir()
    (tmp_path / OUT / "notes.txt").write_text("mine\n")
    train_fails(tmp_path, "config.yaml", "train.max_steps=1", needles=(OUT, "exists and is not a tunesmith run"))
    assert sorted(p.name for p in (tmp_path / OUT).iterdir()) == ["notes.txt"]


def test_resume_without_a_run(tmp_path, tiny_llama_dir):
    write_jsonl(tmp_path / "train.jsonl", [chat()] * 4)
    write_config(tmp_path, tiny_llama_dir)
    train_fails(tmp_path, "config.yaml", "--resume", needles=(OUT, "nothing to resume"))
    assert not (tmp_path / OUT).exists()


def test_generate_on_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "somewhere").mkdir()
    before = snapshot(tmp_path)
    result = run_cli(tmp_path, "generate", "somewhere", "--prompt", "hi")
    check_failure(tmp_path, result, before, ("somewhere", "not a tunesmith run folder"))


# --- the happy path ---------------------------------------------------------------------------------


def test_tiny_run_then_generate(tmp_path, tiny_llama_dir):
    rows = [chat(f"What is {i} plus 1?", str(i + 1)) for i in range(12)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_config(tmp_path, tiny_llama_dir, extra="  eval_fraction: 0.25\n")
    result = run_cli(
        tmp_path,
        "train",
        "config.yaml",
        f"model={tiny_llama_dir}",
        "train.max_steps=2",
        "train.batch_size=2",
        "eval.max_samples=2",
        "eval.max_new_tokens=4",
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "error:" not in result.stderr
    # output to a file: plain log lines, the search table printed once on lines of its own
    assert re.search(r"^\d\d:\d\d:\d\d INFO chose lr 1e-0\d \(trial \d\)", result.stderr, re.M), result.stderr
    assert re.search(r"^└─+┴", result.stderr, re.M) and "┘" + "\n" in result.stderr

    run = tmp_path / OUT
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "summary.json",
        "checkpoints/step-000002",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "adapter/tokenizer.json",
    ):
        assert (run / name).exists(), name
    adapter = run / "adapter"
    assert (adapter / "chat_template.jinja").is_file() or "chat_template" in json.loads(
        (adapter / "tokenizer_config.json").read_text()
    )

    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert [m["step"] for m in metrics] == [1, 2]
    for m in metrics:
        for key in ("step", "loss", "lr", "tokens", "tokens_per_s"):
            assert key in m, (key, m)
        assert m["loss"] > 0 and m["tokens"] > 0 and m["tokens_per_s"] > 0

    from tunesmith.config import load_config

    saved = load_config(run / "config.yaml")
    assert saved.model.name == str(tiny_llama_dir) and saved.train.max_steps == 2 and saved.train.batch_size == 2

    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["train_rows"] == 8 and summary["eval_rows"] == 3
    assert summary["select_rows"] == 1 and summary["search"]["trials"] == 4  # lr: auto, one row to choose on
    assert summary["after"]["samples"] == 2 and "eval_loss" in summary["before"]
    assert str(run.name) in result.stdout  # the run folder is printed

    gen = run_cli(tmp_path, "generate", OUT, "--prompt", "hi", "--max-new-tokens", "4")
    assert gen.returncode == 0, f"stdout:\n{gen.stdout}\nstderr:\n{gen.stderr}"
    assert "error:" not in gen.stderr

    # sampling: reproducible by --seed; several prompts: each answer under its numbered prompt
    sample = ["generate", OUT, "--prompt", "hi", "--prompt", "What is 3 plus 1?", "--max-new-tokens", "6"]
    sample += ["--temperature", "1.5", "--top-p", "0.9", "--seed", "7"]
    first, again = run_cli(tmp_path, *sample), run_cli(tmp_path, *sample)
    assert first.returncode == 0 and first.stdout == again.stdout, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == "[1] hi" and lines[3] == "[2] What is 3 plus 1?" and lines[2] == ""
    bad = run_cli(tmp_path, "generate", OUT, "--prompt", "hi", "--top-p", "0")
    assert bad.returncode == 2 and "--top-p" in bad.stderr


def test_train_on_a_data_file_with_mapped_columns(tmp_path, tiny_llama_dir):
    """`tunesmith train qa.csv --model M` with column overrides: no config file, output in runs/qa."""
    import csv

    with open(tmp_path / "qa.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["question", "answer"])
        writer.writerows([f"What is {i} plus 1?", str(i + 1)] for i in range(12))
    before = snapshot(tmp_path)
    unmapped = run_cli(tmp_path, "train", "qa.csv", "--model", str(tiny_llama_dir))
    line = check_failure(tmp_path, unmapped, before, ("qa.csv:2", "no usable field"))
    assert line.endswith("map them: data.columns.prompt=question data.columns.completion=answer")

    result = run_cli(
        tmp_path,
        "train",
        "qa.csv",
        "--model",
        str(tiny_llama_dir),
        "data.columns.prompt=question",
        "data.columns.completion=answer",
        "data.eval_fraction=0.25",
        "train.max_steps=2",
        "train.batch_size=2",
        "eval.max_samples=2",
        "eval.max_new_tokens=4",
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    run = tmp_path / "runs" / "qa"
    assert "runs/qa" in result.stdout and (run / "adapter/adapter_model.safetensors").is_file()
    from tunesmith.config import load_config

    saved = load_config(run / "config.yaml")
    assert (saved.data.train, saved.model.name, saved.data.columns) == (
        "qa.csv",
        str(tiny_llama_dir),
        {"prompt": "question", "completion": "answer"},
    )
    summary = json.loads((run / "summary.json").read_text())
    assert summary["train_rows"] == 8 and summary["eval_rows"] == 3
    assert (
        summary["select_rows"] == 1 and summary["search"]["trials"] == 4
    )  # lr: auto, one row to choose on and "eval_loss" in summary["after"]


def test_budget_too_short_names_the_shortest(tmp_path, tiny_llama_dir):
    write_jsonl(tmp_path / "train.jsonl", [chat(f"ticket {i}", ["billing", "shipping"][i % 2]) for i in range(40)])
    write_config(tmp_path, tiny_llama_dir)
    line = train_fails(tmp_path, "config.yaml", "train.budget=1s", needles=("train.budget", "too short", "at least"))
    shortest = int(line.split("train.budget=")[-1].split("s")[0])
    assert shortest > 1


def test_unparseable_budget(tmp_path, tiny_llama_dir):
    write_jsonl(tmp_path / "train.jsonl", [chat()])
    write_config(tmp_path, tiny_llama_dir, extra="train:\n  budget: ten minutes\n")
    train_fails(tmp_path, "config.yaml", needles=("config.yaml:5", "train.budget", "90s, 10m or 1.5h"))
