"""The CLI's own surface: `--version`, and help text for every argument of every verb, defaults shown."""

from __future__ import annotations

import argparse
import os

import pytest

from tunesmith import __version__
from tunesmith.cli import build_parser, main


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"tunesmith {__version__}"


def _verbs(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("verb", sorted(_verbs(build_parser())))
def test_every_argument_has_help_and_shows_its_default(verb):
    p = _verbs(build_parser())[verb]
    for action in p._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{verb}: {action.dest} has no help"
    text = " ".join(p.format_help().split())
    for action in p._actions:
        shown = action.default not in (None, False, [], argparse.SUPPRESS) and action.option_strings
        if shown:
            assert f"default: {action.default}" in text or "default" in (action.help or ""), (verb, action.dest)


def test_training_progress_in_a_file_is_plain_log_lines(caplog):
    import logging

    from tunesmith.progress import TrainProgress

    bar = TrainProgress(4, start=1, every_s=0.0)  # pytest's stderr is not a terminal
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        for step in (2, 3, 4):
            bar.update({"step": step, "loss": 1.5 / step, "tokens_per_s": 100.0})
        bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("train: step 2/4, loss 0.7500, 100 tokens/s,") and "left" in lines[0]
    assert lines[-1].startswith("train: step 4/4, loss 0.3750")


BEFORE_TORCH = {  # what a user gets wrong most, refused before torch and the model libraries load (~5 s)
    "missing config": (["train", "nope.yaml"], "no such config file"),
    "unknown key": (["train", "config.yaml"], "did you mean 'lr'?"),
    "bad record": (["train", "bad.jsonl"], "bad.jsonl:2"),
    "missing data file": (["train", "gone.yaml"], "no such file"),
    "bad top-p": (["generate", "somewhere", "--prompt", "hi", "--top-p", "0"], "--top-p"),
    "bad top-p on a run": (["generate", "run", "--prompt", "hi", "--top-p", "0"], "--top-p"),
    "push of no run": (["push", "somewhere", "--repo", "org/name", "--dry-run"], "somewhere"),
    "eval of no run": (["eval", "somewhere"], "not a tunesmith run folder"),
    "generate of no run": (["generate", "somewhere", "--prompt", "hi"], "not a tunesmith run folder"),
    "chat of no run": (["chat", "somewhere"], "not a tunesmith run folder"),
    "export of no run": (["export", "somewhere", "--format", "hf", "--out", "out"], "not a tunesmith run folder"),
    "serve of no run": (["serve", "somewhere"], "not a tunesmith run folder"),
    "bad quant": (
        ["export", "run", "--format", "gguf", "--quant", "q4_0", "--out", "out"],
        "choose from f32, f16, q8_0",
    ),
    "bad max-batch": (["serve", "run", "--max-batch", "0"], "--max-batch"),
    "peft merged": (["export", "run", "--format", "peft", "--merge", "--out", "out"], "holds the adapter unmerged"),
}


@pytest.mark.parametrize("case", sorted(BEFORE_TORCH))
def test_bad_input_is_refused_before_torch_loads(tmp_path, case):
    """The error comes within a second: the command never imported torch (a fresh interpreter says so)."""
    import json
    import subprocess
    import sys

    (tmp_path / "bad.jsonl").write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]})
        + "\n{not json\n"
    )
    (tmp_path / "config.yaml").write_text("data:\n  train: bad.jsonl\ntrain:\n  lrr: 1.0e-3\n")
    (tmp_path / "gone.yaml").write_text("data:\n  train: gone.jsonl\n")
    (tmp_path / "run").mkdir()  # its config is read for eval.precision before the verb runs
    (tmp_path / "run" / "config.yaml").write_text("data:\n  train: bad.jsonl\n")
    argv, needle = BEFORE_TORCH[case]
    probe = (
        "import sys; from tunesmith.cli import main; rc = main(sys.argv[1:]); "
        "print('torch loaded' if 'torch' in sys.modules else 'no torch'); sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and needle in done.stderr, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "no torch", done.stdout


def test_a_torchrun_rank_other_than_0_names_itself_in_its_error(tmp_path):
    """Under torchrun each rank reports its own error: rank 0's line as always, the others' named by rank."""
    import subprocess
    import sys

    probe = "import sys; from tunesmith.cli import main; sys.exit(main(sys.argv[1:]))"
    for rank, start in (("0", "error: "), ("1", "[rank 1] error: ")):
        env = {**os.environ, "RANK": rank}
        done = subprocess.run(
            [sys.executable, "-c", probe, "train", "nope.yaml"], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 2 and done.stderr.startswith(start), done.stderr


def test_a_rank_of_a_multi_rank_job_leaves_without_interpreter_teardown(tmp_path):
    """A torchrun rank (WORLD_SIZE > 1) leaves at once with its exit code and flushed output, skipping the teardown in
    which gloo's threads, kept alive by DDP past the group's end, aborted or hung a rank now and then; a lone process
    leaves as usual. `python -m tunesmith.cli`, the form torchrun runs, leaves that way too."""
    import subprocess
    import sys

    probe = "import atexit; from tunesmith.cli import leave; "
    probe += "atexit.register(print, 'teardown'); print('done'); leave(3)"
    for world, printed in (("2", ["done"]), ("1", ["done", "teardown"])):
        env = {**os.environ, "WORLD_SIZE": world}
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 3 and done.stdout.split() == printed, done
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", "train", "nope.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stderr.startswith("[rank 1] error: "), done.stderr
