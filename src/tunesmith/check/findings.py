"""What `tunesmith check` reports: every `Finding` (see `tunesmith/findings.py`) and the figures behind them."""

from __future__ import annotations

from dataclasses import dataclass, field

from tunesmith.findings import SEVERITIES, Finding, from_error

__all__ = ["Finding", "Report", "from_error"]


@dataclass
class Report:
    """Everything `tunesmith check` found; `to_dict` is the `--json` document."""

    model: str
    files: dict[str, str]
    max_length: int
    findings: list[Finding] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    contract: dict = field(default_factory=dict)
    lengths: dict = field(default_factory=dict)
    label_balance: dict | None = None
    samples: list[dict] = field(default_factory=list)
    estimate: dict | None = None
    truncated_findings: dict[str, int] = field(default_factory=dict)  # check -> findings left out by the limit

    def of(self, severity: str) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    def exit_code(self, strict: bool = False) -> int:
        """0 clean, 1 warnings (only with strict), 2 errors."""
        if self.of("error"):
            return 2
        if strict and self.of("warning"):
            return 1
        return 0

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "files": self.files,
            "max_length": self.max_length,
            "summary": {s: len(self.of(s)) for s in SEVERITIES},
            "counts": self.counts,
            "findings": [f.to_dict() for f in self.findings],
            "findings_left_out": self.truncated_findings,
            "contract": self.contract,
            "lengths": self.lengths,
            "label_balance": self.label_balance,
            "samples": self.samples,
            "estimate": self.estimate,
        }
