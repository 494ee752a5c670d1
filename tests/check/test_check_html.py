"""The HTML report of `tunesmith check`: findings grouped by check (errors first and open, with a hint on how to
fix each), numbers rounded, charts with axis titles; and the whole page in real headless Chromium
(`tests/chromium.py`): nothing clipped, the groups open on a click, a screenshot (check.png) to look at."""

from __future__ import annotations

import json
import re
from html import escape

from test_report import crafted

import chromium
from chromium import layout_problems, open_page, page_errors, screenshot
from tunesmith.check import load, render_html, run_check
from tunesmith.check.findings import Finding, Report
from tunesmith.check.hints import HINTS
from tunesmith.check.report_html import histogram, number

browser = chromium.browser  # the fixture
GROUP = re.compile(r'<details class="group" data-severity="(\w+)" data-check="(\w+)" data-count="(\d+)"( open)?>')


def distribution(counts: list[int], bin_width: int = 10) -> dict:
    return {"n": sum(counts), "histogram": {"bin_width": bin_width, "counts": counts}}


def test_numbers_read_like_numbers():
    assert [number(v) for v in (123.456789, 1234.5678, 12.3456, 0.0123456, 3.0, 0.0)] == [
        "123",
        "1,235",
        "12.3",
        "0.0123",
        "3",
        "0",
    ]
    assert [number(v) for v in (1234567, 0, True, None, "cpu", [0.0002, 5e-05], [10, 20])] == [
        "1,234,567",
        "0",
        "True",
        "–",
        "cpu",
        "0.0002, 5e-05",
        "10, 20",
    ]


def test_findings_are_grouped_by_check_worst_first():
    report = Report(model="m", files={"train": "t.jsonl"}, max_length=64)
    report.findings = [
        *(Finding("error", "format", "invalid JSON", origin=f"t.jsonl:{i}") for i in (1, 2, 3)),
        Finding("error", "no_trained_tokens", "no training row keeps a trained token", origin="t.jsonl"),
        Finding("warning", "duplicate", "exact duplicate of t.jsonl:4", origin="t.jsonl:9"),
        Finding("warning", "no_trained_tokens", "no trained token left", origin="t.jsonl:5"),
        Finding("warning", "made_up", "a check without a hint"),
        Finding("warning", "duplicate", "exact duplicate of t.jsonl:4", origin="t.jsonl:10"),
        Finding("info", "pad_is_eos", "pad = eos"),
    ]
    report.truncated_findings["format"] = 7
    page = render_html(report)
    groups = GROUP.findall(page)
    assert groups == [
        ("error", "format", "10", " open"),
        ("error", "no_trained_tokens", "2", " open"),
        ("warning", "duplicate", "2", ""),
        ("warning", "made_up", "1", ""),
        ("info", "pad_is_eos", "1", ""),
    ]
    blocks = dict(zip([g[1] for g in groups], page.split('<details class="group"')[1:]))
    assert '<span class="error">11 errors</span>' in page  # those left out count too, as in their group
    assert "10 findings, 7 not listed" in blocks["format"] and "and 7 more, counted but not listed" in blocks["format"]
    assert "2 findings</span>" in blocks["duplicate"] and "1 finding</span>" in blocks["made_up"]
    for check in ("format", "no_trained_tokens", "duplicate", "pad_is_eos"):
        shown = re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(HINTS[check]))
        assert f'<p class="hint"><b>How to fix:</b> {shown}</p>' in blocks[check]
    assert "How to fix" not in blocks["made_up"]  # no hint, no placeholder
    # columns only where they say something: severity where a check mixes them, no "where" without origins
    assert "<th>severity</th>" in blocks["no_trained_tokens"] and "<th>severity</th>" not in blocks["duplicate"]
    assert "<th>where</th>" in blocks["duplicate"] and "<th>where</th>" not in blocks["pad_is_eos"]
    assert "<th>field</th>" not in page
    clean = Report(model="m", files={"train": "t.jsonl"}, max_length=64)
    assert '<p class="ok">No problems found.</p>' in render_html(clean) and "<details" not in render_html(clean)


def test_estimate_and_charts_are_rounded_and_labelled():
    report = Report(model="m", files={"train": "t.jsonl"}, max_length=64)
    report.estimate = {
        "steps": 12345,
        "epochs": 3.0,
        "memory_mb": {"weights": 123.456789, "peak_rss": 2345.6789},
        "time_s": {"train": 0.123456789, "total": 45.678901},
    }
    page = render_html(report)
    for shown in ("12,345", ">3<", ">123<", ">2,346<", ">0.123<", ">45.7<"):
        assert shown in page, shown
    assert not re.search(r"\d\.\d{4,}", page)
    svg = histogram("total", "train", distribution([5, 123456, 7]), 20)
    assert ">123,456</text>" in svg and ">tokens</text>" in svg and ">rows</text>" in svg
    assert "n=123,468" in svg and "max_length 20" in svg
    y_axis = re.compile(r'<line x1="(\d+)" x2="\1"')  # the y axis, at the left margin
    narrow = y_axis.search(histogram("total", "train", distribution([1, 2]), 20))
    wide = y_axis.search(histogram("total", "train", distribution([1, 1234567]), 20))
    assert narrow and wide and int(wide.group(1)) >= int(narrow.group(1)) + 36  # room for 8 more characters


def test_check_report_in_chromium(tmp_path, tiny_llama_dir, browser, monkeypatch):
    """A real check (format errors past the per-check limit, warnings, a note) rendered and opened in Chromium."""
    crafted(tmp_path)
    with open(tmp_path / "train.jsonl", "a") as f:
        f.write('{"messages": [\n{not json\n[1, 2]\n"a string"\n')  # 4 format errors; 2 listed (limit=2)
    monkeypatch.chdir(tmp_path)
    report = run_check(
        load("train.jsonl", ["data.eval=eval.jsonl"], model=str(tiny_llama_dir)), calibrate=False, limit=2
    )
    # the widest y label a chart can need, and an estimate with the raw floats a calibration produces
    report.lengths["many"] = {"total": distribution([0, 120_000, 1_234_567, 80_000, 3_000, 12] + [0] * 18, 32)}
    report.estimate = {**(report.estimate or {}), "memory_mb": {"weights": 123.456789}, "time_s": {"train": 9.87654}}
    (tmp_path / "check.html").write_text(render_html(report), encoding="utf-8")
    expected = {"format": 4, "duplicate": 2, "near_duplicate": 2, "conflict": 1, "leak": 1, "near_leak": 1, "pii": 6}
    expected["pad_is_eos"] = 1  # the tiny model's pad is its eos: the one note
    assert report.truncated_findings == {"format": 2}

    open_page(browser, tmp_path / "check.html")
    browser.call("Emulation.setDeviceMetricsOverride", width=1200, height=900, deviceScaleFactor=1, mobile=False)
    groups = json.loads(
        browser.evaluate("""JSON.stringify(Array.from(document.querySelectorAll('details.group')).map(function (d) {
          var hint = d.querySelector('p.hint');
          return {check: d.dataset.check, severity: d.dataset.severity, open: d.open,
                  summary: d.querySelector('summary').innerText, hint: hint && hint.textContent,
                  rows: d.querySelectorAll('table.findings tr').length - 1};
        }))""")
    )
    assert {g["check"]: int(g["summary"].split(" · ")[1].split()[0]) for g in groups} == expected
    order = [g["severity"] for g in groups]
    assert order == sorted(order, key=["error", "warning", "info"].index) and order[0] == "error" and "info" in order
    assert [g["check"] for g in groups if g["open"]] == ["format"]  # errors open, the rest closed
    format_group = groups[0]
    assert format_group["summary"] == "error format · 4 findings, 2 not listed" and format_group["rows"] == 2
    for g in groups:
        assert g["hint"] == "How to fix: " + HINTS[g["check"]].replace("`", ""), g["check"]
    # a click on a closed group's summary opens it, on an open one closes it
    clicked = browser.evaluate("""(function () {
        var groups = ['pii', 'format'].map(function (c) { return document.querySelector('[data-check="' + c + '"]'); });
        var before = groups.map(function (d) { return d.open; });
        groups.forEach(function (d) { d.querySelector('summary').click(); });
        return before.concat(groups.map(function (d) { return d.open; }));
    })()""")
    assert clicked == [False, True, True, False]

    browser.evaluate("document.querySelectorAll('details').forEach(function (d) { d.open = true; })")
    assert layout_problems(browser) == {"outside": [], "overlapping": [], "overflowing": []}
    assert browser.evaluate("document.querySelectorAll('svg.hist').length") == 7  # train and eval x 3, "many"
    shown = json.loads(
        browser.evaluate("""JSON.stringify({svg: Array.from(document.querySelectorAll('svg.hist text'), function (t) {
            return t.textContent; }), cells: Array.from(document.querySelectorAll('td.n'), function (t) {
            return t.textContent; }), text: document.body.innerText,
            totals: document.querySelector('h1 + p + p').innerText})""")
    )
    assert shown["totals"] == "4 errors · 13 warnings · 1 note"  # the format errors left out count too
    assert "1,234,567" in shown["svg"] and "rows" in shown["svg"] and "tokens" in shown["svg"]
    assert "123" in shown["cells"] and "9.88" in shown["cells"] and not re.search(r"\d\.\d{4,}", shown["text"])
    png = screenshot(browser, tmp_path / "check.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert page_errors(browser) == []
