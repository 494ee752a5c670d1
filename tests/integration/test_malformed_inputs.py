"""Malformed inputs through the real CLI: exit code 2, one `error:` line naming `path:line` (or the config key
and its line) and the field, and nothing written. Issue 14's outside corpus, and more of each kind.

Every case runs `tunesmith.cli.main` in-process (one import of torch for all); a handful also run as a
subprocess. Most fail before any model is loaded (config and data are checked first); the output_dir and
lora.targets cases load the tiny test model (tests/tiny.py), which takes a fraction of a second.
See tests/check/corpus for the per-record format errors (check and train alike); these are the limits, the
file kinds and the config strictness that corpus does not cover.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tunesmith import cli
from tunesmith.data.sources import MAX_LINE_BYTES
from tunesmith.yamlfile import MAX_CONFIG_BYTES

pytestmark = pytest.mark.integration

USER, ANSWER = {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}
GOOD = json.dumps({"messages": [USER, ANSWER]})
CONFIG_HEAD = "data:\n  train: data.jsonl\noutput_dir: out\n"  # extras start at line 4
FAST = "train:\n  lr: 1.0e-3\n  epochs: 1\neval:\n  enabled: false\n"  # no search, no evaluation: just the build
Setup = Callable[[Path], None]


@dataclass
class Case:
    """One malformed input: files to write, the CLI arguments (`{model}` is the tiny model folder), and what
    the error line must contain. `model_stage`: the error comes after the tokenizer/model are loaded (log
    lines may precede it)."""

    id: str
    files: dict[str, str | bytes | Setup]
    args: list[str]
    needles: tuple[str, ...]
    model_stage: bool = False
    extra: dict = field(default_factory=dict)


def text(content: str | bytes) -> Setup:
    data = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
    return lambda path: path.write_bytes(data)


def jsonl(*lines: str) -> str:
    return "".join(line + "\n" for line in lines)


def chat(user: str = "What is 2+2?", answer: str = "4") -> str:
    return json.dumps({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]})


def fifo(path: Path) -> None:
    os.mkfifo(path)


def loop(path: Path) -> None:
    os.symlink(path.name, path)


def broken_link(path: Path) -> None:
    os.symlink("nowhere-at-all", path)


def folder(path: Path) -> None:
    path.mkdir()


def parquet(**columns) -> Setup:
    return lambda path: pq.write_table(pa.table(columns), path)


def deep_parquet(path: Path) -> None:
    value: object = 1
    for _ in range(70):
        value = [value]
    pq.write_table(pa.table({"text": ["x"], "deep": [value]}), path)


def truncated_parquet(path: Path) -> None:
    pq.write_table(pa.table({"text": ["hello"] * 50}), path)
    path.write_bytes(path.read_bytes()[:-30])


def long_line(path: Path) -> None:
    with path.open("wb") as fh:
        fh.write(b'{"text": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n')
        fh.write(GOOD.encode() + b"\n")


def long_csv_field(path: Path) -> None:
    path.write_bytes(b'text\n"' + b"y" * (MAX_LINE_BYTES + 10) + b'"\n')


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def alias_bomb(levels: int = 9) -> str:
    out = 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels):
        out += f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]\n"
    return out


def data_case(id: str, name: str, content, needles: tuple[str, ...]) -> Case:
    """`tunesmith train FILE --model M`: a data file with every other setting at its default."""
    return Case(id, {name: content}, ["train", name, "--model", "{model}"], needles)


def config_case(id: str, extra: str, needles: tuple[str, ...], *overrides: str, **kw) -> Case:
    """`tunesmith train config.yaml model=M [overrides]` on a good data file; `extra` starts at line 4."""
    files: dict = {"data.jsonl": jsonl(GOOD, GOOD, GOOD), "config.yaml": CONFIG_HEAD + extra, **kw.pop("files", {})}
    return Case(id, files, ["train", "config.yaml", "model={model}", *overrides], needles, **kw)


CASES: list[Case] = [
    # --- JSONL ------------------------------------------------------------------------------------
    data_case("jsonl-deep-recursion", "d.jsonl", jsonl(GOOD, nested(100_000)), ("d.jsonl:2", "nested more than 64")),
    data_case(
        "jsonl-deep-in-field",
        "d.jsonl",
        jsonl('{"text": "hi", "meta": ' + nested(70) + "}"),
        ("d.jsonl:1", "field 'meta[0][0]", "nested more than 64"),
    ),
    data_case(
        "jsonl-lone-surrogate",
        "d.jsonl",
        jsonl(GOOD, '{"messages": [{"role": "user", "content": "a\\ud800b"}, {"role": "assistant", "content": "4"}]}'),
        ("d.jsonl:2", "field 'messages[0].content'", "lone UTF-16 surrogate"),
    ),
    data_case(
        "jsonl-lone-low-surrogate",
        "d.jsonl",
        jsonl('{"prompt": "q", "completion": "\\udc00"}'),
        ("d.jsonl:1", "field 'completion'", "surrogate"),
    ),
    data_case(
        "jsonl-surrogate-in-key",
        "d.jsonl",
        jsonl('{"text": "hi", "\\ud800": 1}'),
        ("d.jsonl:1", "field '\\ud800'", "surrogate"),
    ),
    data_case(
        "jsonl-surrogate-top-level-string", "d.jsonl", jsonl('"\\udfff"'), ("d.jsonl:1", "lone UTF-16 surrogate")
    ),
    data_case(
        "jsonl-5000-digit-int",
        "d.jsonl",
        jsonl(GOOD, '{"text": "hi", "id": ' + "7" * 5000 + "}"),
        ("d.jsonl:2", "field 'id'", "5,000 digits"),
    ),
    data_case(
        "jsonl-5000-digit-negative-weight",
        "d.jsonl",
        jsonl(
            '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": -'
            + "1" * 5000
            + "}]}"
        ),
        ("d.jsonl:1", "field 'messages[1].weight'", "5,000 digits"),
    ),
    data_case(
        "jsonl-whitespace-user",
        "d.jsonl",
        jsonl(GOOD, chat(user=" \t\n ")),
        ("d.jsonl:2", "field 'messages[0].content'", "only whitespace"),
    ),
    data_case(
        "jsonl-whitespace-user-in-chat-prompt",
        "d.jsonl",
        jsonl(json.dumps({"prompt": [{"role": "user", "content": "   "}], "completion": "4"})),
        ("d.jsonl:1", "field 'prompt[0].content'", "only whitespace"),
    ),
    data_case(
        "jsonl-whitespace-second-user",
        "d.jsonl",
        jsonl(json.dumps({"messages": [USER, ANSWER, {"role": "user", "content": "\u3000 "}, ANSWER]})),
        ("d.jsonl:1", "field 'messages[2].content'", "only whitespace"),
    ),
    data_case("jsonl-17-MiB-line", "d.jsonl", long_line, ("d.jsonl:1", "longer than 16 MiB")),
    data_case("jsonl-symlink-loop", "d.jsonl", loop, ("d.jsonl", "symlink loop")),
    data_case("jsonl-fifo", "d.jsonl", fifo, ("d.jsonl", "not a regular file (a FIFO)")),
    data_case("jsonl-directory", "d.jsonl", folder, ("d.jsonl", "is a directory")),
    data_case("jsonl-broken-symlink", "d.jsonl", broken_link, ("d.jsonl", "broken symlink", "nowhere-at-all")),
    data_case(
        "jsonl-utf16", "d.jsonl", GOOD.encode("utf-16") + b"\n", ("d.jsonl:1", "invalid UTF-8 (byte 0xff at offset 0)")
    ),
    data_case(
        "jsonl-many-keys-one-line",
        "d.jsonl",
        jsonl(json.dumps({f"k{i}": i for i in range(5000)})),
        ("d.jsonl:1", "no usable field", "and 4992 more"),
    ),
    data_case(
        "jsonl-key-with-newline",
        "d.jsonl",
        jsonl(json.dumps({"the\nquestion": "q"})),
        ("d.jsonl:1", "no usable field", "the\\nquestion"),
    ),
    data_case(
        "jsonl-huge-role",
        "d.jsonl",
        jsonl(json.dumps({"messages": [{"role": "r" * 100_000, "content": "q"}, ANSWER]})),
        ("d.jsonl:1", "field 'messages[0].role'", "unknown role"),
    ),
    # --- JSON -------------------------------------------------------------------------------------
    data_case("json-deep-recursion", "d.json", "[\n" + GOOD + ",\n" + nested(100_000) + "\n]", ("d.json:3", "nested")),
    data_case(
        "json-deep-in-record",
        "d.json",
        "[" + GOOD + ', {"text": "x", "meta": ' + nested(70) + "}]",
        ("d.json:2", "field 'meta[0]", "nested more than 64"),
    ),
    data_case(
        "json-lone-surrogate",
        "d.json",
        '[{"text": "caf\\ud83d"}]',
        ("d.json:1", "field 'text'", "lone UTF-16 surrogate"),
    ),
    data_case(
        "json-5000-digit-int",
        "d.json",
        '{"data": [' + GOOD + ', {"text": "x", "n": ' + "9" * 5000 + "}]}",
        ("d.json:2", "field 'n'", "5,000 digits"),
    ),
    data_case("json-5000-digit-document", "d.json", "1" * 5000, ("d.json", "5,000 digits")),
    data_case(
        "json-whitespace-user",
        "d.json",
        "[" + chat(user="  ") + "]",
        ("d.json:1", "field 'messages[0].content'", "only whitespace"),
    ),
    data_case("json-fifo", "d.json", fifo, ("d.json", "not a regular file (a FIFO)")),
    data_case("json-symlink-loop", "d.json", loop, ("d.json", "symlink loop")),
    data_case(
        "json-object-with-many-keys",
        "d.json",
        json.dumps({f"k{i}": i for i in range(1000)}),
        ("d.json", "an object with keys 'k0'", "and 992 more"),
    ),
    data_case("json-utf16", "d.json", ("[" + GOOD + "]").encode("utf-16"), ("d.json:1", "invalid UTF-8")),
    # --- CSV / TSV --------------------------------------------------------------------------------
    data_case(
        "csv-whitespace-prompt", "d.csv", 'prompt,completion\nq,a\n"   ",a\n', ("d.csv:3", "field 'prompt'", "empty")
    ),
    data_case("csv-17-MiB-field", "d.csv", long_csv_field, ("d.csv:2", "longer than the 16,777,216 characters")),
    data_case("csv-fifo", "d.csv", fifo, ("d.csv", "not a regular file (a FIFO)")),
    data_case("csv-symlink-loop", "d.csv", loop, ("d.csv", "symlink loop")),
    data_case("csv-utf16", "d.csv", "prompt,completion\nq,a\n".encode("utf-16"), ("d.csv:1", "invalid UTF-8")),
    data_case(
        "csv-duplicate-header-with-newline",
        "d.csv",
        '"a\nb","a\nb"\nx,y\n',
        ("d.csv:1", "names column 'a\\nb' twice"),
    ),
    data_case("tsv-whitespace-completion", "d.tsv", "prompt\tcompletion\nq\t  \n", ("d.tsv:2", "field 'completion'")),
    # --- Parquet ----------------------------------------------------------------------------------
    data_case(
        "parquet-whitespace-user",
        "d.parquet",
        parquet(
            messages=[
                [USER, ANSWER],
                [{"role": "user", "content": "  "}, ANSWER],
            ]
        ),
        ("d.parquet:2", "field 'messages[0].content'", "only whitespace"),
    ),
    data_case(
        "parquet-prompt-is-a-number",
        "d.parquet",
        parquet(prompt=[1, 2], completion=["a", "b"]),
        ("d.parquet:1", "field 'prompt'", "expected a string, got number"),
    ),
    data_case(
        "parquet-binary-completion",
        "d.parquet",
        parquet(prompt=["q"], completion=pa.array([b"a"], pa.binary())),
        ("d.parquet:1", "field 'completion'", "expected a string, got bytes"),
    ),
    data_case("parquet-too-deep", "d.parquet", deep_parquet, ("d.parquet", "not a readable Parquet file", "nested")),
    data_case("parquet-truncated", "d.parquet", truncated_parquet, ("d.parquet", "not a readable Parquet file")),
    data_case("parquet-fifo", "d.parquet", fifo, ("d.parquet", "not a regular file (a FIFO)")),
    data_case("parquet-symlink-loop", "d.parquet", loop, ("d.parquet", "symlink loop")),
    # --- config YAML ------------------------------------------------------------------------------
    config_case(
        "yaml-duplicate-top-key",
        "method: lora\nmethod: full\n",
        ("config.yaml:5", "field 'method'", "duplicate key (first given at line 4"),
    ),
    config_case(
        "yaml-duplicate-nested-key",
        "train:\n  lr: 1.0e-3\n  batch_size: 2\n  lr: 2.0e-3\n",
        ("config.yaml:7", "field 'train.lr'", "duplicate key (first given at line 5"),
    ),
    config_case(
        "yaml-duplicate-section",
        "train:\n  lr: 1.0e-3\neval:\n  enabled: false\ntrain:\n  epochs: 2\n",
        ("config.yaml:8", "field 'train'", "duplicate key"),
    ),
    config_case(
        "yaml-duplicate-column",
        "columns:\n  prompt: q\n  prompt: p\n",
        ("config.yaml:5", "field 'data.columns.prompt'", "duplicate key (first given at line 4"),
        files={
            "config.yaml": "data:\n  train: data.jsonl\n  columns:\n    prompt: q\n    prompt: p\n",
        },
    ),
    config_case(
        "yaml-batch-size-true", "train:\n  batch_size: true\n", ("config.yaml:5", "train.batch_size", "not true")
    ),
    config_case("yaml-epochs-false", "train:\n  epochs: false\n", ("config.yaml:5", "train.epochs", "not false")),
    config_case("yaml-yes-is-not-1", "eval:\n  max_samples: yes\n", ("config.yaml:5", "eval.max_samples", "not true")),
    config_case("yaml-lr-true", "train:\n  lr: true\n", ("config.yaml:5", "train.lr", "got true")),
    config_case("yaml-alpha-true", "lora:\n  alpha: true\n", ("config.yaml:5", "lora.alpha", "not true")),
    config_case(
        "yaml-lr-candidates-bool",
        "train:\n  lr_candidates: [1.0e-3, true]\n",
        ("config.yaml:5", "train.lr_candidates", "not true"),
    ),
    config_case("yaml-lr-inf", "train:\n  lr: .inf\n", ("config.yaml:5", "train.lr", "finite")),
    config_case("yaml-dropout-nan", "lora:\n  dropout: .nan\n", ("config.yaml:5", "lora.dropout", "finite")),
    config_case("yaml-budget-inf", "train:\n  budget: .inf\n", ("config.yaml:5", "train.budget")),
    config_case(
        "yaml-seed-5000-digits",
        "train:\n  seed: " + "1" * 5000 + "\n",
        ("config.yaml:5", "field 'train.seed'", "5,000 digits"),
    ),
    config_case(
        "yaml-seed-past-64-bits", "train:\n  seed: " + "9" * 30 + "\n", ("config.yaml:5", "train.seed", "too large")
    ),
    config_case(
        "yaml-bad-timestamp", "train:\n  seed: 2024-13-45\n", ("config.yaml:5", "train.seed", "month must be in 1..12")
    ),
    config_case(
        "yaml-output-dir-empty",
        "output_dir: ''\n",
        ("config.yaml:3", "field 'output_dir'", "is empty"),
        files={"config.yaml": "data:\n  train: data.jsonl\noutput_dir: ''\n"},
    ),
    config_case(
        "yaml-output-dir-blank",
        "",
        ("config.yaml:3", "field 'output_dir'", "is empty"),
        files={"config.yaml": "data:\n  train: data.jsonl\noutput_dir: '   '\n"},
    ),
    config_case(
        "yaml-train-path-empty",
        "",
        ("config.yaml:2", "field 'data.train'", "is empty"),
        files={"config.yaml": "data:\n  train: ''\n"},
    ),
    config_case(
        "yaml-output-dir-is-a-file",
        FAST,
        ("config.yaml:3", "field 'output_dir'", "'out' is a file, not a folder"),
        files={"out": "not a folder\n"},
        model_stage=True,
    ),
    config_case(
        "yaml-output-dir-below-a-file",
        FAST,
        ("config.yaml:3", "field 'output_dir'", "is below 'data.jsonl', which is a file"),
        files={"config.yaml": "data:\n  train: data.jsonl\noutput_dir: data.jsonl/run\n" + FAST},
        model_stage=True,
    ),
    config_case(
        "yaml-output-dir-symlink-loop",
        FAST,
        ("config.yaml:3", "field 'output_dir'", "symlink loop"),
        files={"out": loop},
        model_stage=True,
    ),
    config_case(
        "yaml-lora-targets-name-nothing",
        FAST + "lora:\n  targets: [q_proj, qproj]\n",
        ("config.yaml:10", "field 'lora.targets'", "'qproj' names no module", "q_proj"),
        model_stage=True,
    ),
    config_case(
        "yaml-lora-pattern-matches-nothing",
        FAST + "lora:\n  targets: '.*nothing_here'\n",
        ("config.yaml:10", "field 'lora.targets'", "not found in the base model"),
        model_stage=True,
    ),
    config_case("yaml-lora-targets-empty", "lora:\n  targets: []\n", ("config.yaml:5", "lora.targets", "at least one")),
    config_case(
        "yaml-lora-targets-bad-regex", "lora:\n  targets: '(q'\n", ("config.yaml:5", "lora.targets", "regular")
    ),
    config_case(
        "yaml-latin1",
        "",
        ("config.yaml:3", "invalid UTF-8 (byte 0xe9"),
        files={"config.yaml": text(b"data:\n  train: data.jsonl\n  system_prompt: caf\xe9\n")},
    ),
    config_case(
        "yaml-utf16",
        "",
        ("config.yaml:1", "invalid UTF-8"),
        files={"config.yaml": text(CONFIG_HEAD.encode("utf-16"))},
    ),
    config_case("yaml-alias-bomb", alias_bomb(), ("config.yaml:", "alias bomb")),
    config_case("yaml-recursive-alias", "x: &x [1, *x]\n", ("config.yaml:4", "refers to the value it is part of")),
    config_case("yaml-deep-flow", "x: " + nested(50_000) + "\n", ("config.yaml:4", "nested more than 32")),
    config_case(
        "yaml-deep-block",
        "x:\n" + "".join(" " * i + "a:\n" for i in range(1, 1200)),
        ("config.yaml:", "nested more than 32"),
    ),
    config_case("yaml-nul-character", "method: lo\x00ra\n", ("config.yaml:4", "#x0000 is not allowed")),
    config_case(
        "yaml-surrogate-escape",
        "",
        ("config.yaml:3", "field 'data.system_prompt'", "surrogate"),
        files={"config.yaml": 'data:\n  train: data.jsonl\n  system_prompt: "hi \\ud800"\n'},
    ),
    config_case("yaml-fifo", "", ("config.yaml", "not a regular file (a FIFO)"), files={"config.yaml": fifo}),
    config_case("yaml-symlink-loop", "", ("config.yaml", "symlink loop"), files={"config.yaml": loop}),
    config_case("yaml-directory", "", ("config.yaml", "is a directory"), files={"config.yaml": folder}),
    config_case(
        "yaml-too-large",
        "",
        ("config.yaml", f"at most {MAX_CONFIG_BYTES:,} bytes"),
        files={"config.yaml": CONFIG_HEAD + "# " + "x" * MAX_CONFIG_BYTES + "\n"},
    ),
    # --- overrides --------------------------------------------------------------------------------
    config_case("override-batch-size-true", "", ("override", "train.batch_size", "not true"), "train.batch_size=true"),
    config_case(
        "override-seed-5000-digits", "", ("override", "train.seed", "5,000 digits"), "train.seed=" + "3" * 5000
    ),
    config_case("override-output-dir-empty", "", ("override", "field 'output_dir'", "is empty"), "output_dir="),
    config_case(
        "override-duplicate-key",
        "",
        ("override", "data.columns.prompt", "duplicate key"),
        "data.columns={prompt: q, prompt: p}",
    ),
    config_case("override-deep", "", ("override", "field 'x'", "nested more than 32"), "x=" + nested(10_000)),
    config_case(
        "override-alias-bomb",
        "",
        ("override", "field 'x'", "alias bomb"),
        "x={" + alias_bomb().replace("\n", ", ").rstrip(", ") + "}",
    ),
    config_case("override-key-with-newline", "", ("override", "field 'train.l\\nr'", "unknown key"), "train.l\nr=1"),
    config_case("override-lr-inf", "", ("override", "train.lr", "finite"), "train.lr=.inf"),
    config_case(
        "override-lora-targets",
        FAST,
        ("override", "field 'lora.targets'", "'nope' names no module"),
        "lora.targets=[nope]",
        model_stage=True,
    ),
    config_case(
        "override-output-dir-is-a-file",
        FAST,
        ("override", "field 'output_dir'", "'data.jsonl' is a file, not a folder"),
        "output_dir=data.jsonl",
        model_stage=True,
    ),
]


def snapshot(folder: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink() or not (p.is_file() or p.is_dir()):
            out[str(p.relative_to(folder))] = "<special>"
        else:
            out[str(p.relative_to(folder))] = p.read_bytes() if p.is_file() else "<dir>"
    return out


def build(case: Case, root: Path, model: Path) -> tuple[Path, list[str]]:
    work = root / "work"
    work.mkdir(parents=True)
    for name, content in case.files.items():
        path = work / name
        if callable(content):
            content(path)
        else:
            path.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
    return work, [a.replace("{model}", str(model)) for a in case.args]


def test_corpus_covers_every_kind():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
    kinds = {c.id.split("-")[0] for c in CASES}
    assert {"jsonl", "json", "csv", "tsv", "parquet", "yaml", "override"} <= kinds


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input(case, tmp_path, tiny_llama_dir, capsys, monkeypatch):
    work, args = build(case, tmp_path, tiny_llama_dir)
    monkeypatch.chdir(work)
    monkeypatch.setenv("NO_COLOR", "1")
    before = snapshot(work)
    start = time.perf_counter()
    code = cli.main(args)
    seconds = time.perf_counter() - start
    captured = capsys.readouterr()
    detail = f"stdout:\n{captured.out}\nstderr:\n{captured.err}"
    assert "Traceback" not in captured.err, detail
    assert code == 2, detail
    lines = [line for line in captured.err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, detail
    if not case.model_stage:  # nothing but the one error line
        assert lines == errors, detail
    for needle in case.needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    assert len(errors[0]) < 600, "the error line should be short enough to read"
    assert snapshot(work) == before, "the failed command wrote files"
    assert not (work / "runs").exists()
    assert seconds < 10, f"took {seconds:.1f} s"


@pytest.mark.parametrize(
    "case_id", ["jsonl-deep-recursion", "jsonl-fifo", "csv-whitespace-prompt", "parquet-whitespace-user"]
)
def test_check_reports_the_same_error(case_id, tmp_path, tiny_llama_dir, capsys, monkeypatch):
    """`tunesmith check` (no calibration) refuses the same inputs with the same line."""
    case = next(c for c in CASES if c.id == case_id)
    work, args = build(case, tmp_path, tiny_llama_dir)
    monkeypatch.chdir(work)
    monkeypatch.setenv("NO_COLOR", "1")
    before = snapshot(work)
    code = cli.main(["check", *args[1:], "--no-calibrate"])
    captured = capsys.readouterr()
    errors = [line for line in (captured.out + captured.err).splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, captured.out + captured.err
    for needle in case.needles:
        assert needle in errors[0]
    assert snapshot(work) == before


# --- a handful through a real process --------------------------------------------------------------

IN_A_PROCESS = ["json-deep-recursion", "yaml-alias-bomb"]  # a data file and a config: each process costs seconds


def test_malformed_inputs_in_subprocesses(tmp_path, tiny_llama_dir):
    """`python -m tunesmith.cli` as a user runs it (its own recursion limit, stderr encoding, exit status):
    the processes run side by side, as each spends its time importing torch."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "80", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = []
    for n, case_id in enumerate(IN_A_PROCESS):
        case = next(c for c in CASES if c.id == case_id)
        work, args = build(case, tmp_path / str(n), tiny_llama_dir)
        process = subprocess.Popen(
            [sys.executable, "-m", "tunesmith.cli", *args],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append((case, work, snapshot(work), process))
    for case, work, before, process in started:
        out, err = process.communicate(timeout=180)
        detail = f"{case.id}\nstdout:\n{out}\nstderr:\n{err}"
        assert process.returncode == 2, detail
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), detail
        for needle in case.needles:
            assert needle in lines[0], detail
        assert snapshot(work) == before, detail
