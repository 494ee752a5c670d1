"""`tunesmith check --fix-out FILE`: the training data with what `check` can fix by removal removed (exact
duplicates, training rows an eval row leaks from or nearly does, records that do not parse), written as a new
JSONL file; the user's own files are never touched."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tunesmith.check.findings import Report
from tunesmith.data.sources import scan_records
from tunesmith.errors import DataError, TunesmithError
from tunesmith.runfolder import atomic_write_text

REASONS = {"duplicate": "exact duplicates", "leak": "leaking into eval", "near_leak": "nearly leaking into eval"}


def removals(report: Report, train: str) -> dict[str, str]:
    """Training record origin (`path:line`) -> why it goes."""
    drop: dict[str, str] = {}
    for f in report.findings:
        if f.check == "duplicate" and f.origin and f.origin.rsplit(":", 1)[0] == train:
            drop.setdefault(f.origin, "duplicate")
        if f.check in ("leak", "near_leak"):
            for origin in f.related:
                if origin.rsplit(":", 1)[0] == train:
                    drop.setdefault(origin, f.check)
    return drop


def write_clean(report: Report, train: str, out: Path, protected: list[str]) -> dict[str, int]:
    """Write the kept training records to `out` (JSONL); return {"kept": n, reason: removed, ...}."""
    if any(Path(p).exists() and out.exists() and out.resolve() == Path(p).resolve() for p in protected):
        raise TunesmithError(
            "is one of the run's data files: --fix-out writes a new file, never over yours", origin=out
        )
    drop = removals(report, train)
    counts: Counter[str] = Counter()
    lines = []
    for origin, record in scan_records(train):
        why = "format" if isinstance(record, DataError) else drop.get(str(origin))
        if why is not None:
            counts[why] += 1
            continue
        lines.append(json.dumps(record, ensure_ascii=False))
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "".join(line + "\n" for line in lines))
    return {"kept": len(lines), **counts}
