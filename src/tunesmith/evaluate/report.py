"""The report: one self-contained HTML file (inline CSS, JS and SVG; nothing fetched) and a markdown summary.

Sections: headline (primary metric per system with 95% intervals, tuned minus each baseline), metric bars
with interval whiskers, loss curves from metrics.jsonl, the hyper-parameter search (search.json), confusion
matrices (label tasks), what tuning fixed and broke, where the tuned model still fails, held-out loss and speed.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from html import escape
from pathlib import Path

from tunesmith.data.types import Conversation
from tunesmith.evaluate import search_report
from tunesmith.runfolder import RunFolder, atomic_write_text, read_metrics

COLOURS = ["#9aa5b1", "#e0a458", "#2f7ed8", "#8e5ea2", "#3cba9f", "#c45850"]
MAX_SAMPLES = 8
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:1100px;margin:0 auto;padding:24px}h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#5b6575}.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px #0002;min-width:170px}
.card b{font-size:24px;display:block}.ci{color:#5b6575;font-size:12px}
.panel{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px #0002;margin-bottom:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:12px}
table{border-collapse:collapse}td,th{padding:4px 8px;border-bottom:1px solid #e5e7eb;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}.cm td{text-align:center;min-width:34px}
.tabs button{border:1px solid #cfd5dd;background:#fff;border-radius:6px;padding:3px 10px;margin:0 4px 8px 0;
cursor:pointer}
.tabs button.on{background:#2f7ed8;color:#fff;border-color:#2f7ed8}.hidden{display:none}
pre{white-space:pre-wrap;margin:0;font:12px/1.4 ui-monospace,Menlo,monospace}
ins{background:#d4f7dc;text-decoration:none}
del{background:#fbd5d5}.good{color:#1a7f37}.bad{color:#c62828}
"""
JS = """
document.querySelectorAll('.tabs').forEach(function(bar){
  bar.querySelectorAll('button').forEach(function(btn){
    btn.addEventListener('click',function(){
      bar.querySelectorAll('button').forEach(function(b){b.classList.remove('on');});
      btn.classList.add('on');
      document.querySelectorAll('[data-group="'+bar.dataset.group+'"]').forEach(function(el){
        el.classList.toggle('hidden', el.dataset.tab !== btn.dataset.tab);
      });
    });
  });
});
"""


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _ci(metric: dict) -> str:
    lo, hi = metric["ci"]
    return f"[{_pct(lo)}, {_pct(hi)}]"


def metric_bars(name: str, systems: dict) -> str:
    """Horizontal bars (0-100 scale) of one metric per system, with 95% interval whiskers."""
    rows = [
        (s["title"], s["metrics"][name], COLOURS[i % len(COLOURS)])
        for i, s in enumerate(systems.values())
        if name in s["metrics"]
    ]
    left, width, bar_h, gap = 120, 190, 18, 8
    height = len(rows) * (bar_h + gap) + 24
    parts = [
        f'<svg class="chart bars" role="img" width="{left + width + 60}" height="{height}">'
        f"<title>{escape(name)}</title>"
    ]
    for k in range(0, 101, 25):
        x = left + width * k / 100
        parts.append(
            f'<line x1="{x}" y1="0" x2="{x}" y2="{height - 18}" stroke="#e5e7eb"/>'
            f'<text x="{x}" y="{height - 4}" font-size="10" text-anchor="middle" fill="#5b6575">{k}</text>'
        )
    for i, (title, m, colour) in enumerate(rows):
        y = i * (bar_h + gap) + 4
        lo, hi = m["ci"]
        parts.append(
            f'<text x="{left - 6}" y="{y + 13}" font-size="12" text-anchor="end">{escape(title)}</text>'
            f'<rect x="{left}" y="{y}" width="{width * max(m["value"], 0):.1f}" height="{bar_h}" fill="{colour}">'
            f"<title>{escape(title)}: {_pct(m['value'])} {_ci(m)}</title></rect>"
            f'<line x1="{left + width * lo:.1f}" y1="{y + bar_h / 2}" x2="{left + width * hi:.1f}" '
            f'y2="{y + bar_h / 2}" stroke="#1d2330" stroke-width="1.5"/>'
            + "".join(
                f'<line x1="{left + width * e:.1f}" y1="{y + 4}" x2="{left + width * e:.1f}" '
                f'y2="{y + bar_h - 4}" stroke="#1d2330"/>'
                for e in (lo, hi)
            )
            + f'<text x="{left + width + 6}" y="{y + 13}" font-size="12">{_pct(m["value"])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def loss_curves(records: list[dict]) -> str:
    """Train loss per step (line) and held-out loss where evaluated (points); then any periodic task metric."""
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    held = [(r["step"], r["eval_loss"]) for r in records if r.get("eval_loss") is not None]
    if not train and not held:
        return '<p class="sub">no metrics.jsonl in the run folder: no loss curves.</p>'
    out = line_chart(
        [("train loss", train, COLOURS[2], False), ("held-out loss", held, COLOURS[1], True)], "loss curves", "curves"
    )
    keys = sorted({k for r in records for k in r if k.startswith("eval_") and k != "eval_loss"})
    for key in keys:
        pts = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        out += line_chart([(f"{key} (generated answers)", pts, COLOURS[4], True)], key, "curves task")
    return out


def line_chart(lines: list[tuple[str, list[tuple[float, float]], str, bool]], title: str, klass: str) -> str:
    """One SVG with a line (or points) per series, axes and a legend."""
    pts = [p for _, series, _, _ in lines for p in series]
    w, h, pad = 640, 240, 44
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def xy(step: float, value: float) -> tuple[float, float]:
        return pad + (w - 2 * pad) * (step - x0) / (x1 - x0), h - pad + (2 * pad - h) * (value - y0) / (y1 - y0)

    parts = [
        f'<svg class="chart {klass}" role="img" width="{w}" height="{h}"><title>{escape(title)}</title>'
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#5b6575"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#5b6575"/>'
    ]
    for k in range(5):
        value, step = y0 + (y1 - y0) * k / 4, x0 + (x1 - x0) * k / 4
        _, y = xy(x0, value)
        x, _ = xy(step, y0)
        parts.append(
            f'<text x="{pad - 4}" y="{y + 3:.1f}" font-size="10" text-anchor="end">{value:.2f}</text>'
            f'<text x="{x:.1f}" y="{h - pad + 14}" font-size="10" text-anchor="middle">{step:.0f}</text>'
        )
    parts.append(f'<text x="{w / 2}" y="{h - 8}" font-size="11" text-anchor="middle">step</text>')
    for n, (label, series, colour, as_points) in enumerate(lines):
        if not series:
            continue
        if as_points:
            for s, v in series:
                x, y = xy(s, v)
                parts.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}"><title>step {s}: '
                    f"{escape(label)} {v:.4f}</title></circle>"
                )
        else:
            line = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(s, v) for s, v in series))
            parts.append(
                f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.5">'
                f"<title>{escape(label)}</title></polyline>"
            )
        parts.append(
            f'<text x="{w - pad}" y="{pad - 10 + 14 * n}" font-size="11" text-anchor="end" '
            f'fill="{colour}">{"●" if as_points else "—"} {escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def confusion_tables(systems: dict, labels: Sequence[str]) -> str:
    """One gold x predicted table per system, behind tabs (tuned shown first)."""
    keys = sorted(systems, key=lambda k: k != "tuned")
    tabs = "".join(
        f'<button data-tab="{escape(k)}" class="{"on" if i == 0 else ""}">{escape(systems[k]["title"])}</button>'
        for i, k in enumerate(keys)
    )
    out = [f'<div class="tabs" data-group="cm">{tabs}</div>']
    columns = list(labels) + ["(other)"]
    for i, key in enumerate(keys):
        matrix = systems[key]["confusion"]
        peak = max((v for row in matrix for v in row), default=1) or 1
        head = "".join(f"<th>{escape(c)}</th>" for c in columns)
        body = []
        for label, row in zip(labels, matrix):
            cells = []
            for j, v in enumerate(row):
                hue = "47,126,216" if j == labels.index(label) else "198,40,40"
                cells.append(f'<td style="background:rgba({hue},{0.85 * v / peak:.2f})">{v}</td>')
            body.append(f"<tr><th>{escape(label)}</th>{''.join(cells)}</tr>")
        out.append(
            f'<div data-group="cm" data-tab="{escape(key)}" class="{"" if i == 0 else "hidden"}">'
            f'<table class="cm"><tr><th>gold \\ predicted</th>{head}</tr>{"".join(body)}</table></div>'
        )
    return "".join(out)


def word_diff(reference: str, answer: str) -> str:
    """The answer with words missing from the reference struck and added words marked (HTML)."""
    a, b = reference.split(), answer.split()
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(escape(" ".join(b[j1:j2])))
            continue
        if i2 > i1:
            out.append(f"<del>{escape(' '.join(a[i1:i2]))}</del>")
        if j2 > j1:
            out.append(f"<ins>{escape(' '.join(b[j1:j2]))}</ins>")
    return " ".join(out)


def _question(conv: Conversation) -> str:
    users = [m.content for m in conv.prompt_messages() if m.role == "user"]
    return users[-1] if users else ""


def sample_table(indices: Sequence[int], test, references, base: dict | None, tuned: dict, metric: str) -> str:
    if not indices:
        return '<p class="sub">none</p>'
    rows = []
    for i in list(indices)[:MAX_SAMPLES]:
        cells = [
            f"<td><pre>{escape(_question(test[i]))}</pre><span class='sub'>{escape(str(test[i].origin))}</span></td>",
            f"<td><pre>{escape(references[i])}</pre></td>",
        ]
        for res in ([base] if base is not None else []) + [tuned]:
            s = res["per_example"][i][metric]
            answer = res["answers"][i]
            shown = word_diff(references[i], answer) if answer.strip() else "<i>(empty answer)</i>"
            cells.append(f"<td><pre>{shown}</pre><span class='sub'>{metric} {_pct(s)}</span></td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    more = (
        f'<p class="sub">{len(indices) - MAX_SAMPLES} more in predictions.jsonl</p>'
        if len(indices) > MAX_SAMPLES
        else ""
    )
    head = (
        "<th>input</th><th>reference</th>"
        + ("<th>baseline answer</th>" if base is not None else "")
        + "<th>tuned answer</th>"
    )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{more}"


def render_html(
    summary: dict,
    test,
    references,
    results: dict,
    comparisons: dict,
    records: list[dict],
    search: dict | None = None,
) -> str:
    """The whole report as one HTML string; `search` (a run's search.json) adds the hyper-parameter search."""
    task, systems = summary["task"], summary["systems"]
    primary = task["primary"]
    cards = []
    for s in systems.values():
        m = s["metrics"][primary]
        cards.append(
            f'<div class="card">{escape(s["title"])}<b>{_pct(m["value"])}</b>'
            f'<span class="ci">{primary}, 95% CI {_ci(m)}</span></div>'
        )
    vs = []
    for key, c in summary["tuned_vs"].items():
        cls = "good" if c["ci"][0] > 0 else "bad" if c["ci"][1] < 0 else ""
        vs.append(
            f'<li>tuned vs {escape(systems[key]["title"])}: <b class="{cls}">{c["delta"] * 100:+.1f}</b> '
            f"points {primary} (95% CI [{c['ci'][0] * 100:+.1f}, {c['ci'][1] * 100:+.1f}]); fixed {c['fixed']}, "
            f"broke {c['broke']} examples</li>"
        )
    names = list(next(iter(systems.values()))["metrics"])
    bars = "".join(f'<div class="panel"><b>{escape(n)}</b>{metric_bars(n, systems)}</div>' for n in names)
    loss_rows = "".join(
        f'<tr><td>{escape(s["title"])}</td><td class="num">{s["loss"]["eval_loss"]:.4f}</td>'
        f'<td class="num">{s["loss"]["perplexity"]:.2f}</td><td class="num">{_pct(s["loss"]["token_accuracy"])}</td>'
        f'<td class="num">{s["examples_per_s"]:.2f}</td><td>{escape(s["description"])}</td></tr>'
        for s in systems.values()
    )
    sections = [
        f'<h1>tunesmith eval</h1><p class="sub">{escape(summary["run_dir"])} · {summary["examples"]} examples from '
        f"{escape(summary['data'])} · {escape(task['kind'])} task · answers by {escape(summary['method'])} · "
        f"{summary['bootstrap']['resamples']} bootstrap resamples</p>",
        f'<div class="cards">{"".join(cards)}</div><ul>{"".join(vs)}</ul>',
        f'<h2>Metrics per system (0-100, whiskers: 95% CI)</h2><div class="grid">{bars}</div>',
        f'<h2>Loss curves</h2><div class="panel">{loss_curves(records)}</div>',
    ]
    if search is not None:
        sections.append(search_report.html_section(search))
    if task["kind"] == "label":
        sections.append(
            f'<h2>Confusion matrices</h2><div class="panel">{confusion_tables(systems, task["labels"])}</div>'
        )
    if comparisons:
        keys = list(comparisons)
        tabs = "".join(
            f'<button data-tab="{escape(k)}" class="{"on" if i == 0 else ""}">vs {escape(systems[k]["title"])}</button>'
            for i, k in enumerate(keys)
        )
        blocks = []
        for i, k in enumerate(keys):
            c = comparisons[k]
            blocks.append(
                f'<div data-group="diff" data-tab="{escape(k)}" class="{"" if i == 0 else "hidden"}">'
                f'<h3 class="good">fixed by tuning ({len(c["fixed"])})</h3>'
                f"{sample_table(c['fixed'], test, references, results[k], results['tuned'], primary)}"
                f'<h3 class="bad">broken by tuning ({len(c["broke"])})</h3>'
                f"{sample_table(c['broke'], test, references, results[k], results['tuned'], primary)}</div>"
            )
        sections.append(
            f'<h2>What tuning fixed and broke</h2><div class="panel"><div class="tabs" data-group="diff">'
            f"{tabs}</div>{''.join(blocks)}</div>"
        )
    fails = [i for i, row in enumerate(results["tuned"]["per_example"]) if row[primary] < 0.5]
    sections.append(
        f'<h2>Where the tuned model still fails ({len(fails)})</h2><div class="panel">'
        f"{sample_table(fails, test, references, None, results['tuned'], primary)}</div>"
    )
    sections.append(
        '<h2>Held-out loss and speed</h2><div class="panel"><table><tr><th>system</th>'
        '<th class="num">loss</th><th class="num">perplexity</th><th class="num">token acc.</th>'
        f'<th class="num">examples/s</th><th>how</th></tr>{loss_rows}</table></div>'
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>tunesmith eval</title>'
        f"<style>{CSS}</style></head><body><main>{''.join(sections)}</main><script>{JS}</script></body></html>"
    )


def render_markdown(summary: dict, search: dict | None = None) -> str:
    """A short markdown summary: metrics per system with intervals, tuned minus each baseline, and the
    hyper-parameter search's choice and trials when `search` (a run's search.json) is given."""
    systems = summary["systems"]
    names = list(next(iter(systems.values()))["metrics"])
    lines = [
        f"# tunesmith eval: {summary['run_dir']}",
        "",
        f"{summary['examples']} examples from `{summary['data']}`, {summary['task']['kind']} task, "
        f"primary metric **{summary['task']['primary']}**, 95% bootstrap CIs.",
        "",
        "| metric | " + " | ".join(s["title"] for s in systems.values()) + " |",
        "|---|" + "---:|" * len(systems),
    ]
    for n in names:
        lines.append(
            f"| {n} | "
            + " | ".join(f"{_pct(s['metrics'][n]['value'])} {_ci(s['metrics'][n])}" for s in systems.values())
            + " |"
        )
    lines.append("| held-out loss | " + " | ".join(f"{s['loss']['eval_loss']:.4f}" for s in systems.values()) + " |")
    lines.append("")
    for key, c in summary["tuned_vs"].items():
        lines.append(
            f"- tuned vs {systems[key]['title']}: {c['delta'] * 100:+.1f} points {c['metric']} "
            f"(95% CI [{c['ci'][0] * 100:+.1f}, {c['ci'][1] * 100:+.1f}]), fixed {c['fixed']}, "
            f"broke {c['broke']}"
        )
    if search is not None:
        while lines[-1] == "":
            lines.pop()
        lines += ["", search_report.markdown_section(search).rstrip("\n")]
    return "\n".join(lines) + "\n"


def write_reports(
    out: RunFolder,
    summary: dict,
    test,
    references,
    results: dict,
    comparisons: dict,
    metrics_path: Path,
    search_path: Path | None = None,
) -> None:
    """report.html and report.md into the folder `out`. The run's search.json (default: next to its
    metrics.jsonl) adds the hyper-parameter search section when it exists."""
    records = read_metrics(metrics_path)
    search = search_report.read_search(search_path or RunFolder(Path(metrics_path).parent).search)
    html = render_html(summary, test, references, results, comparisons, records, search)
    atomic_write_text(out.report_html, html)
    atomic_write_text(out.report_md, render_markdown(summary, search))
