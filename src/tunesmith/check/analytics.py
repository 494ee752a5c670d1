"""Data analytics over good records: token lengths, duplicates, near-duplicates, train/eval leakage,
conflicting labels and label balance.

Precedence keeps each problem reported once: an exact duplicate is not also a near-duplicate, and two records
with the same prompt but different completions are a conflict, not near-duplicates.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence

from tunesmith.check.contract import Row
from tunesmith.check.findings import Finding
from tunesmith.check.minhash import normalise_text, similar_pairs
from tunesmith.data.types import Conversation
from tunesmith.render import IGNORE

NEAR = 0.8  # Jaccard similarity of 5-character shingles at which two records count as near-duplicates
HIST_BINS = 24


def conversation_text(conv: Conversation) -> str:
    if conv.is_text:
        return conv.text or ""
    return "\n".join(f"{m.role}: {m.content}" for m in conv.messages)


def prompt_text(conv: Conversation) -> str:
    """What the model is asked: the messages before the last assistant turn (the whole text for raw text)."""
    if conv.is_text:
        return conv.text or ""
    return "\n".join(f"{m.role}: {m.content}" for m in conv.prompt_messages())


def completion_text(conv: Conversation) -> str:
    return conv.reference() or ""


# --- lengths --------------------------------------------------------------------------------------------


def _describe(values: list[int], max_length: int, upper: int) -> dict:
    values = sorted(values)
    if not values:
        return {"n": 0}

    def q(p: float) -> int:
        return values[min(len(values) - 1, int(p * (len(values) - 1) + 0.5))]

    width = max(1, -(-upper // HIST_BINS))
    counts = [0] * HIST_BINS
    for v in values:
        counts[min(HIST_BINS - 1, v // width)] += 1
    return {
        "n": len(values),
        "min": values[0],
        "p50": q(0.5),
        "p90": q(0.9),
        "p99": q(0.99),
        "max": values[-1],
        "mean": round(sum(values) / len(values), 1),
        "over_max_length": sum(v > max_length for v in values),
        "histogram": {"bin_width": width, "counts": counts},
    }


def lengths(rows: Sequence[Row], max_length: int) -> dict:
    """Token-length distributions (prompt, completion = trained tokens, total) per split, before truncation."""
    out = {}
    for split in ("train", "eval"):
        part = [r for r in rows if r.split == split]
        if not part:
            continue
        total = [len(r.full.input_ids) for r in part]
        completion = [sum(1 for x in r.full.labels if x != IGNORE) for r in part]
        prompt = [t - c for t, c in zip(total, completion)]
        upper = max(max(total), max_length) + 1
        out[split] = {
            "prompt": _describe(prompt, max_length, upper),
            "completion": _describe(completion, max_length, upper),
            "total": _describe(total, max_length, upper),
        }
    return out


# --- duplicates, conflicts, leakage ----------------------------------------------------------------------


def duplicates(rows: Sequence[Row]) -> tuple[list[Finding], set[tuple[int, int]], set[tuple[int, int]]]:
    """Exact duplicates and conflicting labels within each split.

    Returns the findings and the index pairs they cover (exact duplicate pairs, same-prompt pairs), so the
    near-duplicate search can skip them.
    """
    findings: list[Finding] = []
    exact_pairs: set[tuple[int, int]] = set()
    prompt_pairs: set[tuple[int, int]] = set()
    for split in ("train", "eval"):
        idx = [i for i, r in enumerate(rows) if r.split == split]
        by_text: dict[str, list[int]] = defaultdict(list)
        for i in idx:
            by_text[normalise_text(conversation_text(rows[i].conv))].append(i)
        duplicate_of: dict[int, int] = {}
        for members in by_text.values():
            for j in members[1:]:
                duplicate_of[j] = members[0]
                findings.append(
                    Finding(
                        "warning",
                        "duplicate",
                        f"exact duplicate of {rows[members[0]].conv.origin}",
                        origin=str(rows[j].conv.origin),
                        related=(str(rows[members[0]].conv.origin),),
                    )
                )
            exact_pairs.update((a, b) for x, a in enumerate(members) for b in members[x + 1 :])
        by_prompt: dict[str, list[int]] = defaultdict(list)
        for i in idx:
            if not rows[i].conv.is_text:
                by_prompt[normalise_text(prompt_text(rows[i].conv))].append(i)
        for members in by_prompt.values():
            prompt_pairs.update((a, b) for x, a in enumerate(members) for b in members[x + 1 :])
            completions = {normalise_text(completion_text(rows[i].conv)) for i in members}
            if len(completions) < 2:
                continue
            first = members[0]
            for j in members[1:]:
                if j in duplicate_of:
                    continue
                others = tuple(str(rows[i].conv.origin) for i in members if i != j)
                findings.append(
                    Finding(
                        "warning",
                        "conflict",
                        f"conflicting label: same prompt as "
                        f"{rows[first].conv.origin} with a different completion "
                        f"({len(completions)} different completions in {len(members)} records)",
                        origin=str(rows[j].conv.origin),
                        related=others,
                    )
                )
    return findings, exact_pairs, prompt_pairs


def near_duplicates(rows: Sequence[Row], skip: set[tuple[int, int]], threshold: float = NEAR) -> list[Finding]:
    """Records within a split whose whole text is nearly the same as an earlier record's (MinHash + Jaccard)."""
    texts = [conversation_text(r.conv) for r in rows]
    pairs = similar_pairs(texts, threshold, allowed=lambda i, j: rows[i].split == rows[j].split and (i, j) not in skip)
    best: dict[int, tuple[int, float]] = {}
    for i, j, s in pairs:
        if j not in best or i < best[j][0]:
            best[j] = (i, s)
    return [
        Finding(
            "warning",
            "near_duplicate",
            f"near-duplicate of {rows[i].conv.origin} (similarity {s:.2f})",
            origin=str(rows[j].conv.origin),
            related=(str(rows[i].conv.origin),),
        )
        for j, (i, s) in sorted(best.items())
    ]


def leakage(rows: Sequence[Row], threshold: float = NEAR) -> list[Finding]:
    """Eval records whose prompt is in training, exactly or nearly: their eval score would be inflated."""
    train = [i for i, r in enumerate(rows) if r.split == "train"]
    held = [i for i, r in enumerate(rows) if r.split == "eval"]
    if not train or not held:
        return []
    seen: dict[str, list[int]] = defaultdict(list)
    for i in train:
        seen[normalise_text(prompt_text(rows[i].conv))].append(i)
    findings: dict[int, Finding] = {}
    for j in held:
        hits = seen.get(normalise_text(prompt_text(rows[j].conv)))
        if hits:
            where = ", ".join(str(rows[i].conv.origin) for i in hits[:3])
            findings[j] = Finding(
                "warning",
                "leak",
                f"eval record leaked into training: the same prompt is at {where}",
                origin=str(rows[j].conv.origin),
                related=tuple(str(rows[i].conv.origin) for i in hits),
            )
    prompts = [prompt_text(r.conv) for r in rows]
    near = similar_pairs(prompts, threshold, allowed=lambda i, j: rows[i].split != rows[j].split)
    best: dict[int, tuple[int, float]] = {}
    for i, j, s in near:
        e, t = (i, j) if rows[i].split == "eval" else (j, i)
        if e not in findings and (e not in best or s > best[e][1]):
            best[e] = (t, s)
    for e, (t, s) in best.items():
        findings[e] = Finding(
            "warning",
            "near_leak",
            f"eval record nearly leaked into training: its prompt is {s:.2f} similar to {rows[t].conv.origin}",
            origin=str(rows[e].conv.origin),
            related=(str(rows[t].conv.origin),),
        )
    return [findings[k] for k in sorted(findings)]


# --- label balance --------------------------------------------------------------------------------------


def label_balance(rows: Sequence[Row], answer_regex: str | None, train_path: str) -> tuple[dict | None, list[Finding]]:
    """Class counts for classification-like data, and a warning when the classes are badly imbalanced.

    Labels are the `eval.answer_regex` capture when it matches most completions; otherwise whole completions,
    when they take few distinct values. Free-text data has no label balance.
    """
    convs = [r.conv for r in rows if r.split == "train" and not r.conv.is_text]
    if len(convs) < 10:
        return None, []
    completions = [completion_text(c).strip() for c in convs]
    labels: list[str] | None = None
    source = "completion"
    if answer_regex:
        pattern = re.compile(answer_regex)
        found = [pattern.search(c) for c in completions]
        if sum(m is not None for m in found) >= 0.8 * len(found):
            labels = [(m.group(1) if m.groups() else m.group(0)).strip() if m else "(no match)" for m in found]
            source = "eval.answer_regex"
    if labels is None:
        distinct = len(set(completions))
        if distinct <= min(50, len(completions) // 5):
            labels = completions
    if labels is None:
        return None, []
    counts = Counter(labels)
    balance = {"source": source, "counts": dict(counts.most_common())}
    most, least = counts.most_common()[0], counts.most_common()[-1]
    if len(counts) > 1 and most[1] >= 10 * least[1]:
        return balance, [
            Finding(
                "warning",
                "label_imbalance",
                f"labels are imbalanced: {most[0]!r} has {most[1]} "
                f"records, {least[0]!r} only {least[1]} ({len(counts)} labels)",
                origin=train_path,
            )
        ]
    return balance, []
