"""Metric functions against hand-computed goldens (and sacrebleu where we rebuild its corpus scores)."""

import pytest
import sacrebleu

from tunesmith.evaluate import metrics as m
from tunesmith.evaluate.stats import mean_ci, percentile, resamples
from tunesmith.evaluate.task import infer_task, score


def test_exact_match_keeps_its_api():
    assert m.exact_match(["Paris.", "london"], ["paris", "Paris"]) == 0.5
    assert m.exact_match(["category: billing\nreply: x"], ["category: Billing\nreply: y"], r"category:\s*(\w+)") == 1.0
    assert m.exact_match(["anything"], ["no category here"], r"category:\s*(\w+)") == 0.0  # empty reference part
    assert m.exact_match([], []) == 0.0


def test_token_f1_golden():
    # pred {the, cat, sat}, ref {the, cat, sat, down}: P = 3/3, R = 3/4, F1 = 2 * .75 / 1.75
    assert m.token_f1("The cat sat", "the cat sat down") == pytest.approx(6 / 7)
    assert m.token_f1("a a b", "a b b") == pytest.approx(2 / 3)  # overlap counts min(count): a 1 + b 1 = 2 of 3
    assert m.token_f1("", "") == 1.0 and m.token_f1("x", "") == 0.0 and m.token_f1("x", "y") == 0.0


def test_rouge_l_golden():
    assert m.lcs_length("abcd", "acbd") == 3
    assert m.rouge_l("a b c d", "a c b d") == pytest.approx(0.75)  # LCS 3 of 4 both ways
    # pred 2 tokens, ref 4, LCS 2: P 1, R .5 -> 2/3
    assert m.rouge_l("cat sat", "the cat sat down") == pytest.approx(2 / 3)
    assert m.rouge_l("x", "y") == 0.0


def test_chrf_and_bleu_agree_with_sacrebleu():
    hyps = ["the cat sat on the mat", "a quick brown fox", "hello world again today"]
    refs = ["the cat is on the mat", "the quick brown fox", "hello there world today"]
    assert m.chrf(hyps[0], refs[0]) == pytest.approx(sacrebleu.sentence_chrf(hyps[0], [refs[0]]).score / 100)
    assert m.chrf("same text", "same text") == pytest.approx(1.0)
    stats = [m.bleu_stats(h, r) for h, r in zip(hyps, refs)]
    assert m.corpus_bleu(stats) == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score / 100, abs=1e-9)
    assert m.bleu_stats("a b c", "a b d") == [3, 3, 2, 1, 0, 0, 3, 2, 1, 0]
    assert m.corpus_bleu([m.bleu_stats("one two three four five", "one two three four five")]) == pytest.approx(1.0)


def test_label_metrics_golden():
    gold, pred = ["a", "a", "b", "b"], ["a", "b", "b", "b"]
    assert m.accuracy(pred, gold) == 0.75
    # a: tp 1 fp 0 fn 1 -> 2/3; b: tp 2 fp 1 fn 0 -> 4/5
    assert m.macro_f1(pred, gold, ["a", "b"]) == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert m.confusion(pred + [m.OTHER], gold + ["a"], ["a", "b"]) == [[1, 1, 1], [0, 2, 0]]
    assert m.to_label("category: BILLING.", ["billing", "shipping"], r"category:\s*(\w+)") == "billing"
    assert m.to_label("category: refunds", ["billing"], r"category:\s*(\w+)") == m.OTHER


def test_json_metrics():
    assert m.json_valid('{"a": 1}') == 1.0 and m.json_valid("```json\n[1, 2]\n```") == 1.0
    assert m.json_valid("3") == 0.0 and m.json_valid("{a: 1}") == 0.0
    schema = {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}
    assert m.schema_match('{"a": 1}', schema) == 1.0
    assert m.schema_match('{"a": "x"}', schema) == 0.0 and m.schema_match("nope", schema) == 0.0


def test_bootstrap_helpers():
    assert percentile([0, 1, 2, 3, 4], 0.5) == 2 and percentile([0, 1, 2, 3, 4], 0.1) == pytest.approx(0.4)
    assert resamples(5, 3, seed=1) == resamples(5, 3, seed=1) != resamples(5, 3, seed=2)
    samples = resamples(10, 200, seed=0)
    assert mean_ci([0.5] * 10, samples) == (0.5, 0.5)
    lo, hi = mean_ci([0.0] * 5 + [1.0] * 5, samples)
    assert 0.1 < lo < 0.5 < hi < 0.9


def test_task_inference():
    refs = [
        "category: billing\nreply: a",
        "category: shipping\nreply: b",
        "category: billing\nreply: c",
        "category: account\nreply: d",
        "category: shipping\nreply: e",
        "category: account\nreply: f",
    ]
    task = infer_task(refs, answer_regex=r"category:\s*(\w+)")
    assert (task.kind, task.labels, task.label_prefix, task.primary) == (
        "label",
        ["account", "billing", "shipping"],
        "category: ",
        "accuracy",
    )
    assert infer_task(["yes", "no", "yes", "no"]).kind == "label"
    assert infer_task(["a long free answer one", "another different answer", "and a third"]).kind == "text"
    assert infer_task(['{"a": 1}', '{"b": 2}', '{"c": [1]}']).primary == "json_valid"
    assert infer_task(["x y", "z"], labels=["x y", "z"]).labels == ["x y", "z"]


def test_score_label_task_golden():
    refs = ["yes", "no", "yes", "no"]
    task = infer_task(refs)
    out = score(task, ["yes", "yes", "Yes.", "maybe"], refs, resamples(4, 50, seed=0))
    assert out["metrics"]["accuracy"]["value"] == 0.5
    assert out["predicted"] == ["yes", "yes", "yes", m.OTHER]
    assert out["confusion"] == [[0, 1, 1], [0, 2, 0]]  # rows gold no, yes; columns no, yes, other
    assert out["metrics"]["macro_f1"]["value"] == pytest.approx((0 + 2 * 2 / (4 + 1)) / 2)
    lo, hi = out["metrics"]["accuracy"]["ci"]
    assert 0 <= lo <= 0.5 <= hi <= 1


def test_bleu_only_for_sentences():
    assert "bleu" not in infer_task(["yes", "no", "yes", "no"]).metric_names()
    assert (
        "bleu"
        in infer_task(["a long free answer one", "another different answer here", "and a third one"]).metric_names()
    )
