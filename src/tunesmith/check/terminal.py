"""The report on one screen: problems first (one line each, `path:line` and field), then the numbers."""

from __future__ import annotations

from collections import defaultdict

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tunesmith.check.findings import Report
from tunesmith.check.view import to_text

PER_CHECK_SHOWN = 8  # warnings and notes of one check; the rest are counted (every one is in --json)
ERRORS_SHOWN = 20  # errors of one check: a file in the wrong shape fails on every line, alike
STYLES = {"error": "bold red", "warning": "yellow", "info": "blue"}


def print_report(report: Report, console: Console, *, show_ids: bool = False, strict: bool = False) -> None:
    files = "  ".join(
        f"{split} {path} ({report.counts.get(split, {}).get('records', 0)} records, "
        f"{report.counts.get(split, {}).get('bad', 0)} bad)"
        for split, path in report.files.items()
    )
    console.print(
        f"[bold]tunesmith check[/bold]  model {escape(report.model)}  {escape(files)}  max_length {report.max_length}",
        highlight=False,
        soft_wrap=True,
    )
    shown: dict[tuple[str, str], int] = defaultdict(int)
    hidden: dict[tuple[str, str], int] = defaultdict(int)
    for f in report.findings:
        key = (f.severity, f.check)
        if shown[key] < (ERRORS_SHOWN if f.severity == "error" else PER_CHECK_SHOWN):
            shown[key] += 1
            severity, rest = f.line().split(": ", 1)
            console.print(f"[{STYLES[f.severity]}]{severity}:[/] {escape(rest)}", highlight=False, soft_wrap=True)
        else:
            hidden[key] += 1
    for check, n in report.truncated_findings.items():  # past the per-file limit: counted, not listed
        hidden[("error", check)] += n
    for (severity, check), n in hidden.items():
        where = "--json lists up to 50 per file" if check in report.truncated_findings else "all in --json"
        console.print(f"[dim]... and {n} more {check} {severity}{'s' * (n != 1)} ({where})[/dim]", highlight=False)
    _lengths(report, console)
    if report.label_balance:
        counts = ", ".join(f"{k} {v}" for k, v in report.label_balance["counts"].items())
        console.print(f"labels ({report.label_balance['source']}): {escape(counts)}", highlight=False)
    _estimate(report, console)
    for sample in report.samples:
        console.print(
            f"[bold]sample {sample['origin']}[/bold]  {sample['tokens']} tokens, {sample['trained']} trained "
            "([black on green3]trained[/], [grey62]not trained[/])",
            highlight=False,
        )
        console.print(to_text(sample, show_ids), soft_wrap=True)
    errors, warnings = len(report.of("error")), len(report.of("warning"))
    code = report.exit_code(strict)
    verdict = {
        2: "[bold red]errors: training would refuse to start[/]",
        1: "[yellow]warnings (--strict)[/]",
        0: "[green]ok[/]",
    }[code]
    console.print(f"{errors} errors, {warnings} warnings: {verdict}", highlight=False)


def _lengths(report: Report, console: Console) -> None:
    if not report.lengths:
        return
    table = Table(title=f"token lengths (max_length {report.max_length})", show_edge=False, title_justify="left")
    for col in ("split", "kind", "p50", "p90", "max", f"> {report.max_length}"):
        table.add_column(col, justify="left" if col in ("split", "kind") else "right")
    for split, kinds in report.lengths.items():
        for kind, d in kinds.items():
            if d.get("n"):
                table.add_row(split, kind, str(d["p50"]), str(d["p90"]), str(d["max"]), str(d["over_max_length"]))
    console.print(table)


def _estimate(report: Report, console: Console) -> None:
    e = report.estimate
    if not e:
        return
    line = (
        f"estimate: {e['steps']} optimizer steps ({e['epochs']} epochs), {e['supervised_tokens']:,} supervised "
        f"tokens ({e['supervised_tokens_per_epoch']:,} per epoch)"
    )
    if "time_s" in e:
        m, s = e["memory_mb"], e["time_s"]
        parts = "  ".join(f"{k} {v:,.0f}" for k, v in m.items() if k != "peak_rss")
        line += (
            f"\n  time {s['train']:.0f} s training + {s['load']:.0f} s loading ({e['threads']} threads, "
            f"{e['calibration']['seconds_per_1k_tokens']} s per 1k tokens)"
            f"\n  peak memory {m['peak_rss']:,.0f} MB  ({parts} MB)"
        )
        if "cost" in e:
            line += f"\n  cost {e['cost']['cost']:.4f} at {e['cost']['price_per_hour']} per hour"
        if "recipe" in e:
            line += "\n  " + _recipe_line(e["recipe"])
    elif not e.get("calibrated"):
        line += "\n  time and memory: not calibrated (errors above, or --no-calibrate)"
    console.print(line, highlight=False, soft_wrap=True)


def _recipe_line(r: dict) -> str:
    rates = ", ".join(f"{x:.0e}" for x in r["learning_rates"])
    if not r["fits"]:
        return (
            f"auto recipe: does NOT fit train.budget={r['budget_s']:.0f}s; the shortest search needs about "
            f"{r['shortest_budget_s']}s here"
        )
    search = f"successive halving over lr {rates} (compared at steps {r['rungs']})" if r["rungs"] else f"lr {rates}"
    budget = f" of train.budget={r['budget_s']:.0f}s: fits" if r["budget_s"] else ""
    return (
        f"auto recipe: {search}, then {r['final_steps']} final steps; {r['trial_steps']} steps in all, "
        f"about {r['seconds']:.0f}s{budget}"
    )
