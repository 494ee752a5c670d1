"""Error types a user can act on.

Every error tunesmith raises for bad input is a `TunesmithError`: its message names where the problem is
(`path:line`), which field, and what is wrong. The CLI prints it on one line and exits with code 2 (3 for
`Stopped`: a run stopped by a signal, to be resumed).
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


class ExportError(TunesmithError):
    """An export cannot be made or failed its check; nothing was written."""


class RunError(TunesmithError):
    """A run folder is missing, incomplete, or incompatible with the request."""


class BudgetError(TunesmithError):
    """`train.budget` is too short for the shortest run the measured speed allows."""


class Stopped(TunesmithError):
    """Training was stopped by SIGINT (Ctrl-C) or SIGTERM after a step, with its checkpoint saved: not an error
    in the input, so its own exit code (3). Re-running the same command resumes the run."""

    exit_code = 3


def file_problem(path: str | Path, missing: str = "no such file") -> str | None:
    """Why `path` cannot be read as a regular file, in words a user can act on; None when it can.

    `Path.exists()` says False for a symlink loop and True for a FIFO, so the reasons would be wrong
    ('no such file', 'file is empty'); `os.stat` tells them apart. `missing` words the plain absent case.
    """
    import errno
    import os
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "is a symlink loop (the link points back at itself)"
        if err.errno == errno.ENOTDIR:
            return f"{missing} (a part of the path is a file, not a folder)"
        if err.errno == errno.EACCES:
            return "cannot be read: permission denied"
        if err.errno == errno.ENAMETOOLONG:
            return "the path is too long"
        if err.errno == errno.ENOENT and os.path.islink(path):
            return f"is a broken symlink (to '{os.readlink(path)}', which does not exist)"
        return missing if err.errno == errno.ENOENT else f"cannot be read: {err.strerror or err}"
    except ValueError:  # a NUL byte in the path
        return "the path holds a NUL character"
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(mode):
        kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"))
        kind = next((name for test, name in kinds if test(mode)), "a device")
        return f"is not a regular file ({kind})"
    return None
