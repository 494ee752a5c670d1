"""What kind of task a test set is, and scoring a system's answers on it.

Kinds: label (a small closed answer set), json (objects, scored field by field), text (free text), codes (a set
of codes per answer, e.g. ICD-10-CM: set F1, exact set, invalid codes) and code (answers run against each
row's hidden `tests` in a sandbox: pass@1, and a convention check where rows carry `style`)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.evaluate import metrics as m
from tunesmith.evaluate import sandbox
from tunesmith.evaluate.stats import bootstrap, mean_ci
from tunesmith.generation import LabelSet

MAX_LABELS = 1000
SMALL_LABEL_SET = 30  # up to here a label set is recognised in the test references alone
MIN_PER_LABEL = 3  # past it, the labels must recur this often on average across train and test
MAX_LABEL_WORDS = 5


@dataclass
class Task:
    """How answers are scored. `labels` is set for label tasks; `label_prefix` is the text before a label."""

    kind: str  # "label" | "json" | "text" | "codes" | "code"
    answer_regex: str | None = None
    labels: list[str] = field(default_factory=list)
    label_prefix: str = ""
    schema: dict | None = None
    bleu: bool = True  # BLEU needs 4-grams: left out when references are mostly shorter than 4 words
    # json, and text/label answers of `key: value` lines: key -> "exact" | "text" (metrics.json_fields)
    fields: dict[str, str] = field(default_factory=dict)
    valid_codes: frozenset[str] | None = None  # codes: the valid code list, canonical (metrics.canonical_code)
    sandbox_paths: tuple[str, ...] = ()  # code: folders the tests may import from
    sandbox_timeout: float = 10.0
    has_style: bool = False  # code: rows carry a `style` (convention) check

    @property
    def primary(self) -> str:
        """The headline metric."""
        if self.kind == "label":
            return "accuracy"
        if self.kind == "codes":
            return "set_f1_micro"
        if self.kind == "code":
            return "pass_at_1"
        if self.kind == "json":
            if "exact" in self.fields.values():
                return "field_accuracy"
            return "schema_match" if self.schema is not None else "json_valid"
        return "exact_match" if self.answer_regex else "rouge_l"

    @property
    def row_metric(self) -> str:
        """The per-example metric tuned-vs-baseline differences are paired on (the primary, or for a corpus-
        level primary such as micro-F1 its per-example counterpart)."""
        return "set_f1" if self.kind == "codes" else self.primary

    def metric_names(self, label_only: bool = False) -> list[str]:
        if self.kind == "codes" and not label_only:
            return ["set_f1_micro", "set_f1_macro", "set_f1", "exact_set"] + (
                ["invalid_codes"] if self.valid_codes is not None else []
            )
        if self.kind == "code" and not label_only:
            return ["pass_at_1"] + (["style"] if self.has_style else [])
        names = [] if label_only else ["exact_match", "token_f1", "rouge_l", "chrf"] + (["bleu"] if self.bleu else [])
        if self.kind == "label":
            names = ["accuracy", "macro_f1"] + names
        if self.fields and not label_only:
            per_field = []
            for key, kind in self.fields.items():
                per_field += [f"field:{key}"] if kind == "exact" else [f"field:{key}:rouge_l", f"field:{key}:chrf"]
            accuracy = ["field_accuracy"] if "exact" in self.fields.values() else []
            head = ["json_valid"] + (["schema_match"] if self.schema is not None else []) if self.kind == "json" else []
            names = (
                head + names[:2] + accuracy + per_field + names[2:]
                if self.kind == "label"
                else head + accuracy + per_field + names
            )
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
            "row_metric": self.row_metric,
            "answer_regex": self.answer_regex,
            "labels": self.labels,
            "label_prefix": self.label_prefix,
            "schema": self.schema is not None,
            "fields": self.fields,
            "valid_codes": len(self.valid_codes) if self.valid_codes is not None else None,
        }


def infer_task(
    references: Sequence[str],
    *,
    answer_regex: str | None = None,
    labels: Sequence[str] | None = None,
    extra_references: Sequence[str] = (),
    schema: dict | None = None,
    kind: str = "auto",
    has_tests: bool = False,
) -> Task:
    """The task `kind` names, or (auto) inferred: a code task when the rows carry `tests` (`has_tests`); a label
    task when the scored parts of the references form a small set of short values (or `labels` is given); a
    JSON task when most references are JSON (or a schema is given); otherwise free text. Codes tasks are
    never inferred: `eval.task: codes` says so."""
    parts = [m.extract(r, answer_regex).strip() for r in references]
    bleu = bool(references) and sum(len(r.split()) for r in references) / len(references) >= 4
    if kind == "code" or (kind == "auto" and has_tests):
        return Task("code", answer_regex, bleu=False)
    if kind == "codes":
        return Task("codes", answer_regex, bleu=False)
    if kind == "json":
        return Task("json", answer_regex, schema=schema, bleu=bleu, fields=m.json_fields(references))
    if kind == "text":
        return Task("text", answer_regex, schema=schema, bleu=bleu, fields=_line_fields(references))
    if labels:
        return Task("label", answer_regex, list(labels), _prefix(references, answer_regex), schema, bleu,
                    fields=_line_fields(references))  # fmt: skip
    counts = Counter(p for p in list(parts) + [m.extract(r, answer_regex).strip() for r in extra_references])
    short = all(p and len(p.split()) <= MAX_LABEL_WORDS for p in parts)
    distinct = len({m.normalise(p) for p in parts})
    repeated = distinct <= max(2, len(parts) // 2)
    if len(counts) > SMALL_LABEL_SET:  # many labels (intents, codes): each must recur, over train and test
        repeated = len({m.normalise(p) for p in counts}) <= sum(counts.values()) // MIN_PER_LABEL
    if parts and short and 2 <= len(counts) <= MAX_LABELS and (repeated or kind == "label"):
        seen: dict[str, str] = {}
        for label, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            seen.setdefault(m.normalise(label), label)
        prefix = _prefix(references, answer_regex)
        return Task("label", answer_regex, sorted(seen.values()), prefix, schema, bleu, fields=_line_fields(references))
    if schema is not None or (references and sum(m.json_valid(r) for r in references) > len(references) / 2):
        return Task("json", answer_regex, schema=schema, bleu=bleu, fields=m.json_fields(references))
    return Task("text", answer_regex, schema=schema, bleu=bleu, fields=_line_fields(references))


def _line_fields(references: Sequence[str]) -> dict[str, str]:
    """Fields of answers made of `key: value` lines (a label line and a reply line, say), scored one by one."""
    return m.json_fields(references) if any(m.parse_lines(r) for r in references) else {}


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
    extras: Sequence[dict] | None = None,
) -> dict:
    """Per-example scores, metrics with bootstrap intervals, and (label tasks) predicted labels + confusion;
    (code tasks) each row's pass/fail reason from running its `tests` (in `extras`, one dict per row)."""
    names = task.metric_names(label_only)
    per: list[dict[str, float]] = [{} for _ in references]
    out: dict = {"metrics": {}}
    corpus: dict[str, Callable[[Sequence[int]], float]] = {}  # corpus-level metrics: name -> statistic(indices)
    if task.kind == "label":
        gold = [task.gold(r) for r in references]
        predicted = [m.to_label(p, task.labels, task.answer_regex) for p in predictions]
        for row, g, p in zip(per, gold, predicted):
            row["accuracy"] = float(g == p)
        out.update(gold=gold, predicted=predicted, confusion=m.confusion(predicted, gold, task.labels))
        corpus["macro_f1"] = lambda idx: m.macro_f1([predicted[i] for i in idx], [gold[i] for i in idx], task.labels)
    if task.kind == "codes" and not label_only:
        corpus.update(_score_codes(task, predictions, references, per, out))
    if task.kind == "code" and not label_only:
        _score_code(task, predictions, extras or [{} for _ in references], per, out)
        if task.has_style:
            styled = [i for i, row in enumerate(per) if "style" in row]
            corpus["style"] = lambda idx: (
                sum(per[i]["style"] for i in idx if "style" in per[i]) / max(sum("style" in per[i] for i in idx), 1)
            )
            out["style_rows"] = len(styled)
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
        if task.fields and not label_only:
            row.update(m.field_scores(p, r, task.fields))
    if bleu:
        corpus["bleu"] = lambda idx: m.corpus_bleu([bleu[i] for i in idx])
    every = range(len(references))
    for name in names:
        if name in corpus:
            stat = corpus[name]
            out["metrics"][name] = {"value": stat(every), "ci": list(bootstrap(stat, samples))}
            continue
        values = [row[name] for row in per]
        out["metrics"][name] = {"value": sum(values) / max(len(values), 1), "ci": list(mean_ci(values, samples))}
    out["metrics"] = {name: out["metrics"][name] for name in names}
    out["per_example"] = per
    return out


def _score_codes(task: Task, predictions, references, per: list[dict], out: dict) -> dict:
    """Per-example set F1 and exact set; corpus micro/macro F1 and the invalid-code share."""
    pairs = [(m.code_set(m.extract(p, task.answer_regex)), m.code_set(m.extract(r, task.answer_regex)))
             for p, r in zip(predictions, references)]  # fmt: skip
    for row, (predicted, gold) in zip(per, pairs):
        row["set_f1"] = m.set_f1(predicted, gold)
        row["exact_set"] = float(predicted == gold)
    out["codes"] = [sorted(p) for p, _ in pairs]
    stats: dict = {
        "set_f1_micro": lambda idx: m.micro_f1([pairs[i] for i in idx]),
        "set_f1_macro": lambda idx: m.macro_set_f1([pairs[i] for i in idx]),
    }
    if task.valid_codes is not None:
        valid = task.valid_codes
        out["invalid"] = [sorted(p - valid) for p, _ in pairs]
        stats["invalid_codes"] = lambda idx: m.invalid_share([pairs[i][0] for i in idx], valid)
    return stats


def _score_code(task: Task, predictions, extras: Sequence[dict], per: list[dict], out: dict) -> None:
    """Run every answer against its row's tests (and style check) in the sandbox."""
    outcomes = sandbox.run_rows(
        predictions,
        [e.get("tests") for e in extras],
        [e.get("style") for e in extras],
        paths=task.sandbox_paths,
        timeout=task.sandbox_timeout,
    )
    reasons = []
    for row, outcome in zip(per, outcomes):
        row["pass_at_1"] = float(outcome.passed)
        if outcome.style is not None:
            row["style"] = float(outcome.style)
        reasons.append({"passed": outcome.passed, "reason": outcome.reason, "style_reason": outcome.style_reason})
    out["execution"] = reasons


def task_for(
    spec,
    references: Sequence[str],
    *,
    extra_references: Sequence[str] = (),
    rows_extra: Sequence[dict] = (),
    answer_regex: str | None = None,
    labels: Sequence[str] | None = None,
    schema: dict | None = None,
) -> Task:
    """The task an `eval` config section (`EvalSpec`) describes for these references: `eval.task`, the valid
    code list, the JSON Schema file and the sandbox settings loaded and checked (a bad file is a DataError
    naming the setting)."""
    from tunesmith.errors import DataError

    if schema is None and spec.json_schema:
        schema = _read_schema(spec.json_schema)
    task = infer_task(
        references,
        answer_regex=answer_regex if answer_regex is not None else spec.answer_regex,
        labels=labels,
        extra_references=extra_references,
        schema=schema,
        kind=spec.task,
        has_tests=bool(rows_extra) and sum(bool(e.get("tests")) for e in rows_extra) * 2 > len(rows_extra),
    )
    if task.kind == "codes" and spec.valid_codes:
        task.valid_codes = read_codes(spec.valid_codes)
    if task.kind == "code":
        for folder in spec.sandbox_paths:
            if not Path(folder).is_dir():
                raise DataError(f"eval.sandbox_paths: {folder} is not a folder", origin=str(folder))
        task.sandbox_paths = tuple(str(Path(p).resolve()) for p in spec.sandbox_paths)
        task.sandbox_timeout = spec.sandbox_timeout
        task.has_style = any(isinstance(e.get("style"), str) and e.get("style") for e in rows_extra)
    return task


def read_codes(path: str | Path) -> frozenset[str]:
    """A valid-code list: one code per line (a .gz file is read compressed), in canonical form."""
    import gzip

    from tunesmith.errors import DataError

    p = Path(path)
    try:
        raw = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise DataError(f"eval.valid_codes: cannot read the code list ({e})", origin=str(p)) from None
    codes = frozenset(m.canonical_code(line.split()[0]) for line in text.splitlines() if line.strip())
    if not codes:
        raise DataError("eval.valid_codes: the code list is empty", origin=str(p))
    return codes


def _read_schema(path: str | Path) -> dict:
    import json

    import jsonschema

    from tunesmith.errors import DataError

    try:
        schema = json.loads(Path(path).read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)
    except (OSError, ValueError) as e:
        raise DataError(f"eval.json_schema: not a readable JSON file ({e})", origin=str(path)) from None
    except jsonschema.SchemaError as e:
        raise DataError(f"eval.json_schema: not a valid JSON Schema ({e.message})", origin=str(path)) from None
    if not isinstance(schema, dict):
        raise DataError("eval.json_schema: a schema must be a JSON object", origin=str(path))
    return schema
