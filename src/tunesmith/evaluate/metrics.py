"""Task metrics on generated answers: pure functions of (predictions, references), golden-tested.

Per-example scores (exact match, token F1, ROUGE-L, sentence chrF, JSON validity) are what bootstrap
intervals resample; corpus metrics (macro-F1, BLEU) are recomputed on each resample from per-example parts.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

OTHER = "(other)"  # a label-task prediction outside the label set


def normalise(text: str) -> str:
    """Case-, accent- and whitespace-insensitive form used for exact match."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(text.split()).strip(" .!?\"'")


def extract(text: str, answer_regex: str | None) -> str:
    """The part of an answer that is scored: the regex's first group (or whole match), else the text."""
    if answer_regex is None:
        return text
    m = re.search(answer_regex, text, flags=re.MULTILINE)
    if m is None:
        return ""
    return m.group(1) if m.groups() else m.group(0)


def exact_match_one(prediction: str, reference: str, answer_regex: str | None = None) -> float:
    """1.0 when the scored parts agree after normalisation (an empty reference part never matches)."""
    ref = extract(reference, answer_regex)
    return float(ref != "" and normalise(extract(prediction, answer_regex)) == normalise(ref))


def exact_match(predictions: list[str], references: list[str], answer_regex: str | None = None) -> float:
    """Share of predictions whose scored part equals the reference's, after normalisation."""
    if not references:
        return 0.0
    return sum(exact_match_one(p, r, answer_regex) for p, r in zip(predictions, references)) / len(references)


# --- text overlap -----------------------------------------------------------------------------------------


def tokens(text: str) -> list[str]:
    """Word tokens for token F1 and ROUGE-L: normalised, punctuation split off."""
    return re.findall(r"\w+|[^\w\s]", normalise(text))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style bag-of-tokens F1 (1.0 when both are empty)."""
    p, r = tokens(prediction), tokens(reference)
    if not p or not r:
        return float(p == r)
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, one row at a time)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        row = [0]
        for j, y in enumerate(b):
            row.append(prev[j] + 1 if x == y else max(prev[j + 1], row[j]))
        prev = row
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (beta = 1) over word tokens."""
    p, r = tokens(prediction), tokens(reference)
    if not p or not r:
        return float(p == r)
    lcs = lcs_length(p, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def chrf(prediction: str, reference: str) -> float:
    """Sentence chrF (sacrebleu, character 6-grams, beta 2) on a 0-1 scale."""
    from sacrebleu.metrics import CHRF

    return CHRF().sentence_score(prediction, [reference]).score / 100


def bleu_stats(prediction: str, reference: str, max_order: int = 4) -> list[int]:
    """One sentence's BLEU sufficient statistics: [hyp_len, ref_len, correct_1..n, total_1..n].

    Summed over sentences they give sacrebleu's corpus BLEU (13a tokenisation); see `corpus_bleu`.
    """
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tok = Tokenizer13a()
    hyp, ref = tok(prediction.strip()).split(), tok(reference.strip()).split()
    correct, total = [], []
    for n in range(1, max_order + 1):
        h = Counter(tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1))
        r = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
        correct.append(sum((h & r).values()))
        total.append(max(len(hyp) - n + 1, 0))
    return [len(hyp), len(ref), *correct, *total]


def corpus_bleu(stats: Sequence[Sequence[int]], max_order: int = 4) -> float:
    """Corpus BLEU (0-1, sacrebleu's exp smoothing) from summed per-sentence `bleu_stats`."""
    from sacrebleu.metrics import BLEU

    if not stats:
        return 0.0
    summed = [sum(col) for col in zip(*stats)]
    correct, total = summed[2 : 2 + max_order], summed[2 + max_order :]
    return BLEU.compute_bleu(correct, total, summed[0], summed[1], smooth_method="exp").score / 100


# --- labels -----------------------------------------------------------------------------------------------


def to_label(answer: str, labels: Sequence[str], answer_regex: str | None = None) -> str:
    """The label an answer names (matched after normalisation), or OTHER."""
    by_norm = {normalise(label): label for label in labels}
    return by_norm.get(normalise(extract(answer, answer_regex)), OTHER)


def accuracy(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """Share of predicted labels equal to the gold ones."""
    return sum(p == g for p, g in zip(predicted, gold)) / len(gold) if gold else 0.0


def macro_f1(predicted: Sequence[str], gold: Sequence[str], labels: Sequence[str]) -> float:
    """Unweighted mean over `labels` of per-label F1 (a label never predicted nor present scores 0)."""
    if not labels:
        return 0.0
    scores = []
    for label in labels:
        tp = sum(p == label and g == label for p, g in zip(predicted, gold))
        fp = sum(p == label and g != label for p, g in zip(predicted, gold))
        fn = sum(p != label and g == label for p, g in zip(predicted, gold))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def confusion(predicted: Sequence[str], gold: Sequence[str], labels: Sequence[str]) -> list[list[int]]:
    """Counts[gold][predicted] over `labels` plus a final OTHER column for answers outside the set."""
    columns = list(labels) + [OTHER]
    index = {label: i for i, label in enumerate(columns)}
    matrix = [[0] * len(columns) for _ in labels]
    for p, g in zip(predicted, gold):
        if g in index and index[g] < len(labels):
            matrix[index[g]][index.get(p, len(labels))] += 1
    return matrix


# --- JSON -------------------------------------------------------------------------------------------------


def parse_json(text: str):
    """The JSON value in an answer (a ```json fence is allowed), or raise ValueError."""
    body = text.strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, flags=re.DOTALL)
    return json.loads(fence.group(1) if fence else body)


def json_valid(text: str) -> float:
    """1.0 when the answer is a JSON object or array."""
    try:
        return float(isinstance(parse_json(text), (dict, list)))
    except ValueError:
        return 0.0


def schema_match(text: str, schema: dict) -> float:
    """1.0 when the answer parses as JSON and validates against the JSON Schema."""
    import jsonschema

    try:
        value = parse_json(text)
    except ValueError:
        return 0.0
    return float(jsonschema.Draft202012Validator(schema).is_valid(value))


_LINE = re.compile(r"^\s*([A-Za-z][\w -]{0,30}?)\s*:\s*(.*?)\s*$")


def parse_lines(text: str) -> dict[str, str] | None:
    """An answer of `key: value` lines (`category: billing` / `reply: ...`) as a dict (keys case-folded), or
    None when any non-empty line is not one, or there are fewer than two keys."""
    out: dict[str, str] = {}
    for line in text.strip().splitlines():
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None:
            return None
        out.setdefault(m.group(1).strip().casefold(), m.group(2))
    return out if len(out) >= 2 else None


def parse_fields(text: str) -> dict | None:
    """An answer's fields: a JSON object, else `key: value` lines, else None."""
    try:
        value = parse_json(text)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else parse_lines(text)


def json_fields(references: Sequence[str]) -> dict[str, str]:
    """The fields a structured answer is scored on, from the references (JSON objects, or `key: value`
    lines): each key present in at least half of them, "exact" when its values are short (at most five words:
    a type, a level, a number), "text" when they are sentences (scored by ROUGE-L and chrF). None unless at
    least half the references have fields."""
    objects = [o for o in (parse_fields(r) for r in references) if o is not None]
    if len(objects) * 2 < len(references):
        return {}
    if not objects:
        return {}
    fields: dict[str, str] = {}
    for key in dict.fromkeys(k for o in objects for k in o):
        values = [o[key] for o in objects if key in o]
        if len(values) * 2 < len(objects) or any(isinstance(v, (dict, list)) for v in values):
            continue
        words = [len(str(v).split()) for v in values]
        fields[str(key)] = "exact" if max(words) <= 5 else "text"
    return fields


def field_scores(prediction: str, reference: str, fields: dict[str, str]) -> dict[str, float]:
    """Per-field scores of one structured answer (JSON object or `key: value` lines): `field:<key>` (1.0 when
    equal after normalisation) for short fields, `field:<key>:rouge_l` and `field:<key>:chrf` for text fields;
    0 where the answer lacks the field or has no fields. `field_accuracy` is the share of short fields right."""
    predicted = parse_fields(prediction) or {}
    gold = parse_fields(reference) or {}
    out: dict[str, float] = {}
    exact = []
    for key, kind in fields.items():
        have, want = predicted.get(key), gold.get(key)
        if kind == "exact":
            right = float(have is not None and want is not None and normalise(str(have)) == normalise(str(want)))
            out[f"field:{key}"] = right
            exact.append(right)
        else:
            text = str(have) if have is not None else ""
            out[f"field:{key}:rouge_l"] = rouge_l(text, str(want or "")) if text else 0.0
            out[f"field:{key}:chrf"] = chrf(text, str(want or "")) if text else 0.0
    if exact:
        out["field_accuracy"] = sum(exact) / len(exact)
    return out


# --- code sets (medical codes, product codes...) ------------------------------------------------------------


def canonical_code(code: str) -> str:
    """A code as compared: upper case, without dots, spaces and surrounding punctuation (E11.9 == e119)."""
    return re.sub(r"[\s.]", "", code.strip().strip("()[]{}\"'`*-:").upper())


def code_set(text: str) -> set[str]:
    """The codes an answer names: its items split on commas, semicolons and white space, those that contain a
    digit, in canonical form (`canonical_code`)."""
    items = (canonical_code(x) for x in re.split(r"[,;\s]+", text))
    return {x for x in items if x and any(ch.isdigit() for ch in x)}


def set_counts(predicted: set[str], gold: set[str]) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of one answer's code set."""
    tp = len(predicted & gold)
    return tp, len(predicted) - tp, len(gold) - tp


def set_f1(predicted: set[str], gold: set[str]) -> float:
    """F1 of one answer's code set (1.0 when both are empty)."""
    if not predicted and not gold:
        return 1.0
    tp, fp, fn = set_counts(predicted, gold)
    return 2 * tp / (2 * tp + fp + fn)


def micro_f1(pairs: Sequence[tuple[set[str], set[str]]]) -> float:
    """Micro-averaged F1 over every (predicted, gold) code set: counts pooled, then F1."""
    tp = fp = fn = 0
    for predicted, gold in pairs:
        a, b, c = set_counts(predicted, gold)
        tp, fp, fn = tp + a, fp + b, fn + c
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def macro_set_f1(pairs: Sequence[tuple[set[str], set[str]]]) -> float:
    """Unweighted mean over the codes in the gold sets of each code's F1 (rare codes count as much as common)."""
    codes = sorted({c for _, gold in pairs for c in gold})
    if not codes:
        return 0.0
    scores = []
    for code in codes:
        tp = sum(code in p and code in g for p, g in pairs)
        fp = sum(code in p and code not in g for p, g in pairs)
        fn = sum(code not in p and code in g for p, g in pairs)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def invalid_share(predicted_sets: Sequence[set[str]], valid: frozenset[str]) -> float:
    """Share of all predicted codes that are not in the valid code list (0 when nothing was predicted)."""
    total = sum(len(p) for p in predicted_sets)
    return sum(len(p - valid) for p in predicted_sets) / total if total else 0.0
