"""The `tunesmith` command: one small function per verb. Errors print one line and exit 2; training stopped by
SIGINT/SIGTERM (checkpoint saved, re-run to resume) exits 3; a second Ctrl-C, or one outside training, 130."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from tunesmith.errors import Stopped, TunesmithError
from tunesmith.export.formats import FORMATS
from tunesmith.progress import file_wide, quiet_libraries
from tunesmith.serve import MAX_BATCH

console = file_wide(Console())
err_console = file_wide(Console(stderr=True))


def _rank() -> str:
    """`[rank N] ` in a `torchrun` process other than rank 0 (each rank reports its own error), else nothing."""
    rank = os.environ.get("RANK", "0").strip()
    return "" if rank in ("", "0") else f"\\[rank {escape(rank)}] "


def _setup_logging(verbose: bool) -> None:
    """Rich log lines on a terminal; plain, unwrapped `time level message` lines in a file (CI, nohup). Under
    `torchrun` only rank 0 tells its progress; the other ranks say only what goes wrong (warnings and errors)."""
    if _rank():
        line = f"%(asctime)s [rank {os.environ['RANK'].strip()}] %(levelname)s %(message)s"
        logging.basicConfig(level=logging.WARNING, format=line, datefmt="%H:%M:%S")
        logging.getLogger("tunesmith").setLevel(logging.WARNING)
        quiet_libraries(verbose)
        return
    if err_console.is_terminal:
        handler: logging.Handler = RichHandler(console=err_console, show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s", datefmt="[%X]"))
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("tunesmith").setLevel(logging.DEBUG if verbose else logging.INFO)
    quiet_libraries(verbose)


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def cmd_check(args: argparse.Namespace) -> int:
    """Check data, model and config before training: format, training contract, duplicates, leakage, PII,
    token lengths, masked-token samples, and a time/memory/cost estimate. Exit 0 clean, 1 warnings with
    --strict, 2 errors."""
    from tunesmith.check import load, render_html, run_check
    from tunesmith.check.terminal import print_report

    outputs = [Path(p) for p in (args.json, args.html) if p]
    for path in outputs:  # before the (long) check, not after it
        if path.is_dir():
            raise TunesmithError("is a folder; give a file path for the report", origin=path)
    config = load(args.target, args.overrides, args.model)
    report = run_check(
        config,
        samples=args.samples,
        calibrate=not args.no_calibrate,
        price_per_hour=args.price_per_hour,
        redact=not args.show_pii,
    )
    print_report(report, console, show_ids=args.ids, strict=args.strict)
    if args.json:
        import json

        _write_report(Path(args.json), json.dumps(report.to_dict(), indent=1) + "\n")
    if args.html:
        _write_report(Path(args.html), render_html(report))
    if args.fix_out:
        from tunesmith.check.fix import REASONS, write_clean

        d = config.data
        done = write_clean(report, d.train, Path(args.fix_out), [p for p in (d.train, d.eval, d.select) if p])
        gone = [f"{n} {REASONS.get(k, 'unreadable records')}" for k, n in done.items() if k != "kept" and n]
        console.print(
            f"wrote {done['kept']} training records to {args.fix_out}"
            + (f" (removed {', '.join(gone)})" if gone else " (nothing to remove)"),
            markup=False,
            highlight=False,
        )
    return report.exit_code(args.strict)


def _write_report(path: Path, text: str) -> None:
    """Write a report file atomically, creating its folder; a path that cannot be written is a clear error."""
    from tunesmith.runfolder import atomic_write_text

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    except OSError as e:
        raise TunesmithError(f"cannot write the report: {e.strerror or e}", origin=path) from e


def cmd_train(args: argparse.Namespace) -> int:
    """Fine-tune the model a config describes; print the run folder and held-out metrics before vs after."""
    from tunesmith.config import load_target
    from tunesmith.data import train_and_eval

    config = load_target(args.config, args.overrides, args.model)
    data = train_and_eval(config.data, config.train.seed)  # a bad config or file: an error before torch loads
    from tunesmith.pipeline import train

    result = train(config, resume=True if args.resume else None, data=data)
    s = result.summary
    if not s:  # a non-main rank under torchrun: rank 0 reports
        return 0
    table = Table(title="held-out evaluation", show_edge=False)
    table.add_column("metric")
    table.add_column("base model", justify="right")
    table.add_column("tuned", justify="right")
    before, after = s.get("before") or {}, s.get("after") or {}
    named = before.get("task_metric") or after.get("task_metric")
    n_loss, n_gen = s.get("eval_rows"), (after or before).get("samples")
    rows = [("eval_loss", f"held-out loss ({n_loss} rows)"), ("accuracy", f"task accuracy (exact match, {n_gen} rows)")]
    for key, label in rows + ([(named, named.replace("_", " "))] if named else []):
        if key in before or key in after:
            table.add_row(label, _fmt(before.get(key)), _fmt(after.get(key)))
    if before or after:
        console.print(table)
    console.print(
        f"steps {s.get('steps')}  tokens {s.get('tokens')}  {_fmt(s.get('tokens_per_s'), 1)} tok/s  "
        f"{_fmt(s.get('train_seconds'), 1)} s  peak RSS {_fmt(s.get('peak_rss_mb'), 0)} MB"
    )
    comparison = s.get("comparison")
    if comparison:
        scores = "  ".join(f"{k} {_fmt(v)}" for k, v in comparison.items() if k not in ("report", "metric"))
        console.print(f"{comparison['metric']}: {scores}  report: {comparison['report']}")
    console.print(f"run folder: [bold]{result.run_dir}[/bold]")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Score a run on held-out data against the base model zero-shot and few-shot (and other runs); write
    eval.json, predictions.jsonl, report.html and report.md."""
    import json

    from tunesmith.runfolder import require_run

    require_run(args.run_dir)  # before torch loads: an error within a second
    from tunesmith.evaluate import evaluate_run
    from tunesmith.hardware import choose_threads

    choose_threads(args.threads)
    schema = json.loads(Path(args.schema).read_text(encoding="utf-8")) if args.schema else None
    labels = [x.strip() for x in args.labels.split(",") if x.strip()] if args.labels else None
    s = evaluate_run(
        args.run_dir,
        data=args.data,
        out_dir=args.out,
        compare=args.compare or [],
        few_shot=args.few_shot,
        instruction=args.instruction,
        labels=labels,
        answer_regex=args.answer_regex,
        schema=schema,
        method=args.method,
        max_samples=args.max_samples,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        n_resamples=args.resamples,
        seed=args.seed,
        include_base=not args.no_base,
        free_text=True if args.free_text else None,
        precision=args.precision,
    )
    systems = s["systems"]
    table = Table(title=f"{s['examples']} examples, {s['task']['kind']} task (95% bootstrap CI)", show_edge=False)
    table.add_column("metric")
    for sys_ in systems.values():
        table.add_column(sys_["title"], justify="right")
    for name in next(iter(systems.values()))["metrics"]:
        table.add_row(
            name,
            *(
                f"{100 * v['metrics'][name]['value']:.1f} "
                f"[{100 * v['metrics'][name]['ci'][0]:.1f}, {100 * v['metrics'][name]['ci'][1]:.1f}]"
                for v in systems.values()
            ),
        )
    table.add_row("held-out loss", *(_fmt(v["loss"]["eval_loss"]) for v in systems.values()))
    table.add_row("examples/s", *(_fmt(v["examples_per_s"], 2) for v in systems.values()))
    console.print(table)
    for key, c in s["tuned_vs"].items():
        console.print(
            f"tuned vs {systems[key]['title']}: {100 * c['delta']:+.1f} points {c['metric']} "
            f"[{100 * c['ci'][0]:+.1f}, {100 * c['ci'][1]:+.1f}], fixed {c['fixed']}, broke {c['broke']}"
        )
    out = args.out or args.run_dir
    console.print(f"report: [bold]{os.path.join(out, 'report.html')}[/bold]")
    return 0


def _label_set(run_dir: str, free_text: bool):
    """The run's label set (labels.json) that answers are held to, unless `--free-text`."""
    from tunesmith.generation import LabelSet
    from tunesmith.runfolder import RunFolder

    labels = None if free_text else LabelSet.from_file(RunFolder(run_dir).labels)
    if labels is not None:
        logging.getLogger("tunesmith").info(
            "answers are one of the run's %d labels (labels.json); --free-text for free text", len(labels.labels)
        )
    return labels


def cmd_generate(args: argparse.Namespace) -> int:
    """Answer one prompt with a tuned run (chat template applied exactly as in training). A run trained on a
    label task answers with one of its labels (labels.json) unless --free-text."""
    from tunesmith.errors import ConfigError
    from tunesmith.runfolder import require_run

    if not 0.0 < args.top_p <= 1.0 or args.temperature < 0:  # before torch loads: an error within a second
        raise ConfigError("--temperature must be >= 0 and --top-p in (0, 1]")
    require_run(args.run_dir)
    import torch

    from tunesmith.data.types import Message
    from tunesmith.generation import generate_answers
    from tunesmith.model.tuned import load_tuned

    model, tokenizer, config = load_tuned(args.run_dir)
    labels = _label_set(args.run_dir, args.free_text)
    system = args.system if args.system is not None else config.data.system_prompt
    answers = generate_answers(
        model,
        tokenizer,
        [[Message("user", p)] for p in args.prompt],
        system_prompt=system,
        max_new_tokens=args.max_new_tokens,
        batch_size=len(args.prompt),
        labels=labels,
        temperature=args.temperature,
        top_p=args.top_p,
        generator=torch.Generator().manual_seed(args.seed),
    )
    for i, (prompt, answer) in enumerate(zip(args.prompt, answers)):
        if len(answers) > 1:  # several prompts: each answer under its prompt, a blank line between
            console.print(("\n" if i else "") + f"[{i + 1}] {prompt}", style="dim", markup=False, highlight=False)
        console.print(answer, markup=False, highlight=False)
    return 0


CHAT_HELP = """commands (not sent to the model):
  /help            this list
  /reset           forget the conversation so far
  /system [TEXT]   show the system prompt, or set it (and forget the conversation)
  /quit            leave (or Ctrl-D)
a line starting with // is sent as a message starting with /"""


def cmd_chat(args: argparse.Namespace) -> int:
    """Interactive chat with a tuned run; answers stream as they are generated. /help lists commands (/reset,
    /system, /quit); Ctrl-D quits; line editing and history where the terminal has readline. A run trained on a
    label task answers with one of its labels (labels.json) unless --free-text."""
    from tunesmith.runfolder import require_run

    require_run(args.run_dir)  # before torch loads: an error within a second
    from tunesmith.data.types import Message
    from tunesmith.generation import stream_answer
    from tunesmith.model.tuned import load_tuned

    if sys.stdin.isatty():
        import readline  # noqa: F401  # input() gains line editing and history

    model, tokenizer, config = load_tuned(args.run_dir)
    labels = _label_set(args.run_dir, args.free_text)
    chat = _Chat(args.system if args.system is not None else config.data.system_prompt)
    console.print("[dim]chatting with the tuned model: /help for commands, Ctrl-D to quit[/dim]")
    while True:
        try:
            line = input("you> ")
        except EOFError:
            console.print()
            break
        message = chat.command(line)
        if message is None:
            if chat.done:
                break
            continue
        chat.history.append(Message("user", message))
        console.print("model> ", end="")
        parts = []
        for piece in stream_answer(
            model,
            tokenizer,
            chat.history,
            system_prompt=chat.system,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            labels=labels,
        ):
            parts.append(piece)
            console.print(piece, end="", markup=False, highlight=False)
        console.print()
        chat.history.append(Message("assistant", "".join(parts).strip()))
    return 0


class _Chat:
    """The chat's state and its slash commands."""

    def __init__(self, system: str | None):
        self.system, self.done = system, False
        self.history: list = []  # Message turns

    def command(self, line: str) -> str | None:
        """The message to send for `line`, or None when it was a command (or empty) and was handled here."""
        text = line.strip()
        if not text:
            return None
        if text.startswith("//"):
            return line.strip()[1:]
        if not text.startswith("/"):
            return line
        name, _, rest = text.partition(" ")
        if name in ("/quit", "/exit"):
            self.done = True
        elif name == "/help":
            console.print(CHAT_HELP, markup=False, highlight=False)
        elif name == "/reset":
            turns = len(self.history) // 2
            self.history = []
            console.print(f"[dim]conversation cleared ({turns} exchange{'s' * (turns != 1)} forgotten)[/dim]")
        elif name == "/system" and rest.strip():
            self.system, self.history = rest.strip(), []
            console.print("[dim]system prompt set; conversation cleared[/dim]")
        elif name == "/system":
            shown = self.system if self.system is not None else "(the model's default)"
            console.print(f"system prompt: {shown}", markup=False, highlight=False)
        else:
            console.print(f"unknown command {name}: /help lists them (// sends a line starting with /)", markup=False)
        return None


def cmd_export(args: argparse.Namespace) -> int:
    """Export a run as a merged HF folder, a PEFT adapter folder, or a GGUF file; each is checked before it is kept."""
    from tunesmith.export import export
    from tunesmith.export.formats import checked_quant
    from tunesmith.runfolder import require_run

    checked_quant(args.format, args.quant, args.merge)  # before torch loads: an error within a second
    require_run(args.run_dir)

    report = export(
        args.run_dir,
        args.format,
        args.out,
        quant=args.quant,
        merge=args.merge,
        verify=not args.no_verify,
        max_shard_size=args.max_shard_size,
    )
    for key in ("merge", "check"):
        if key in report:
            console.print(
                f"{key}: " + ", ".join(f"{k} {_fmt(v, 6)}" for k, v in report[key].items()),
                markup=False,
                highlight=False,
            )
    console.print(f"exported to [bold]{args.out}[/bold] (report: export.json)")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    """Upload a run's trained adapter (or full model) folder, or an export folder, to the Hugging Face hub as it is:
    safetensors weights, tokenizer, model card. Checkpoints, data and pickle files are refused."""
    from functools import partial

    from tunesmith.export.push import connect, plan_push, push, size_text

    say = partial(console.print, markup=False, highlight=False, soft_wrap=True)  # paths and URLs: one line each
    plan = plan_push(args.path, args.repo, revision=args.revision, private=args.private, message=args.message)
    target = f"{plan.url} (branch {plan.revision}{', private' if args.private else ''})"
    count = f"{len(plan.files)} file{'s' * (len(plan.files) != 1)} ({size_text(plan.total_bytes)})"
    if args.dry_run:
        say(f"would push {count} from {plan.folder} to {target}")
        width = max(len(rel) for rel, _ in plan.files)
        for rel, size in plan.files:
            say(f"  {rel:<{width}}  {size_text(size):>9}")
        say(f"commit message: {plan.message}")
        say("dry run: nothing was uploaded")
        return 0
    if err_console.is_terminal:  # the hub's upload progress (transformers turned its bars off)
        import warnings

        from huggingface_hub.utils import enable_progress_bars

        with warnings.catch_warnings():  # it warns when HF_HUB_DISABLE_PROGRESS_BARS keeps them off, as it should
            warnings.simplefilter("ignore")
            enable_progress_bars()
    api = connect(args.token)
    say(f"pushing {count} from {plan.folder} to {target}")
    done = push(plan, api)
    say(f"pushed to {done.url}")
    say(f"commit {done.commit}: {done.commit_url}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve a run over an OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models)."""
    from tunesmith.errors import ConfigError
    from tunesmith.runfolder import require_run

    require_run(args.run_dir)  # before torch loads: an error within a second
    if args.max_batch < 1:
        raise ConfigError(f"must be at least 1 (got {args.max_batch})", field="--max-batch")
    from tunesmith.serve import parse_adapters, serve

    try:
        key = Path(args.api_key_file).read_text().strip() if args.api_key_file else args.api_key
    except OSError as e:
        raise ConfigError(f"cannot read the API key file: {e.strerror}", origin=args.api_key_file) from None
    serve(
        args.run_dir,
        adapters=parse_adapters(args.adapter),
        host=args.host,
        port=args.port,
        api_key=key,
        max_tokens=args.max_tokens,
        max_queue=args.max_queue,
        request_timeout=args.request_timeout,
        free_text=args.free_text,
        max_batch=args.max_batch,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunesmith", description="Fine-tune a causal language model on your examples: check, train, evaluate, try."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"tunesmith {_version()}")
    sub = parser.add_subparsers(dest="verb", required=True)
    for add in (_add_check, _add_train, _add_eval, _add_generate, _add_chat, _add_export, _add_push, _add_serve):
        add(sub)
    return parser


class _Help(argparse.HelpFormatter):
    """Help that shows each option's default, unless its text already says it or there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default in (None, False, argparse.SUPPRESS, []) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def _version() -> str:
    """The installed distribution's version, else the package's own (a source checkout)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tunesmith")
    except PackageNotFoundError:
        from tunesmith import __version__

        return __version__


def _add_trust(p) -> None:
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let the run's base model run code from its model repository (the run folder's own "
        "model.trust_remote_code is never honoured: a received run folder is not code you chose to run)",
    )


def _add_precision(p) -> None:
    p.add_argument(
        "--precision",
        choices=["float32", "model"],
        default=None,
        help="how answers are decoded on a CPU: float32 (answers that do not depend on the batch, as the fp32 "
        "export gives) or model (the weights' own dtype, bf16: faster on CPUs with bf16 units, an answer may change "
        "with its batch) (default: the run's eval.precision)",
    )


def _precision(args: argparse.Namespace) -> str | None:
    """The decoding precision a verb asked for: --precision, else its run's eval.precision (None: no run)."""
    if not hasattr(args, "precision") or args.precision is not None:
        return getattr(args, "precision", None)
    from tunesmith.runfolder import run_config

    try:
        return run_config(args.run_dir).eval.precision
    except (TunesmithError, OSError):  # the verb itself says what is wrong with the run folder
        return None


def _decoding(precision: str | None):
    """`precision.decoding_in(precision)` (no torch import); nothing for verbs without a precision."""
    if precision is None:
        import contextlib

        return contextlib.nullcontext()
    from tunesmith.precision import decoding_in

    return decoding_in(precision)


def _add_check(sub) -> None:
    p = sub.add_parser("check", formatter_class=_Help, help=cmd_check.__doc__, description=cmd_check.__doc__)
    p.add_argument("target", help="YAML config, or a data file (.jsonl, .json, .csv, .parquet) with --model")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. train.max_length=1024")
    p.add_argument("--model", default=None, help="model to check against (default: the config's, else smollm2-135m)")
    p.add_argument("--json", metavar="OUT", default=None, help="write the full report as JSON")
    p.add_argument("--html", metavar="OUT", default=None, help="write a self-contained HTML report")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings")
    p.add_argument("--samples", type=int, default=2, metavar="N", help="records shown with trained tokens marked")
    p.add_argument("--ids", action="store_true", help="show token ids in the samples")
    p.add_argument(
        "--price-per-hour",
        type=float,
        default=None,
        metavar="X",
        help="price of this machine per hour, for the cost estimate",
    )
    p.add_argument(
        "--no-calibrate",
        action="store_true",
        help="skip the calibration run (no time or memory estimate; no model is loaded)",
    )
    p.add_argument(
        "--fix-out",
        metavar="FILE",
        default=None,
        help="write the training data to FILE (JSONL) without exact duplicates, rows leaking into eval and "
        "unreadable records (your files are not changed)",
    )
    p.add_argument(
        "--show-pii",
        action="store_true",
        help="show e-mail addresses, card numbers and secrets in the masked-token samples in full (redacted otherwise)",
    )
    p.set_defaults(func=cmd_check)


def _add_train(sub) -> None:
    p = sub.add_parser("train", formatter_class=_Help, help=cmd_train.__doc__, description=cmd_train.__doc__)
    p.add_argument(
        "config",
        help="YAML config (see examples/support/config.yaml), or a data file (.jsonl, .json, "
        ".csv, .parquet) to train on with the defaults, into runs/<file stem>",
    )
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. train.max_steps=20")
    p.add_argument("--model", help="model to tune (overrides the config's; default: the bundled smollm2-135m)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="require an existing run to resume (re-running into the same output_dir resumes anyway)",
    )
    p.set_defaults(func=cmd_train)


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", formatter_class=_Help, help=cmd_eval.__doc__, description=cmd_eval.__doc__)
    p.add_argument("run_dir", help="run folder to evaluate (from `tunesmith train`)")
    p.add_argument("--data", default=None, help="test file (default: the run's eval data)")
    p.add_argument("--compare", action="append", metavar="OTHER_RUN", help="another run to include (repeatable)")
    p.add_argument(
        "--few-shot",
        type=int,
        default=3,
        metavar="K",
        help="training examples shown to the base model as prior turns (0 = no few-shot system)",
    )
    p.add_argument(
        "--instruction",
        default=None,
        help="instruction (system prompt) for the base model (default: the run's data.system_prompt)",
    )
    p.add_argument("--labels", default=None, help="comma-separated label set (default: inferred from the data)")
    p.add_argument("--answer-regex", default=None, help="scored part of an answer (default: eval.answer_regex)")
    p.add_argument("--schema", default=None, help="JSON Schema file that answers must match")
    p.add_argument(
        "--method",
        choices=["generate", "rank"],
        default="generate",
        help="generate answers, or rank the label set by log-likelihood (label tasks)",
    )
    p.add_argument("--max-samples", type=int, default=None, help="score only the first N test rows (default: all)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: eval.max_new_tokens")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="rows per scoring batch; generation takes up to 16x as many within a 1 GiB KV cache (default: "
        "eval.batch_size)",
    )
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="seed for few-shot draws and the bootstrap")
    p.add_argument("--no-base", action="store_true", help="skip the base-model systems")
    p.add_argument("--out", default=None, help="output folder (default: the run folder)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the free cores)")
    p.add_argument(
        "--free-text",
        action="store_true",
        help="label tasks: let every system answer in free text (default: answers held to the label set)",
    )
    _add_precision(p)
    _add_trust(p)
    p.set_defaults(func=cmd_eval)


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", formatter_class=_Help, help=cmd_generate.__doc__, description=cmd_generate.__doc__)
    p.add_argument("run_dir", help="run folder to answer with (from `tunesmith train`)")
    p.add_argument("--prompt", action="append", required=True, help="user message (repeat for several)")
    p.add_argument("--system", default=None, help="system prompt (default: the one the run was trained with)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="longest answer, in tokens")
    p.add_argument("--temperature", type=float, default=0.0, help="0 (default): greedy; above 0: sampling")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: keep this share of probability")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (with --temperature)")
    p.add_argument(
        "--free-text", action="store_true", help="answer in free text even when the run has a label set (labels.json)"
    )
    _add_precision(p)
    _add_trust(p)
    p.set_defaults(func=cmd_generate)


def _add_chat(sub) -> None:
    p = sub.add_parser("chat", formatter_class=_Help, help=cmd_chat.__doc__, description=cmd_chat.__doc__)
    p.add_argument("run_dir", help="run folder to chat with (from `tunesmith train`)")
    p.add_argument("--system", default=None, help="system prompt (default: the one the run was trained with)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="longest answer, in tokens")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument(
        "--free-text", action="store_true", help="answer in free text even when the run has a label set (labels.json)"
    )
    _add_precision(p)
    _add_trust(p)
    p.set_defaults(func=cmd_chat)


def _add_export(sub) -> None:
    p = sub.add_parser("export", formatter_class=_Help, help=cmd_export.__doc__, description=cmd_export.__doc__)
    p.add_argument("run_dir", help="run folder to export (from `tunesmith train`)")
    p.add_argument(
        "--format",
        required=True,
        choices=FORMATS,
        help="hf: merged safetensors model; peft: the adapter; gguf: llama.cpp / Ollama file (+ Modelfile)",
    )
    p.add_argument("--out", required=True, help="output folder (written atomically; nothing on failure)")
    p.add_argument("--merge", action="store_true", help="merge the adapter (always done for hf and gguf)")
    p.add_argument("--quant", default=None, help="hf: f32 (default), bf16, f16; gguf: f16 (default), f32, q8_0")
    p.add_argument("--max-shard-size", default="2GB", help="hf: largest safetensors shard")
    p.add_argument("--no-verify", action="store_true", help="skip reloading the export to check it")
    _add_trust(p)
    p.set_defaults(func=cmd_export)


def _add_push(sub) -> None:
    p = sub.add_parser("push", formatter_class=_Help, help=cmd_push.__doc__, description=cmd_push.__doc__)
    p.add_argument("path", help="run folder (its adapter/ or model/ is pushed) or `tunesmith export` folder")
    p.add_argument("--repo", required=True, metavar="ORG/NAME", help="hub repo to push to (created when missing)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", default="main", help="branch to commit to (created when missing)")
    p.add_argument("--message", default=None, help="commit message (default: names the run and what it holds)")
    p.add_argument(
        "--token",
        default=None,
        help="hub token with write access (default: HF_TOKEN, else the one `hf auth login` saved; "
        "a token given here shows in `ps`)",
    )
    p.add_argument("--dry-run", action="store_true", help="list the files, their sizes and the target; upload nothing")
    p.set_defaults(func=cmd_push)


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", formatter_class=_Help, help=cmd_serve.__doc__, description=cmd_serve.__doc__)
    p.add_argument("run_dir", help="run folder to serve (from `tunesmith train`)")
    p.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another adapter on the same base model (a run folder or a PEFT folder); repeatable",
    )
    p.add_argument("--host", default="127.0.0.1", help="other than loopback needs --api-key")
    p.add_argument("--port", type=int, default=8000, help="TCP port")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
    p.add_argument("--api-key-file", default=None, help="read the API key from a file (keeps it out of `ps`)")
    p.add_argument("--max-tokens", type=int, default=1024, help="most tokens one request may ask for")
    p.add_argument(
        "--max-batch",
        type=int,
        default=MAX_BATCH,
        help="requests decoding at once, the others wait in the queue: more gives more requests/s under load, "
        "each token later (default %(default)s)",
    )
    p.add_argument(
        "--max-queue", type=int, default=256, help="requests waiting beyond this get 503 with Retry-After (default 256)"
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=300.0,
        help="seconds a request may take, waiting and generating; past it: 504 (default 300)",
    )
    p.add_argument(
        "--free-text",
        action="store_true",
        help="chat answers in free text even when a run has a label set (a request can also send free_text: true)",
    )
    _add_precision(p)
    _add_trust(p)
    p.set_defaults(func=cmd_serve)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # overrides after an option (`train data.jsonl --model M train.lr=1e-3`): argparse leaves them over
        if not hasattr(args, "overrides") or any(e.startswith("-") or "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    _setup_logging(args.verbose)
    from tunesmith.runfolder import trusting_remote_code

    try:
        trusting = trusting_remote_code(getattr(args, "trust_remote_code", False))  # only verbs acting on a run
        with trusting, _decoding(_precision(args)):
            return args.func(args)
    except Stopped as e:  # SIGINT/SIGTERM during training: checkpoint saved, exit 3
        err_console.print(
            f"{_rank()}[bold yellow]stopped:[/bold yellow] {escape(str(e))}", highlight=False, soft_wrap=True
        )
        return e.exit_code
    except TunesmithError as e:
        err_console.print(f"{_rank()}[bold red]error:[/bold red] {escape(str(e))}", highlight=False, soft_wrap=True)
        return e.exit_code
    except KeyboardInterrupt:  # Ctrl-C outside training, or a second one during it: nothing more is saved
        err_console.print("interrupted")
        return 130


def leave(code: int) -> NoReturn:
    """End the process with `code`. A `torchrun` process of a job with more than one rank leaves at once, without
    interpreter teardown: once DDP has used gloo's process group, something it builds keeps the group, and its
    threads, alive past `destroy_process_group`, and those threads racing the teardown aborted a rank now and then
    ("terminate called without an active exception", SIGABRT) or left it hanging, which failed or stalled the whole
    job. Everything the command writes is complete by then (atomic files, trackers closed); the streams are flushed
    here."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def run() -> NoReturn:
    """The `tunesmith` command (and `python -m tunesmith.cli`, the form `torchrun` runs)."""
    leave(main())


if __name__ == "__main__":
    run()
