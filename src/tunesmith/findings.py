"""What a check finds: one `Finding` per problem, each naming where (`path:line`), the field, and what is wrong."""

from __future__ import annotations

from dataclasses import asdict, dataclass

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
