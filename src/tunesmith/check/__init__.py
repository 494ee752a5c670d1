"""`tunesmith check`: the training contract and a data-quality report, before any training.

from tunesmith.check import load, run_check
report = run_check(load("examples/support/config.yaml"))
print(report.exit_code(), [f.line() for f in report.findings])
"""

from tunesmith.check.findings import Finding, Report
from tunesmith.check.report_html import render_html
from tunesmith.check.run import run_check
from tunesmith.config import is_data_file
from tunesmith.config import load_target as load  # a YAML config, or a data file with defaults

__all__ = ["Finding", "Report", "is_data_file", "load", "render_html", "run_check"]
