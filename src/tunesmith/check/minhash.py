"""A small MinHash + LSH for near-duplicate search: character shingles, universal hashing, banding.

Candidates from the LSH bands are verified with the exact Jaccard similarity of their shingle sets, so a
reported pair is really that similar (the sketch only prunes the pairs worth comparing).
"""

from __future__ import annotations

import re
import zlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

SHINGLE = 5
BANDS, ROWS = 20, 5  # 100 permutations; pairs with Jaccard 0.8 become candidates with p > 0.999
_SPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """Case-folded, whitespace-collapsed text: what 'the same text' means for duplicate checks."""
    return _SPACE.sub(" ", text).strip().casefold()


def shingles(text: str, k: int = SHINGLE) -> set[str]:
    text = normalise_text(text)
    if len(text) <= k:
        return {text}
    return {text[i : i + k] for i in range(len(text) - k + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / max(len(a | b), 1)


def signatures(sets: Sequence[set[str]], seed: int = 0) -> np.ndarray:
    """One MinHash signature (BANDS x ROWS values) per shingle set."""
    rng = np.random.default_rng(seed)
    n = BANDS * ROWS
    a = rng.integers(0, 2**64, size=n, dtype=np.uint64, endpoint=False) | np.uint64(1)
    b = rng.integers(0, 2**64, size=n, dtype=np.uint64, endpoint=False)
    out = np.empty((len(sets), n), dtype=np.uint64)
    for i, s in enumerate(sets):
        h = np.fromiter((zlib.crc32(x.encode()) for x in s), dtype=np.uint64, count=len(s))
        # multiply-shift hashing: (a*h + b) mod 2**64, high 32 bits (numpy wraps uint64 on purpose here)
        out[i] = ((h[:, None] * a[None, :] + b[None, :]) >> np.uint64(32)).min(axis=0)
    return out


def similar_pairs(texts: Sequence[str], threshold: float, *, allowed=None) -> list[tuple[int, int, float]]:
    """Index pairs (i < j) whose shingle sets have Jaccard >= threshold, with the similarity.

    `allowed(i, j)` can restrict which pairs are compared (e.g. only train x eval).
    """
    sets = [shingles(t) for t in texts]
    if len(sets) < 2:
        return []
    sig = signatures(sets)
    candidates: set[tuple[int, int]] = set()
    for band in range(BANDS):
        buckets: dict[bytes, list[int]] = defaultdict(list)
        block = sig[:, band * ROWS : (band + 1) * ROWS]
        for i in range(len(sets)):
            buckets[block[i].tobytes()].append(i)
        for members in buckets.values():
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    candidates.add((members[x], members[y]))
    out = []
    for i, j in sorted(candidates):
        if allowed is not None and not allowed(i, j):
            continue
        s = jaccard(sets[i], sets[j])
        if s >= threshold:
            out.append((i, j, s))
    return out
