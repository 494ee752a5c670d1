"""The report renders in real headless Chromium (Debian `chromium`): no console errors, the charts are there,
and the tabs work. Chromium is driven over the DevTools protocol (`tests/chromium.py`)."""

import base64
import json

import pytest
from searchrecord import RESULTS, loss_record, search_record, single_trial_record, summary

import chromium
from chromium import open_page, page_errors
from tunesmith.evaluate.report import write_reports
from tunesmith.runfolder import RunFolder

browser = chromium.browser  # the fixture


def test_report_renders_without_errors(tuned_run, browser):
    open_page(browser, tuned_run.run_dir / "report.html")
    counts = browser.evaluate(
        "JSON.stringify({bars: document.querySelectorAll('svg.chart.bars rect').length,"
        "charts: document.querySelectorAll('svg.bars').length,"
        "curve: document.querySelectorAll('svg.curves polyline').length,"
        "cm: document.querySelectorAll('table.cm').length,"
        "width: document.querySelector('svg.bars').getBoundingClientRect().width})"
    )
    counts = json.loads(counts)
    assert counts["charts"] >= 6 and counts["bars"] == 3 * counts["charts"]  # 3 systems per metric chart
    assert counts["curve"] == 1 and counts["cm"] == 3 and counts["width"] > 100
    # the tabs work: clicking "base zero-shot" shows its confusion matrix and hides the tuned one
    shown = browser.evaluate("""(function(){
        var b = document.querySelector('.tabs[data-group="cm"] button[data-tab="base_zero_shot"]'); b.click();
        return [document.querySelector('[data-group="cm"][data-tab="base_zero_shot"]').classList.contains('hidden'),
                document.querySelector('[data-group="cm"][data-tab="tuned"]').classList.contains('hidden')];})()""")
    assert shown == [False, True]
    assert "Hyper-parameter search" not in browser.evaluate("document.body.innerText")  # no search.json: no section
    assert page_errors(browser) == []


@pytest.mark.parametrize(
    ("record", "trials"),
    [(search_record, 4), (loss_record, 4), (single_trial_record, 1)],
    ids=["accuracy", "loss", "one"],
)
def test_search_section_renders(tmp_path, browser, record, trials):
    """A synthetic search.json: both plots drawn at full size, every label inside its plot, the chosen trial
    marked; a screenshot of the section is kept in the test's folder (search.png) to look at."""
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    run.search.write_text(json.dumps(record()))
    write_reports(run, summary(), [], [], RESULTS, {}, run.metrics)
    open_page(browser, run.report_html)
    browser.call("Emulation.setDeviceMetricsOverride", width=1200, height=900, deviceScaleFactor=1, mobile=False)
    facts = json.loads(
        browser.evaluate("""JSON.stringify((function(){
        var svgs = Array.from(document.querySelectorAll('svg.chart.search'));
        var outside = [];
        svgs.forEach(function(svg){
          var w = svg.width.baseVal.value, h = svg.height.baseVal.value;
          svg.querySelectorAll('text').forEach(function(t){
            var b = t.getBBox(), m = t.getCTM(), x = b.x * m.a + m.e, y = b.y * m.d + m.f;
            if (t.getAttribute('transform')) { return; }  // the rotated axis label: in the left margin
            if (x < 0 || y < 0 || x + b.width > w + 0.5 || y + b.height > h + 0.5) { outside.push(t.textContent); }
          });
        });
        var section = document.querySelector('.panel.search').getBoundingClientRect();
        return {plots: svgs.map(function(s){ return Math.round(s.getBoundingClientRect().width); }),
                chosen: document.querySelectorAll('svg.search circle.chosen, svg.search polyline.chosen').length,
                rows: document.querySelectorAll('table.search-trials tr').length, outside: outside,
                clip: {x: section.x, y: section.y + window.scrollY, width: section.width, height: section.height}};
        })())""")
    )
    assert facts["plots"] == [370, 620] and facts["chosen"] == 2 and facts["rows"] == 1 + trials
    assert facts["outside"] == []
    shot = browser.call(
        "Page.captureScreenshot", format="png", clip={**facts["clip"], "scale": 1}, captureBeyondViewport=True
    )
    png = base64.b64decode(shot["data"])
    (tmp_path / "search.png").write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert page_errors(browser) == []


def test_devtools_client_sees_console_errors(tmp_path, browser):
    """The check above can fail: a page with a broken script is reported."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    target = browser.call("Target.createTarget", url="about:blank")["targetId"]
    browser.session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    browser.call("Runtime.enable")
    browser.call("Page.enable")
    browser.call("Page.navigate", url=page.as_uri())
    event = browser.wait_for("Runtime.exceptionThrown")
    assert "undefinedFunction" in json.dumps(event)
