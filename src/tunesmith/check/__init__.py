"""`tunesmith check`: the training contract and a data-quality report, before any training.

    from tunesmith.check import load, run_check
    report = run_check(load("examples/support/config.yaml"))
    print(report.exit_code(), [f.line() for f in report.findings])
"""

from tunesmith.check.findings import Finding, Report
from tunesmith.check.report_html import render_html
from tunesmith.check.run import is_data_file, load, run_check

__all__ = ["Finding", "Report", "is_data_file", "load", "render_html", "run_check"]
