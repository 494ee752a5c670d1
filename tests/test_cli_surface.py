"""The CLI's own surface: `--version`, and help text for every argument of every verb, defaults shown."""

from __future__ import annotations

import argparse

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
