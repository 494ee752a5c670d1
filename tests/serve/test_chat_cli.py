"""`tunesmith chat`: the interactive terminal chat streams the tuned model's answers, turn after turn."""

import builtins

from tinyruns import ANSWERS

from tunesmith.cli import main


def test_chat_streams_answers_with_history(tiny_runs, monkeypatch, capsys):
    lines = iter(["Where is my order VC-123456?", "/reset", "Say hello", ""])
    monkeypatch.setattr(builtins, "input", lambda prompt="": next(lines))
    assert main(["chat", str(tiny_runs["hello"]), "--max-new-tokens", "24"]) == 0
    out = capsys.readouterr().out
    assert out.count(ANSWERS["hello"]) == 2
