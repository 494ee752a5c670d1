"""The report's hyper-parameter search section, from a run's search.json (`train.lr: auto`): the selection metric
against learning rate and against step (inline SVG), a table of the trials and one sentence on the choice.

Tolerant of what a search record may hold: one trial, null values, diverged trials, a loss metric (lower is
better), a search still running.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from tunesmith.runfolder import read_json

log = logging.getLogger("tunesmith")

CHOSEN = "#2f7ed8"
OTHERS = ["#e0a458", "#8e5ea2", "#3cba9f", "#c45850", "#9aa5b1", "#6b8e23", "#d17cb0", "#7f6a4d"]
INK, MUTED, GRID = "#1d2330", "#5b6575", "#e5e7eb"


@dataclass
class Trial:
    """One learning rate's evaluations (the chosen one's continuing through the final run's)."""

    index: int
    lr: float | None
    status: str
    points: list[tuple[float, float]] = field(default_factory=list)  # (step, value), finite values only
    rung_points: int = 0  # how many of `points` are the search's rung evaluations
    diverged_at: float | None = None  # the step where it diverged
    last_step: float | None = None  # the last step evaluated, whatever its value
    seconds: float | None = None  # budget-clock time spent on it

    @property
    def chosen(self) -> bool:
        return self.status == "chosen"

    @property
    def colour(self) -> str:
        return CHOSEN if self.chosen else OTHERS[self.index % len(OTHERS)]


def read_search(path: Path) -> dict | None:
    """The search record, or None when the run has none (or it cannot be read: the report goes on without it)."""
    if not path.is_file():
        return None
    try:
        record = read_json(path)
    except (OSError, ValueError) as e:
        log.warning("%s: not readable, no search section in the report (%s)", path, e)
        return None
    return record if isinstance(record, dict) and isinstance(record.get("trials"), list) else None


def _num(value) -> float | None:
    """A finite number, or None (null, NaN, infinities and non-numbers alike)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _evals(entries) -> list[dict]:
    return [e for e in entries or [] if isinstance(e, dict)]


def trials_of(record: dict) -> list[Trial]:
    """The trials with their valid points, the chosen one's including the final run, and time spent on each."""
    chosen = record.get("chosen")
    chosen_index = chosen.get("trial") if isinstance(chosen, dict) else None
    final = _evals((record.get("final") or {}).get("evals"))
    out: list[Trial] = []
    clock: list[tuple[float, int]] = []
    for k, t in enumerate(t for t in record["trials"] if isinstance(t, dict)):
        index = t.get("trial", k) if isinstance(t.get("trial"), int) else k
        status = t.get("status") or "running"
        if chosen_index == index and status != "pruned":
            status = "chosen"
        trial = Trial(index, _num(t.get("lr")), str(status))
        evals = _evals(t.get("evals"))
        for n, e in enumerate(evals + (final if trial.chosen else [])):
            step, value = _num(e.get("step")), _num(e.get("value"))
            trial.last_step = trial.last_step if step is None else max(trial.last_step or 0.0, step)
            if t.get("diverged") and n == len(evals) - 1:
                trial.diverged_at = step
            elif step is not None and value is not None:
                trial.points.append((step, value))
                trial.rung_points += n < len(evals)
            if _num(e.get("seconds")) is not None:
                clock.append((float(e["seconds"]), len(out)))
        out.append(trial)
    _spend(out, clock, _num(record.get("seconds")))
    return out


def _spend(trials: list[Trial], clock: list[tuple[float, int]], total: float | None) -> None:
    """Each evaluation's time since the one before (the run's evaluations in order) goes to its trial; the
    time after the last (the final save) to the chosen one."""
    previous = 0.0
    for at, k in sorted(clock):
        trials[k].seconds = (trials[k].seconds or 0.0) + max(0.0, at - previous)
        previous = at
    chosen = [t for t in trials if t.chosen]
    if chosen and total is not None and total > previous:
        chosen[0].seconds = (chosen[0].seconds or 0.0) + total - previous


def best_of(record: dict, trials: list[Trial]) -> tuple[float, float] | None:
    """The kept (step, value): the record's best, else the chosen trial's best point (the minimum for a loss)."""
    final = record.get("final") or {}
    step, value = _num(final.get("best_step")), _num(final.get("best_value"))
    if step is not None and value is not None:
        return step, value
    chosen = [t for t in trials if t.chosen and t.points]
    if not chosen:
        return None
    sign = 1 if record.get("higher_is_better", True) else -1
    return max(chosen[0].points, key=lambda p: (sign * p[1], -p[0]))


def fmt_lr(lr: float | None) -> str:
    if lr is None:
        return "–"
    if 0.1 <= abs(lr) < 1e3:
        return f"{lr:g}"
    mantissa, exponent = f"{lr:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def fmt_value(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _steps_trained(record: dict, trial: Trial) -> float | None:
    last = trial.last_step
    final = record.get("final") or {}
    planned = _num(final.get("steps"))
    stopped = final.get("stopped_by_budget") or final.get("stopped_at_ceiling")
    if trial.chosen and planned is not None and not stopped:
        return max(planned, last or 0.0)
    return last


def _budget_clause(record: dict) -> str:
    seconds, budget = _num(record.get("seconds")), _num(record.get("budget_s"))
    final = record.get("final") or {}
    if budget is None:
        return "No time budget was set" + (f" (it took {seconds:.0f} s)." if seconds is not None else ".")
    if seconds is None:
        return f"The budget was {budget:.0f} s; the time taken is not recorded."
    met = "within the budget" if seconds <= budget else f"over the budget by {seconds - budget:.0f} s"
    cut = " (the budget ended the final training early)" if final.get("stopped_by_budget") else ""
    if final.get("stopped_at_ceiling"):
        cut = " (the final training stopped early: the selection metric reached its maximum)"
    return f"It took {seconds:.0f} s of the {budget:.0f} s budget: {met}{cut}."


def sentence(record: dict, trials: list[Trial]) -> str:
    """What was chosen (learning rate, steps, metric value) and whether the budget was met, in plain text."""
    metric = str(record.get("metric") or "metric")
    direction = "higher" if record.get("higher_is_better", True) else "lower"
    chosen = [t for t in trials if t.chosen]
    if not chosen:
        running = sum(t.status == "running" for t in trials)
        waiting = f"The search has not chosen yet: {running} of {len(trials)} trials still running."
        return f"{waiting} {_budget_clause(record)}"
    t = chosen[0]
    steps = _steps_trained(record, t)
    best = best_of(record, trials)
    if len(trials) == 1:
        head = f"One learning rate, {fmt_lr(t.lr)} (nothing to search)"
    else:
        rows = _num(record.get("selection_rows"))
        on = f" on {rows:.0f} selection rows" if rows is not None else ""
        method = str(record.get("method") or "").replace("_", " ")
        by = f" by {method}" if method else ""
        head = f"Chose learning rate {fmt_lr(t.lr)} (trial {t.index}; {len(trials)} rates compared{by}{on})"
    trained = f"trained {steps:.0f} steps" if steps is not None else "trained"
    kept = (
        f" and kept step {best[0]:.0f}, {metric} {fmt_value(best[1])} ({direction} is better)"
        if best is not None
        else f", no {metric} recorded"
    )
    return f"{head}: {trained}{kept}. {_budget_clause(record)}"


def _row(record: dict, t: Trial, best: tuple[float, float] | None) -> list[str]:
    steps = _steps_trained(record, t)
    value = t.points[-1][1] if t.points else None
    step_text = "–" if steps is None else f"{steps:.0f}"
    if t.chosen and best is not None:
        value = best[1]
        step_text += f" (kept {best[0]:.0f})" if steps is None or best[0] != steps else ""
    shown = "diverged" if t.diverged_at is not None and not t.points else fmt_value(value)
    seconds = "–" if t.seconds is None else f"{t.seconds:.1f}"
    status = t.status + (" (diverged)" if t.diverged_at is not None else "")
    return [str(t.index), fmt_lr(t.lr), step_text, shown, seconds, status]


TABLE_NOTE = (
    "metric: at the trial's last evaluation (the chosen trial's: at the step whose weights were kept); seconds: "
    "budget-clock time spent on the trial (the chosen one's includes the final training)"
)


def table_rows(record: dict, trials: list[Trial]) -> tuple[list[str], list[list[str]]]:
    best = best_of(record, trials)
    head = ["trial", "lr", "steps", str(record.get("metric") or "metric"), "seconds", "status"]
    return head, [_row(record, t, best) for t in trials]


def markdown_section(record: dict) -> str:
    """The section for report.md: the sentence and the table."""
    trials = trials_of(record)
    head, rows = table_rows(record, trials)
    lines = ["## Hyper-parameter search", "", sentence(record, trials), ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---:|" * 5 + "---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines + ["", f"_{TABLE_NOTE}._", ""])


def html_section(record: dict) -> str:
    """The section for report.html: the sentence, the two plots and the table."""
    trials = trials_of(record)
    head, rows = table_rows(record, trials)
    cls = ["", "num", "num", "num", "num", ""]
    th = "".join(f'<th class="{c}">{escape(h)}</th>' for h, c in zip(head, cls))
    body = "".join(
        f'<tr class="{"chosen" if t.chosen else ""}"'
        + (' style="font-weight:600;background:#eef4fc"' if t.chosen else "")
        + ">"
        + "".join(f'<td class="{c}">{escape(v)}</td>' for v, c in zip(r, cls))
        + "</tr>"
        for t, r in zip(trials, rows)
    )
    y = _value_range(trials)
    return (
        f'<h2>Hyper-parameter search</h2><div class="panel search"><p>{escape(sentence(record, trials))}</p>'
        f'<div style="display:flex;flex-wrap:wrap;gap:12px">{lr_plot(record, trials, y)}'
        f"{step_plot(record, trials, y)}</div>"
        f'<table class="search-trials"><tr>{th}</tr>{body}</table><p class="sub">{escape(TABLE_NOTE)}.</p></div>'
    )


# ---- plots -------------------------------------------------------------------------------------------------


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (the first at or below lo, the last at or above hi)."""
    if not hi > lo:
        pad = abs(lo) * 0.05 or 0.05
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / n
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [k * step for k in range(first, last + 1)]


def tick_text(value: float, ticks: list[float]) -> str:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (
        1 if round(step / 10 ** math.floor(math.log10(step)), 6) == 2.5 else 0
    )
    return f"{value:.{decimals}f}"


def _value_range(trials: list[Trial]) -> list[float]:
    values = [v for t in trials for _, v in t.points]
    if not values:
        return [0.0, 1.0]
    room = 0.04 * (max(values) - min(values))  # no point on the frame's edge
    return nice_ticks(min(values) - room, max(values) + room)


@dataclass
class Axes:
    """Maps data to pixels inside one SVG: x over `xlim` (log10 units when `log_x`), y over the ticks' span."""

    width: int
    xlim: tuple[float, float]
    xticks: list[float]  # in data units (learning rates themselves on a log axis)
    yticks: list[float]
    log_x: bool = False
    height: int = 260
    left: int = 64
    right: int = 16
    top: int = 24
    bottom: int = 42

    def x(self, value: float) -> float:
        v = math.log10(value) if self.log_x else value
        lo, hi = self.xlim
        return self.left + (self.width - self.left - self.right) * (v - lo) / (hi - lo)

    def y(self, value: float) -> float:
        lo, hi = self.yticks[0], self.yticks[-1]
        return self.height - self.bottom - (self.height - self.top - self.bottom) * (value - lo) / (hi - lo)

    def frame(self, klass: str, title: str, xlabel: str, ylabel: str, xtext) -> list[str]:
        """The SVG's opening, grid, ticks and axis labels."""
        w, h, left, bottom = self.width, self.height, self.left, self.height - self.bottom
        parts = [
            f'<svg class="chart {klass}" role="img" width="{w}" height="{h}" font-family="inherit">'
            f"<title>{escape(title)}</title>"
        ]
        for v in self.yticks:
            y = self.y(v)
            parts.append(
                f'<line x1="{left}" y1="{y:.1f}" x2="{w - self.right}" y2="{y:.1f}" stroke="{GRID}"/>'
                f'<text x="{left - 5}" y="{y + 3:.1f}" font-size="10" text-anchor="end" fill="{MUTED}">'
                f"{tick_text(v, self.yticks)}</text>"
            )
        for v in self.xticks:
            x = self.x(v)
            parts.append(
                f'<line x1="{x:.1f}" y1="{self.top}" x2="{x:.1f}" y2="{bottom}" stroke="{GRID}"/>'
                f'<text x="{x:.1f}" y="{bottom + 14}" font-size="10" text-anchor="middle" fill="{MUTED}">'
                f"{escape(xtext(v))}</text>"
            )
        mid_y = (self.top + bottom) / 2
        parts.append(
            f'<line x1="{left}" y1="{bottom}" x2="{w - self.right}" y2="{bottom}" stroke="{MUTED}"/>'
            f'<line x1="{left}" y1="{self.top}" x2="{left}" y2="{bottom}" stroke="{MUTED}"/>'
            f'<text x="{(left + w - self.right) / 2:.1f}" y="{h - 6}" font-size="11" text-anchor="middle">'
            f"{escape(xlabel)}</text>"
            f'<text x="14" y="{mid_y:.1f}" font-size="11" text-anchor="middle" '
            f'transform="rotate(-90 14 {mid_y:.1f})">{escape(ylabel)}</text>'
        )
        return parts


def _ylabel(record: dict) -> str:
    direction = "higher" if record.get("higher_is_better", True) else "lower"
    return f"{record.get('metric') or 'metric'} ({direction} is better)"


def _cross(x: float, y: float, colour: str, tip: str) -> str:
    return (
        f'<path class="diverged" d="M{x - 5:.1f},{y - 5:.1f}L{x + 5:.1f},{y + 5:.1f}M{x - 5:.1f},{y + 5:.1f}'
        f'L{x + 5:.1f},{y - 5:.1f}" stroke="{colour}" stroke-width="2"><title>{escape(tip)}</title></path>'
    )


def _worst_edge(record: dict, yticks: list[float]) -> float:
    return yticks[0] if record.get("higher_is_better", True) else yticks[-1]


def lr_plot(record: dict, trials: list[Trial], yticks: list[float]) -> str:
    """The selection metric against learning rate (log axis): each trial at its last evaluation."""
    lrs = [t.lr for t in trials if t.lr is not None and t.lr > 0]
    if not lrs:
        return '<p class="sub">no learning rates recorded: no plot against learning rate.</p>'
    lo, hi = math.log10(min(lrs)), math.log10(max(lrs))
    pad = 0.5 if hi - lo < 0.5 else 0.12 * (hi - lo) + 0.1
    axes = Axes(370, (lo - pad, hi + pad), [], yticks, log_x=True)
    for lr in sorted(set(lrs)):  # a tick at each rate tried, none closer than a label's width
        if not axes.xticks or axes.x(lr) - axes.x(axes.xticks[-1]) >= 36:
            axes.xticks.append(lr)
    parts = axes.frame(
        "search lr",
        "selection metric against learning rate",
        "learning rate (log scale)",
        _ylabel(record),
        fmt_lr,
    )
    metric = str(record.get("metric") or "metric")
    for t in sorted(trials, key=lambda t: t.chosen):  # the chosen one drawn last, on top
        if t.lr is None or t.lr <= 0:
            continue
        x = axes.x(t.lr)
        if not t.points:
            if t.diverged_at is not None:
                y = axes.y(_worst_edge(record, yticks))
                parts.append(
                    _cross(x, y, t.colour, f"lr {fmt_lr(t.lr)}: diverged")
                    + f'<text x="{x:.1f}" y="{y - 9:.1f}" font-size="10" text-anchor="middle" fill="{MUTED}">'
                    "diverged</text>"
                )
            continue
        step, value = t.points[-1]
        y, r = axes.y(value), 7 if t.chosen else 5
        tip = f"trial {t.index}, lr {fmt_lr(t.lr)}: {metric} {fmt_value(value)} at step {step:.0f} ({t.status})"
        stroke = f' stroke="{INK}" stroke-width="2"' if t.chosen else ' stroke="#fff"'
        label = f'font-weight="600" fill="{INK}">chosen · ' if t.chosen else f'fill="{MUTED}">'
        parts.append(
            f'<circle class="trial{" chosen" if t.chosen else ""}" cx="{x:.1f}" cy="{y:.1f}" r="{r}" '
            f'fill="{t.colour}"{stroke}><title>{escape(tip)}</title></circle>'
            f'<text x="{x:.1f}" y="{y - r - 4:.1f}" font-size="10" text-anchor="middle" {label}step {step:.0f}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _step_marks(record: dict, trials: list[Trial], axes: Axes) -> list[str]:
    """Dashed verticals at the rungs (where trials were compared) and at a planned end not reached."""
    parts, top, bottom = [], axes.top, axes.height - axes.bottom
    rungs = [r for r in ((record.get("planned") or {}).get("rungs") or []) if _num(r) is not None]
    for n, rung in enumerate(rungs):
        x = axes.x(float(rung))
        parts.append(
            f'<line class="rung" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="{MUTED}" '
            f'stroke-dasharray="3 3"/><text x="{x:.1f}" y="{top - 6}" font-size="10" text-anchor="middle" '
            f'fill="{MUTED}">rung {n + 1}</text>'
        )
    final = record.get("final") or {}
    planned = _num(final.get("steps"))
    reached = max((p[0] for t in trials if t.chosen for p in t.points), default=None)
    if planned is not None and reached is not None and planned > reached:
        x = axes.x(planned)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="{INK}" stroke-dasharray="1 3"/>'
            f'<text x="{x:.1f}" y="{top - 6}" font-size="10" text-anchor="middle" fill="{MUTED}">planned end</text>'
        )
    return parts


def step_plot(record: dict, trials: list[Trial], yticks: list[float]) -> str:
    """The selection metric against step: a line per trial, the chosen one's continuing through the final
    training, the rungs dashed, the kept (best) step ringed."""
    steps = [p[0] for t in trials for p in t.points] + [t.diverged_at for t in trials if t.diverged_at is not None]
    steps.append(_num((record.get("final") or {}).get("steps")) or 0.0)
    xticks = nice_ticks(0.0, max(max(steps), 1.0))
    axes = Axes(620, (xticks[0], xticks[-1]), xticks, yticks, right=128)
    parts = axes.frame(
        "search steps", "selection metric against training step", "training step", _ylabel(record), lambda v: f"{v:.0f}"
    )
    parts += _step_marks(record, trials, axes)
    metric = str(record.get("metric") or "metric")
    for t in sorted(trials, key=lambda t: t.chosen):
        width = 2.5 if t.chosen else 1.5
        xy = [(axes.x(s), axes.y(v)) for s, v in t.points]
        if len(xy) > 1:
            parts.append(
                f'<polyline class="trial{" chosen" if t.chosen else ""}" points="'
                + " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
                + f'" fill="none" stroke="{t.colour}" stroke-width="{width}" stroke-linejoin="round">'
                f"<title>trial {t.index}, lr {escape(fmt_lr(t.lr))} ({escape(t.status)})</title></polyline>"
            )
        for n, ((x, y), (s, v)) in enumerate(zip(xy, t.points)):
            phase = "search" if n < t.rung_points else "final training"
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{3.5 if t.chosen else 3}" fill="{t.colour}">'
                f"<title>lr {escape(fmt_lr(t.lr))}, step {s:.0f} ({phase}): {escape(metric)} {fmt_value(v)}"
                f"</title></circle>"
            )
        if t.diverged_at is not None:
            y = axes.y(_worst_edge(record, yticks))
            parts.append(_cross(axes.x(t.diverged_at), y, t.colour, f"lr {fmt_lr(t.lr)}: diverged"))
    best = best_of(record, trials)
    if best is not None:
        x, y = axes.x(best[0]), axes.y(best[1])
        anchor, dx = ("end", -12) if x > axes.width - axes.right - 90 else ("start", 12)
        parts.append(
            f'<circle class="best" cx="{x:.1f}" cy="{y:.1f}" r="8" fill="none" stroke="{INK}" stroke-width="1.5">'
            f"<title>kept: step {best[0]:.0f}, {escape(metric)} {fmt_value(best[1])}</title></circle>"
            f'<text x="{x + dx:.1f}" y="{y + 18:.1f}" font-size="11" font-weight="600" text-anchor="{anchor}" '
            f'stroke="#fff" stroke-width="3" paint-order="stroke">'
            f"best {fmt_value(best[1])} · step {best[0]:.0f}</text>"
        )
    parts += _legend(trials, axes)
    parts.append("</svg>")
    return "".join(parts)


def _legend(trials: list[Trial], axes: Axes) -> list[str]:
    x = axes.width - axes.right + 12
    parts = [f'<text x="{x}" y="{axes.top + 4}" font-size="11" fill="{MUTED}">learning rate</text>']
    for n, t in enumerate(trials):
        y = axes.top + 22 + 16 * n
        weight = ' font-weight="600"' if t.chosen else ""
        parts.append(
            f'<line x1="{x}" y1="{y - 4}" x2="{x + 16}" y2="{y - 4}" stroke="{t.colour}" '
            f'stroke-width="{2.5 if t.chosen else 1.5}"/><text x="{x + 21}" y="{y}" font-size="11"{weight}>'
            f"{escape(fmt_lr(t.lr))} · {escape(t.status)}</text>"
        )
    return parts
