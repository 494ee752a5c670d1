"""Error types a user can act on.

Every error tunesmith raises for bad input is a `TunesmithError`: its message names where the problem is
(`path:line`), which field, and what is wrong. The CLI prints it on one line and exits with code 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Origin:
    """Where a record came from: a file and a 1-based line (JSONL, CSV) or record index (JSON, Parquet)."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


class TunesmithError(Exception):
    """Base of all user-facing errors. `str(err)` is the one-line message the CLI prints."""

    exit_code = 2

    def __init__(self, message: str, *, origin: Origin | str | Path | None = None, field: str | None = None):
        self.origin = origin
        self.field = field
        self.reason = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = f"{self.origin}: " if self.origin is not None else ""
        what = f"field '{self.field}': " if self.field else ""
        return f"{where}{what}{self.reason}"


class ConfigError(TunesmithError):
    """The configuration is invalid or impossible (unknown key, bad value, max_length too small...)."""


class DataError(TunesmithError):
    """A data file is missing, unreadable, or holds a record that cannot be used."""


class ModelError(TunesmithError):
    """A model cannot be found or loaded."""


class RunError(TunesmithError):
    """A run folder is missing, incomplete, or incompatible with the request."""


class BudgetError(TunesmithError):
    """`train.budget` is too short for the shortest run the measured speed allows."""
