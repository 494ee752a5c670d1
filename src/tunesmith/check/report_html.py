"""The report for people: one self-contained HTML file (inline CSS and SVG, no network, a few lines of JS)."""

from __future__ import annotations

from html import escape

from tunesmith.check.findings import Report

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
"""
SCRIPT = """
document.body.setAttribute('data-ready', 'yes');
document.getElementById('ids').addEventListener('change', function (e) {
  document.body.classList.toggle('ids', e.target.checked);
});
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def histogram(kind: str, split: str, d: dict, max_length: int, width: int = 320, height: int = 150) -> str:
    """An SVG bar chart of one length distribution, with max_length as a red line."""
    counts, bin_width = d["histogram"]["counts"], d["histogram"]["bin_width"]
    top = max(counts) or 1
    left, bottom = 36, 22
    w, h = width - left - 6, height - bottom - 18
    bar = w / len(counts)
    parts = [
        f'<svg class="hist" data-split="{split}" data-kind="{kind}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" role="img">',
        f"<title>{escape(split)} {escape(kind)} tokens</title>",
        f'<text x="{left}" y="12" font-size="11">{escape(split)} · {escape(kind)} tokens (n={d["n"]})</text>',
    ]
    for i, c in enumerate(counts):
        bh = h * c / top
        parts.append(
            f'<rect x="{left + i * bar:.1f}" y="{18 + h - bh:.1f}" width="{max(bar - 1, 1):.1f}" '
            f'height="{bh:.1f}" fill="#4c78a8"><title>{i * bin_width}-{(i + 1) * bin_width - 1}: {c}'
            "</title></rect>"
        )
    x = left + w * min(max_length / (bin_width * len(counts)), 1)
    parts += [
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="16" y2="{18 + h}" stroke="#d62728" stroke-dasharray="4 2"/>',
        f'<line x1="{left}" x2="{left + w}" y1="{18 + h}" y2="{18 + h}" stroke="#999"/>',
        f'<text x="{left}" y="{height - 6}" font-size="10">0</text>',
        f'<text x="{left + w}" y="{height - 6}" font-size="10" text-anchor="end">{bin_width * len(counts)}</text>',
        f'<text x="{x:.1f}" y="{height - 6}" font-size="10" fill="#d62728" text-anchor="middle">max_length</text>',
        f'<text x="{left - 4}" y="24" font-size="10" text-anchor="end">{top}</text></svg>',
    ]
    return "".join(parts)


def _findings(report: Report) -> str:
    if not report.findings:
        return '<p class="ok">No problems found.</p>'
    rows = "".join(
        f'<tr><td class="{f.severity}">{f.severity}</td><td>{escape(f.check)}</td>'
        f"<td>{escape(f.origin or '')}</td><td>{escape(f.field or '')}</td><td>{escape(f.message)}</td></tr>"
        for f in report.findings
    )
    more = "".join(f"<p>... and {n} more {escape(k)} findings.</p>" for k, n in report.truncated_findings.items())
    return (
        f"<table><tr><th>severity</th><th>check</th><th>where</th><th>field</th><th>what</th></tr>{rows}</table>{more}"
    )


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
        + "".join(f'<tr><td>{escape(str(k))}</td><td class="n">{escape(str(v))}</td></tr>' for k, v in mapping.items())
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
        f'<text x="{155 + 300 * v / top:.1f}" y="{14 + 18 * i}" font-size="11">{v}</text></g>'
        for i, (k, v) in enumerate(counts.items())
    )
    return (
        f'<h2>Label balance ({escape(balance["source"])})</h2><svg class="balance" width="520" '
        f'height="{18 * len(counts) + 8}" xmlns="http://www.w3.org/2000/svg">{rows}</svg>'
    )


def render_html(report: Report) -> str:
    """The whole report as one HTML document."""
    summary = {s: len(report.of(s)) for s in ("error", "warning", "info")}
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
<p><span class="error">{summary["error"]} errors</span> · <span class="warning">{summary["warning"]} warnings</span> ·
<span class="info">{summary["info"]} notes</span></p>
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
