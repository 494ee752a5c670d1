"""The `tunesmith` command: one small function per verb. Errors print one line and exit 2."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from tunesmith.errors import TunesmithError

console = Console()
err_console = Console(stderr=True)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", datefmt="[%X]",
                        handlers=[RichHandler(console=err_console, show_path=False)])
    logging.getLogger("tunesmith").setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("transformers", "peft", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def cmd_train(args: argparse.Namespace) -> int:
    """Fine-tune the model a config describes; print the run folder and held-out metrics before vs after."""
    from tunesmith.training.recipe import train

    result = train(args.config, args.overrides, resume=True if args.resume else None)
    s = result.summary
    table = Table(title="held-out evaluation", show_edge=False)
    table.add_column("metric")
    table.add_column("base model", justify="right")
    table.add_column("tuned", justify="right")
    before, after = s.get("before") or {}, s.get("after") or {}
    for key, label in (("eval_loss", "loss"), ("accuracy", "task accuracy (exact match)")):
        if key in before or key in after:
            table.add_row(label, _fmt(before.get(key)), _fmt(after.get(key)))
    if before or after:
        console.print(table)
    console.print(f"steps {s.get('steps')}  tokens {s.get('tokens')}  {_fmt(s.get('tokens_per_s'), 1)} tok/s  "
                  f"{_fmt(s.get('train_seconds'), 1)} s  peak RSS {_fmt(s.get('peak_rss_mb'), 0)} MB")
    console.print(f"run folder: [bold]{result.run_dir}[/bold]")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Answer one prompt with a tuned run (chat template applied exactly as in training)."""
    from tunesmith.data.types import Message
    from tunesmith.generation import generate_answers
    from tunesmith.runfolder import load_tuned

    model, tokenizer, config = load_tuned(args.run_dir)
    system = args.system if args.system is not None else config.data.system_prompt
    answers = generate_answers(model, tokenizer, [[Message("user", p)] for p in args.prompt], system_prompt=system,
                               max_new_tokens=args.max_new_tokens, batch_size=len(args.prompt))
    for answer in answers:
        console.print(answer, markup=False, highlight=False)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    """Interactive chat with a tuned run; answers stream as they are generated. Empty line or Ctrl-D quits."""
    from tunesmith.data.types import Message
    from tunesmith.generation import stream_answer
    from tunesmith.runfolder import load_tuned

    model, tokenizer, config = load_tuned(args.run_dir)
    system = args.system if args.system is not None else config.data.system_prompt
    history: list[Message] = []
    console.print("[dim]chatting with the tuned model; empty line or Ctrl-D to quit, /reset to forget[/dim]")
    while True:
        try:
            line = input("you> ")
        except EOFError:
            break
        if not line.strip():
            break
        if line.strip() == "/reset":
            history = []
            continue
        history.append(Message("user", line))
        console.print("model> ", end="")
        parts = []
        for piece in stream_answer(model, tokenizer, history, system_prompt=system,
                                   max_new_tokens=args.max_new_tokens, temperature=args.temperature):
            parts.append(piece)
            console.print(piece, end="", markup=False, highlight=False)
        console.print()
        history.append(Message("assistant", "".join(parts).strip()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunesmith", description="Fine-tune a causal language model on your "
                                     "examples: check, train, evaluate, try.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="verb", required=True)

    p = sub.add_parser("train", help=cmd_train.__doc__, description=cmd_train.__doc__)
    p.add_argument("config", help="YAML config (see examples/support/config.yaml)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. train.max_steps=20")
    p.add_argument("--resume", action="store_true", help="require an existing run to resume (re-running into "
                   "the same output_dir resumes anyway)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", help=cmd_generate.__doc__, description=cmd_generate.__doc__)
    p.add_argument("run_dir")
    p.add_argument("--prompt", action="append", required=True, help="user message (repeat for several)")
    p.add_argument("--system", default=None, help="system prompt (default: the one the run was trained with)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("chat", help=cmd_chat.__doc__, description=cmd_chat.__doc__)
    p.add_argument("run_dir")
    p.add_argument("--system", default=None, help="system prompt (default: the one the run was trained with)")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.set_defaults(func=cmd_chat)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except TunesmithError as e:
        err_console.print(f"[bold red]error:[/bold red] {escape(str(e))}", highlight=False, soft_wrap=True)
        return e.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
