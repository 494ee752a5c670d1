"""The task kinds beyond labels and text: code sets (medical coding), JSON fields (clause review) and code run
against hidden tests; golden values computed by hand."""

from __future__ import annotations

import gzip
import json

import pytest

from tunesmith.config import EvalSpec
from tunesmith.errors import DataError
from tunesmith.evaluate import metrics as m
from tunesmith.evaluate.stats import resamples
from tunesmith.evaluate.task import infer_task, read_codes, score, task_for

VALID = frozenset({"E119", "I10", "J45909", "E1165"})


def test_code_sets_are_read_in_canonical_form():
    assert m.code_set("E11.9, I10") == {"E119", "I10"}
    assert m.code_set("e11.9;  i10\nJ45.909.") == {"E119", "I10", "J45909"}
    assert m.code_set("Codes: E11.9 and I10") == {"E119", "I10"}  # words without a digit are not codes
    assert m.code_set("") == set()


def test_set_metrics_golden():
    pairs = [({"A1", "B2"}, {"A1"}), ({"C3"}, {"C3", "D4"}), (set(), {"A1"})]
    # pooled: tp 2 (A1, C3), fp 1 (B2), fn 2 (D4, A1) -> 2*2 / (4 + 1 + 2)
    assert m.micro_f1(pairs) == pytest.approx(4 / 7)
    # per gold code: A1 tp1 fn1 -> 2/3; C3 -> 1; D4 -> 0
    assert m.macro_set_f1(pairs) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert [m.set_f1(p, g) for p, g in pairs] == pytest.approx([2 / 3, 2 / 3, 0.0])
    assert m.set_f1(set(), set()) == 1.0
    assert m.invalid_share([{"E119", "Z999"}, {"Q1"}], VALID) == pytest.approx(2 / 3)
    assert m.invalid_share([set()], VALID) == 0.0


def test_a_codes_task_scores_sets_exact_matches_and_invalid_codes():
    task = infer_task(["E11.9, I10", "J45.909"], kind="codes")
    task.valid_codes = VALID
    assert task.primary == "set_f1_micro" and task.row_metric == "set_f1"
    out = score(task, ["I10, E11.9", "J45.909, XX9.9"], ["E11.9, I10", "J45.909"], resamples(2, 50))
    metrics = {k: v["value"] for k, v in out["metrics"].items()}
    assert list(metrics) == ["set_f1_micro", "set_f1_macro", "set_f1", "exact_set", "invalid_codes"]
    assert metrics["set_f1_micro"] == pytest.approx(2 * 3 / (6 + 1))
    assert metrics["exact_set"] == 0.5 and metrics["invalid_codes"] == pytest.approx(1 / 4)
    assert out["invalid"] == [[], ["XX99"]]
    assert out["codes"][0] == ["E119", "I10"]


def test_json_fields_are_inferred_and_scored_one_by_one():
    refs = [
        json.dumps({"clause_type": "termination", "risk": "high", "reason": "The vendor may end the deal at will."}),
        json.dumps({"clause_type": "payment_terms", "risk": "low", "reason": "Invoices are due in thirty days."}),
    ]
    task = infer_task(refs)
    assert task.kind == "json" and task.fields == {"clause_type": "exact", "risk": "exact", "reason": "text"}
    assert task.primary == "field_accuracy"
    answer = json.dumps({"clause_type": "termination", "risk": "low", "reason": "The vendor may end the deal at will."})
    row = m.field_scores(answer, refs[0], task.fields)
    assert row["field:clause_type"] == 1.0 and row["field:risk"] == 0.0 and row["field_accuracy"] == 0.5
    assert row["field:reason:rouge_l"] == 1.0
    broken = m.field_scores("not json", refs[0], task.fields)
    assert broken["field_accuracy"] == 0.0 and broken["field:reason:chrf"] == 0.0
    out = score(task, [answer, "{}"], refs, resamples(2, 20))
    assert out["metrics"]["field_accuracy"]["value"] == 0.25
    assert "field:reason:rouge_l" in out["metrics"] and "json_valid" in out["metrics"]


def test_a_code_task_runs_each_rows_tests_and_keeps_the_reasons():
    extras = [
        {"tests": "assert double(2) == 4", "style": "assert 'lambda' not in __source__, 'no lambdas'"},
        {"tests": "assert double(3) == 6", "style": "assert 'lambda' not in __source__, 'no lambdas'"},
    ]
    task = infer_task(["def double(x):\n    return 2 * x\n"] * 2, has_tests=True)
    task.has_style = True
    assert task.kind == "code" and task.primary == "pass_at_1"
    answers = ["def double(x):\n    return 2 * x\n", "double = lambda x: x + 1\n"]
    out = score(task, answers, ["", ""], resamples(2, 20), extras=extras)
    assert out["metrics"]["pass_at_1"]["value"] == 0.5 and out["metrics"]["style"]["value"] == 0.5
    assert out["execution"][0] == {"passed": True, "reason": "", "style_reason": ""}
    assert out["execution"][1]["reason"].startswith("AssertionError")
    assert "no lambdas" in out["execution"][1]["style_reason"]


def test_task_for_reads_the_eval_settings(tmp_path):
    codes = tmp_path / "codes.txt.gz"
    codes.write_bytes(gzip.compress(b"E11.9\nI10  Essential hypertension\n"))
    spec = EvalSpec(task="codes", valid_codes=str(codes))
    task = task_for(spec, ["E11.9"])
    assert task.kind == "codes" and task.valid_codes == frozenset({"E119", "I10"})
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["risk"]}))
    task = task_for(EvalSpec(task="json", json_schema=str(schema)), ['{"risk": "low"}'])
    assert task.schema == {"type": "object", "required": ["risk"]}
    auto = task_for(EvalSpec(), ["def f(): pass"], rows_extra=[{"tests": "f()"}])
    assert auto.kind == "code"  # rows that carry tests are code to run


def test_bad_eval_files_name_the_setting(tmp_path):
    with pytest.raises(DataError, match="eval.valid_codes"):
        read_codes(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(DataError, match="code list is empty"):
        read_codes(empty)
    bad = tmp_path / "schema.json"
    bad.write_text('{"type": 12}')
    with pytest.raises(DataError, match="not a valid JSON Schema"):
        task_for(EvalSpec(task="json", json_schema=str(bad)), ["{}"])
    with pytest.raises(DataError, match="eval.sandbox_paths"):
        task_for(EvalSpec(task="code", sandbox_paths=[str(tmp_path / "nowhere")]), ["x = 1"])


def test_answers_of_key_value_lines_are_scored_field_by_field():
    refs = [
        "category: billing\nreply: We refunded the duplicate charge today.",
        "category: shipping\nreply: Your parcel left our warehouse this morning.",
        "category: billing\nreply: The promo code now applies to your order.",
    ]
    assert m.parse_lines(refs[0]) == {"category": "billing", "reply": "We refunded the duplicate charge today."}
    assert m.parse_lines("just a sentence") is None and m.parse_lines("category: billing") is None
    task = infer_task(refs, answer_regex=r"category:\s*(\w+)", labels=["billing", "shipping"])
    assert task.kind == "label" and task.fields == {"category": "exact", "reply": "text"}
    names = task.metric_names()
    assert names[:3] == ["accuracy", "macro_f1", "field_accuracy"] and "field:reply:rouge_l" in names
    answer = "category: billing\nreply: We refunded the duplicate charge today."
    out = score(task, [answer, "category: billing\nreply: Soon.", "no fields at all"], refs, resamples(3, 20))
    rows = out["per_example"]
    assert rows[0]["field:reply:rouge_l"] == 1.0 and rows[1]["field:category"] == 0.0 and rows[2]["field_accuracy"] == 0
    assert task.primary == "accuracy"  # the label stays the headline; the reply is visible beside it
