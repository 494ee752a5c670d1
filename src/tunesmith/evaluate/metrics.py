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
