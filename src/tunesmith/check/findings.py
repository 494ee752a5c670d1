"""What a check finds: one `Finding` per problem, each naming where (`path:line`), the field, and what is wrong."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tunesmith.errors import TunesmithError

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One problem. `check` is a stable code (e.g. "duplicate"); `related` lists other records involved."""

    severity: str
    check: str
    message: str
    origin: str | None = None
    field: str | None = None
    related: tuple[str, ...] = ()

    def line(self) -> str:
        """The one-line form, shaped like a `TunesmithError`: `severity: path:line: field 'x': message`."""
        where = f"{self.origin}: " if self.origin else ""
        what = f"field '{self.field}': " if self.field else ""
        return f"{self.severity}: {where}{what}{self.message}"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["related"] = list(self.related)
        return out


def from_error(err: TunesmithError, check: str = "format") -> Finding:
    """A user-facing error as an error-level finding, with the very same message."""
    origin = str(err.origin) if err.origin is not None else None
    return Finding("error", check, err.reason, origin=origin, field=err.field)


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
            "model": self.model, "files": self.files, "max_length": self.max_length,
            "summary": {s: len(self.of(s)) for s in SEVERITIES}, "counts": self.counts,
            "findings": [f.to_dict() for f in self.findings], "findings_left_out": self.truncated_findings,
            "contract": self.contract, "lengths": self.lengths, "label_balance": self.label_balance,
            "samples": self.samples, "estimate": self.estimate,
        }
