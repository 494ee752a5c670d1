"""The malformed-input corpus: every file gives its one expected error line, exit 2, and nothing written,
from `tunesmith check` and from `tunesmith train` alike (the same message, because train runs the same checks).

Runs the real CLI entry point in-process (one import of torch for all cases) against the tiny test model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tunesmith import cli

CORPUS = Path(__file__).parent / "corpus"
EXPECTED: dict[str, str] = yaml.safe_load((CORPUS / "expected.yaml").read_text(encoding="utf-8"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>" for p in folder.rglob("*")}


def run(capsys, args: list[str]) -> tuple[int, list[str]]:
    code = cli.main(args)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text, text
    return code, [line for line in text.splitlines() if line.startswith("error:")]


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    work = tmp_path / "corpus"
    shutil.copytree(CORPUS, work)
    monkeypatch.chdir(work)
    monkeypatch.setenv("NO_COLOR", "1")
    return work


def test_corpus_is_large_enough():
    assert len(EXPECTED) >= 40
    assert {p.name for p in CORPUS.iterdir() if p.name[:2].isdigit()} == set(EXPECTED)
    kinds = {Path(name).suffix for name in EXPECTED}
    assert {".jsonl", ".json", ".csv", ".tsv", ".parquet", ".yaml", ".txt"} <= kinds


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_malformed_input(case, corpus, capsys, tiny_llama_dir):
    expected = EXPECTED[case]
    if case.endswith(".yaml"):
        model = [] if "model" in case else [f"model={tiny_llama_dir}"]
        check_args, train_args = ["check", case, *model], ["train", case, *model]
    else:  # the data-file form of both commands
        check_args, train_args = (
            ["check", case, "--model", str(tiny_llama_dir)],
            ["train", case, "--model", str(tiny_llama_dir)],
        )
    before = snapshot(corpus)

    code, errors = run(capsys, check_args)
    assert (code, errors) == (2, [expected])
    assert snapshot(corpus) == before, "check wrote files"

    code, errors = run(capsys, train_args)
    assert (code, errors) == (2, [expected])
    assert snapshot(corpus) == before, "train wrote files"
