"""What kind of task a test set is (label, JSON or free text), and scoring a system's answers on it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tunesmith.evaluate import metrics as m
from tunesmith.evaluate.stats import bootstrap, mean_ci
from tunesmith.generation import LabelSet

MAX_LABELS = 1000
SMALL_LABEL_SET = 30  # up to here a label set is recognised in the test references alone
MIN_PER_LABEL = 3  # past it, the labels must recur this often on average across train and test
MAX_LABEL_WORDS = 5


@dataclass
class Task:
    """How answers are scored. `labels` is set for label tasks; `label_prefix` is the text before a label."""

    kind: str  # "label" | "json" | "text"
    answer_regex: str | None = None
    labels: list[str] = field(default_factory=list)
    label_prefix: str = ""
    schema: dict | None = None
    bleu: bool = True  # BLEU needs 4-grams: left out when references are mostly shorter than 4 words

    @property
    def primary(self) -> str:
        """The headline metric."""
        if self.kind == "label":
            return "accuracy"
        if self.kind == "json":
            return "schema_match" if self.schema is not None else "json_valid"
        return "exact_match" if self.answer_regex else "rouge_l"

    def metric_names(self, label_only: bool = False) -> list[str]:
        names = [] if label_only else ["exact_match", "token_f1", "rouge_l", "chrf"] + (["bleu"] if self.bleu else [])
        if self.kind == "label":
            names = ["accuracy", "macro_f1"] + names
        if self.kind == "json" and not label_only:
            names = ["json_valid"] + (["schema_match"] if self.schema is not None else []) + names
        return names

    def gold(self, reference: str) -> str:
        return m.to_label(reference, self.labels, self.answer_regex)

    def label_set(self) -> LabelSet | None:
        """What generated answers are held to on a label task: `label_prefix + label`, the whole answer unless
        an `answer_regex` picks the label out of a longer one. None for other tasks."""
        if self.kind != "label" or not self.labels:
            return None
        return LabelSet(tuple(self.labels), self.label_prefix, end_of_turn=self.answer_regex is None)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "primary": self.primary,
            "answer_regex": self.answer_regex,
            "labels": self.labels,
            "label_prefix": self.label_prefix,
            "schema": self.schema is not None,
        }


def infer_task(
    references: Sequence[str],
    *,
    answer_regex: str | None = None,
    labels: Sequence[str] | None = None,
    extra_references: Sequence[str] = (),
    schema: dict | None = None,
) -> Task:
    """A label task when the scored parts of the references form a small set of short values (or `labels`
    is given); a JSON task when most references are JSON (or a schema is given); otherwise free text."""
    parts = [m.extract(r, answer_regex).strip() for r in references]
    bleu = bool(references) and sum(len(r.split()) for r in references) / len(references) >= 4
    if labels:
        return Task("label", answer_regex, list(labels), _prefix(references, answer_regex), schema, bleu)
    counts = Counter(p for p in list(parts) + [m.extract(r, answer_regex).strip() for r in extra_references])
    short = all(p and len(p.split()) <= MAX_LABEL_WORDS for p in parts)
    distinct = len({m.normalise(p) for p in parts})
    repeated = distinct <= max(2, len(parts) // 2)
    if len(counts) > SMALL_LABEL_SET:  # many labels (intents, codes): each must recur, over train and test
        repeated = len({m.normalise(p) for p in counts}) <= sum(counts.values()) // MIN_PER_LABEL
    if parts and short and 2 <= len(counts) <= MAX_LABELS and repeated:
        seen: dict[str, str] = {}
        for label, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            seen.setdefault(m.normalise(label), label)
        return Task("label", answer_regex, sorted(seen.values()), _prefix(references, answer_regex), schema, bleu)
    if schema is not None or (references and sum(m.json_valid(r) for r in references) > len(references) / 2):
        return Task("json", answer_regex, schema=schema, bleu=bleu)
    return Task("text", answer_regex, schema=schema, bleu=bleu)


def _prefix(references: Sequence[str], answer_regex: str | None) -> str:
    """The most common text before the scored part (e.g. 'category: '), used to rank labels."""
    if answer_regex is None:
        return ""
    prefixes = []
    for ref in references:
        found = re.search(answer_regex, ref, flags=re.MULTILINE)
        if found:
            prefixes.append(ref[: found.start(1) if found.groups() else found.start()])
    return Counter(prefixes).most_common(1)[0][0] if prefixes else ""


def score(
    task: Task,
    predictions: Sequence[str],
    references: Sequence[str],
    samples: list[list[int]],
    *,
    label_only: bool = False,
) -> dict:
    """Per-example scores, metrics with bootstrap intervals, and (label tasks) predicted labels + confusion."""
    names = task.metric_names(label_only)
    per: list[dict[str, float]] = [{} for _ in references]
    out: dict = {"metrics": {}}
    if task.kind == "label":
        gold = [task.gold(r) for r in references]
        predicted = [m.to_label(p, task.labels, task.answer_regex) for p in predictions]
        for row, g, p in zip(per, gold, predicted):
            row["accuracy"] = float(g == p)
        out.update(gold=gold, predicted=predicted, confusion=m.confusion(predicted, gold, task.labels))

        def f1(idx):
            return m.macro_f1([predicted[i] for i in idx], [gold[i] for i in idx], task.labels)

        out["metrics"]["macro_f1"] = {"value": f1(range(len(gold))), "ci": list(bootstrap(f1, samples))}
    bleu = []
    for row, p, r in zip(per, predictions, references):
        if "exact_match" in names:
            row["exact_match"] = m.exact_match_one(p, r, task.answer_regex)
            row["token_f1"] = m.token_f1(p, r)
            row["rouge_l"] = m.rouge_l(p, r)
            row["chrf"] = m.chrf(p, r)
            bleu.append(m.bleu_stats(p, r))
        if "json_valid" in names:
            row["json_valid"] = m.json_valid(p)
        if "schema_match" in names:
            row["schema_match"] = m.schema_match(p, task.schema or {})
    for name in names:
        if name in ("macro_f1", "bleu"):
            continue
        values = [row[name] for row in per]
        out["metrics"][name] = {"value": sum(values) / max(len(values), 1), "ci": list(mean_ci(values, samples))}
    if bleu:

        def stat(idx):
            return m.corpus_bleu([bleu[i] for i in idx])

        out["metrics"]["bleu"] = {"value": stat(range(len(bleu))), "ci": list(bootstrap(stat, samples))}
    out["metrics"] = {name: out["metrics"][name] for name in names}
    out["per_example"] = per
    return out
