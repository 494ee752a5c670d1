"""The report for people: one self-contained HTML file (inline CSS and SVG, no network, a few lines of JS)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from html import escape

from tunesmith.check.findings import Finding, Report
from tunesmith.check.hints import hint

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:2px 10px;border-bottom:1px solid #eee;text-align:left;
vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}
.error{color:#b00020;font-weight:600}.warning{color:#9a6700}.info{color:#1f5fa8}
.plots{display:flex;flex-wrap:wrap;gap:1em}.plot{border:1px solid #eee;padding:.4em}
.sample{white-space:pre-wrap;font:12px/1.5 ui-monospace,monospace;background:#fafafa;border:1px solid #eee;
padding:.6em;overflow-wrap:anywhere}
mark.t{background:#b7f0b1;color:#000;border-bottom:2px solid #2e8b2e}span.p{color:#777}
sub.id{display:none;color:#0a6;font-size:9px}body.ids sub.id{display:inline}
.ok{color:#1a7f37;font-weight:600}
details.group{border:1px solid #e3e3e3;border-left:4px solid #1f5fa8;border-radius:4px;margin:.5em 0;padding:0 .7em}
details.group[data-severity=error]{border-left-color:#b00020}details.group[data-severity=warning]{border-left-color:#d4a72c}
details.group>summary{cursor:pointer;padding:.4em 0}details.group[open]>summary{border-bottom:1px solid #eee}
.sev{display:inline-block;min-width:4.6em;padding:0 .3em;border-radius:3px;font-size:12px;text-align:center}
.sev.error{background:#fde7ea}.sev.warning{background:#fff4d6}.sev.info{background:#e6f0fb}
.count{color:#555}.more{color:#555;font-style:italic}
.hint{margin:.5em 0;padding:.4em .6em;background:#f4f7fa;border-radius:3px}
code{font:12px ui-monospace,monospace;background:#eceff2;padding:0 .2em;border-radius:2px}
table.findings{width:100%;table-layout:fixed}table.findings td{overflow-wrap:anywhere}
"""
SCRIPT = """
document.body.setAttribute('data-ready', 'yes');
document.getElementById('ids').addEventListener('change', function (e) {
  document.body.classList.toggle('ids', e.target.checked);
});
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
ORDER = {"error": 0, "warning": 1, "info": 2}


def number(v) -> str:
    """A value as people read it: ints with thousands separators, floats to about 3 significant digits."""
    if isinstance(v, list):
        return ", ".join(number(x) for x in v)
    if v is None:
        return "–"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if not math.isfinite(v):
        return str(v)
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def histogram(kind: str, split: str, d: dict, max_length: int, width: int = 320, height: int = 170) -> str:
    """An SVG bar chart of one length distribution (tokens across, rows up), with max_length as a red line."""
    counts, bin_width = d["histogram"]["counts"], d["histogram"]["bin_width"]
    top = max(counts) or 1
    # the left margin holds the rotated "rows" title and the widest y label (10 px digits: under 6 px each)
    left, right, above, below = 18 + 6 * len(f"{top:,}"), 8, 20, 34
    w, h = width - left - right, height - above - below
    base, upper = above + h, bin_width * len(counts)
    bar = w / len(counts)
    parts = [
        f'<svg class="hist" data-split="{split}" data-kind="{kind}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" role="img">',
        f"<title>{escape(split)} {escape(kind)} tokens</title>",
        f'<text x="4" y="12" font-size="11">{escape(split)} · {escape(kind)} tokens (n={d["n"]:,})</text>',
    ]
    for i, c in enumerate(counts):
        bh = h * c / top
        parts.append(
            f'<rect x="{left + i * bar:.1f}" y="{base - bh:.1f}" width="{max(bar - 1, 1):.1f}" '
            f'height="{bh:.1f}" fill="#4c78a8"><title>{i * bin_width:,}–{(i + 1) * bin_width - 1:,} tokens: '
            f"{c:,} row{'s' * (c != 1)}</title></rect>"
        )
    x = left + w * min(max_length / upper, 1)
    # the red line's label inside the plot, on the side with room, haloed so bars do not hide it
    anchor, lx = ("end", x - 3) if x > left + w / 2 else ("start", x + 3)
    parts += [
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{above - 2}" y2="{base}" stroke="#d62728" stroke-dasharray="4 2"/>',
        f'<line x1="{left}" x2="{left + w}" y1="{base}" y2="{base}" stroke="#999"/>',
        f'<line x1="{left}" x2="{left}" y1="{above}" y2="{base}" stroke="#999"/>',
        f'<text x="{lx:.1f}" y="{above + 9}" font-size="10" fill="#d62728" text-anchor="{anchor}" stroke="#fff" '
        f'stroke-width="3" paint-order="stroke">max_length {max_length:,}</text>',
        f'<text x="{left}" y="{base + 12}" font-size="10">0</text>',
        f'<text x="{left + w}" y="{base + 12}" font-size="10" text-anchor="end">{upper:,}</text>',
        f'<text x="{left + w / 2:.1f}" y="{height - 5}" font-size="10" fill="#555" text-anchor="middle">tokens</text>',
        f'<text x="{left - 4}" y="{above + 8}" font-size="10" text-anchor="end">{top:,}</text>',
        f'<text x="{left - 4}" y="{base}" font-size="10" text-anchor="end">0</text>',
        f'<text transform="rotate(-90)" x="{-(above + h / 2):.1f}" y="11" font-size="10" fill="#555" '
        'text-anchor="middle">rows</text></svg>',
    ]
    return "".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' * (n != 1)}"


def _inline(text: str) -> str:
    """Plain text with `code` spans, as HTML."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def _groups(report: Report) -> list[tuple[str, str, list[Finding], int]]:
    """(worst severity, check, findings listed, findings in all) per check: errors first, then report order."""
    by_check: dict[str, list[Finding]] = {}
    for f in report.findings:
        by_check.setdefault(f.check, []).append(f)
    for check in report.truncated_findings:
        by_check.setdefault(check, [])
    groups = []
    for check, found in by_check.items():
        # a check whose findings were all left out counts as an error, as the terminal counts it
        worst = min((f.severity for f in found), key=ORDER.__getitem__, default="error")
        groups.append((worst, check, found, len(found) + report.truncated_findings.get(check, 0)))
    return sorted(groups, key=lambda g: ORDER[g[0]])


def _group(severity: str, check: str, found: list[Finding], total: int) -> str:
    """One check's findings as a collapsible block (open for errors), with the hint on how to fix them."""
    left_out = total - len(found)
    # a column only where it says something (severity only where a check mixes them: no_trained_tokens), as wide
    # as its longest value up to 40 characters; the message takes the rest of the line
    columns: list[tuple[str, Callable[[Finding], str]]] = []
    if len({f.severity for f in found}) > 1:
        columns.append(("severity", lambda f: f.severity))
    if any(f.origin for f in found):
        columns.append(("where", lambda f: f.origin or ""))
    if any(f.field for f in found):
        columns.append(("field", lambda f: f.field or ""))
    widths = "".join(
        f'<col style="width:calc({min(40, max(len(name), *(len(cell(f)) for f in found)))}ch + 22px)">'
        for name, cell in columns
    )
    columns.append(("what", lambda f: f.message))
    table = (
        f'<table class="findings">{widths}<col><tr>'
        + "".join(f"<th>{name}</th>" for name, _ in columns)
        + "</tr>"
        + "".join(
            "<tr>"
            + "".join(
                f'<td class="{name}{" " + f.severity if name == "severity" else ""}">{escape(cell(f))}</td>'
                for name, cell in columns
            )
            + "</tr>"
            for f in found
        )
        + "</table>"
    )
    count = _count(total, "finding") + (f", {left_out:,} not listed" if left_out else "")
    fix = hint(check)
    return (
        f'<details class="group" data-severity="{severity}" data-check="{escape(check)}" data-count="{total}"'
        f'{" open" if severity == "error" else ""}><summary><span class="sev {severity}">{severity}</span> '
        f'<b>{escape(check)}</b> · <span class="count">{count}</span></summary>'
        + (f'<p class="hint"><b>How to fix:</b> {_inline(fix)}</p>' if fix else "")
        + (table if found else "")
        + (f'<p class="more">... and {left_out:,} more, counted but not listed.</p>' if left_out else "")
        + "</details>"
    )


def _findings(report: Report) -> str:
    if not report.findings and not report.truncated_findings:
        return '<p class="ok">No problems found.</p>'
    return "".join(_group(*g) for g in _groups(report))


def _sample(sample: dict) -> str:
    body = "".join(
        (
            f'<mark class="t">{escape(p["text"])}</mark>'
            if p["trained"]
            else f'<span class="p">{escape(p["text"])}</span>'
        )
        + f'<sub class="id">{p["id"]}</sub>'
        for p in sample["pieces"]
    )
    return (
        f"<h3>{escape(sample['origin'])}: {sample['tokens']} tokens, {sample['trained']} trained"
        f'{" (truncated)" if sample["truncated"] else ""}</h3><div class="sample">{body}</div>'
    )


def _table(mapping: dict) -> str:
    return (
        "<table>"
        + "".join(
            f'<tr><td>{escape(str(k))}</td><td class="n">{escape(number(v))}</td></tr>' for k, v in mapping.items()
        )
        + "</table>"
    )


def _estimate(e: dict | None) -> str:
    if not e:
        return ""
    flat = {k: v for k, v in e.items() if not isinstance(v, (dict, list))}
    parts = [_table(flat)]
    if "memory_mb" in e:
        parts += ["<h3>peak memory (MB)</h3>", _table(e["memory_mb"]), "<h3>time (s)</h3>", _table(e["time_s"])]
    if "cost" in e:
        parts += ["<h3>cost</h3>", _table(e["cost"])]
    if "recipe" in e:
        parts += ["<h3>auto recipe (learning-rate search and final run)</h3>", _table(e["recipe"])]
    return "".join(parts)


def _balance(balance: dict | None) -> str:
    if not balance:
        return ""
    counts = balance["counts"]
    top = max(counts.values())
    rows = "".join(
        f'<g><text x="0" y="{14 + 18 * i}" font-size="11">{escape(str(k))[:24]}</text>'
        f'<rect x="150" y="{4 + 18 * i}" width="{300 * v / top:.1f}" height="13" fill="#59a14f"/>'
        f'<text x="{155 + 300 * v / top:.1f}" y="{14 + 18 * i}" font-size="11">{v:,}</text></g>'
        for i, (k, v) in enumerate(counts.items())
    )
    return (
        f'<h2>Label balance ({escape(balance["source"])})</h2><svg class="balance" width="520" '
        f'height="{18 * len(counts) + 8}" xmlns="http://www.w3.org/2000/svg">{rows}</svg>'
    )


def render_html(report: Report) -> str:
    """The whole report as one HTML document."""
    summary = {s: len(report.of(s)) for s in ORDER}
    for severity, _, found, total in _groups(report):  # findings left out by a limit count, as in their group
        summary[severity] += total - len(found)
    plots = "".join(
        histogram(kind, split, d, report.max_length)
        for split, kinds in report.lengths.items()
        for kind, d in kinds.items()
        if d.get("n")
    )
    files = ", ".join(f"{k}: {escape(v)}" for k, v in report.files.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>tunesmith check: {escape(report.model)}</title><style>{CSS}</style></head>
<body>
<h1>tunesmith check</h1>
<p>model <b>{escape(report.model)}</b> · {files} · max_length {report.max_length}</p>
<p><span class="error">{_count(summary["error"], "error")}</span> ·
<span class="warning">{_count(summary["warning"], "warning")}</span> ·
<span class="info">{_count(summary["info"], "note")}</span></p>
<h2>Problems</h2>{_findings(report)}
<h2>Training contract</h2>{_table(report.contract)}
<h2>Token lengths</h2><div class="plots">{plots}</div>
{_balance(report.label_balance)}
<h2>Estimate</h2>{_estimate(report.estimate)}
<h2>Masked-token samples</h2>
<p><mark class="t">trained</mark> <span class="p">not trained</span> ·
<label><input type="checkbox" id="ids"> show token ids</label></p>
{"".join(_sample(s) for s in report.samples)}
<script>{SCRIPT}</script>
</body></html>
"""
