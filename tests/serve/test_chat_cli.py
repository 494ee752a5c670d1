"""`tunesmith chat`: the interactive terminal chat streams the tuned model's answers, turn after turn; slash
commands are handled, never sent to the model; an empty line does not quit, Ctrl-D does. Driven through a real
pseudo-terminal too (readline line editing on)."""

import builtins
import os
import pty
import select
import subprocess
import sys
import time

from tinyruns import ANSWERS

from tunesmith.cli import main


def fake_input(monkeypatch, lines):
    feed = iter(lines)

    def read(prompt=""):
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr(builtins, "input", read)


def test_chat_streams_answers_and_handles_commands(tiny_runs, monkeypatch, capsys):
    fake_input(
        monkeypatch,
        ["Where is my order VC-123456?", "", "/help", "/reset", "/system", "/nope", "Say hello", "/quit", "never sent"],
    )
    assert main(["chat", str(tiny_runs["hello"]), "--max-new-tokens", "24"]) == 0
    out = capsys.readouterr().out
    assert out.count(ANSWERS["hello"]) == 2  # two questions answered; the empty line did not quit
    assert "/system [TEXT]" in out  # /help listed the commands
    assert "conversation cleared (1 exchange forgotten)" in out
    assert "system prompt: (the model's default)" in out
    assert "unknown command /nope" in out
    assert out.count("model> ") == 2  # commands never reached the model; /quit ended before "never sent"


def test_system_command_sets_the_prompt(tiny_runs, monkeypatch, capsys):
    fake_input(monkeypatch, ["/system Answer in French.", "/system"])
    assert main(["chat", str(tiny_runs["hello"]), "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert "system prompt set; conversation cleared" in out and "system prompt: Answer in French." in out


def _read_until(fd, needle: bytes, timeout: float = 120) -> bytes:
    seen, end = b"", time.monotonic() + timeout
    while needle not in seen and time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    assert needle in seen, seen.decode(errors="replace")[-2000:]
    return seen


def test_chat_in_a_pseudo_terminal(tiny_runs, tmp_path):
    parent, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunesmith.cli", "chat", str(tiny_runs["hello"]), "--max-new-tokens", "24"],
        stdin=child,
        stdout=child,
        stderr=child,
        env={**os.environ, "TERM": "dumb", "NO_COLOR": "1"},
        cwd=tmp_path,
    )
    os.close(child)
    try:
        _read_until(parent, b"you> ")
        os.write(parent, b"/help\r")
        _read_until(parent, b"/reset")
        os.write(parent, b"Say helo\x7fo\r")  # a typo fixed with backspace: readline edits the line
        answered = _read_until(parent, ANSWERS["hello"].encode())
        if not answered.rstrip().endswith(b"you>"):
            _read_until(parent, b"you> ")
        os.write(parent, b"\x04")  # Ctrl-D
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        os.close(parent)
