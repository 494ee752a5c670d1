"""The fact-injection finding: fires on data that teaches facts, quiet on data that teaches a task (labels,
codes, fields extracted from the input, code), including every shipped application recipe."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.check.contract import Row
from tunesmith.check.facts import fact_injection
from tunesmith.data import load_conversations
from tunesmith.data.types import Conversation, Message

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RECIPES = ["support", "medical-coding", "legal-review", "code-framework"]


def rows_of(pairs: list[tuple[str, str]]) -> list[Row]:
    convs = [
        Conversation(origin=f"t.jsonl:{i + 1}", messages=(Message("user", q), Message("assistant", a)))  # type: ignore[arg-type]
        for i, (q, a) in enumerate(pairs)
    ]
    return [Row(c, None, None, "train") for c in convs]  # type: ignore[arg-type]


def test_fires_on_question_fact_pairs():
    cities = ["Aldmere", "Brovik", "Castellan", "Dunmarsh", "Elsworth", "Fennick"]
    pairs = []
    for i in range(40):
        pairs.append(
            (f"Where is branch {i} of Orrin Labs?", f"Branch {i} is in {cities[i % 6]}{i}, opened {1950 + i}.")
        )
    found = fact_injection(rows_of(pairs))
    assert len(found) == 1 and found[0].check == "fact_injection" and found[0].severity == "warning"
    assert "retrieve" in found[0].message and found[0].origin == "t.jsonl:1"


def test_quiet_on_labels_and_on_answers_taken_from_the_prompt():
    labels = rows_of([(f"My parcel {i} is late, order VC-{1000 + i}", "category: shipping") for i in range(40)])
    assert fact_injection(labels) == []
    extracted = rows_of(
        [
            (f"Memo: ship the Falcon {i} report to Dana by March {i % 28 + 1}.", f"Deadline: March {i % 28 + 1}")
            for i in range(40)
        ]
    )
    assert fact_injection(extracted) == []
    assert fact_injection(rows_of([("Who founded Orrin?", "Mara Velden founded it in 1987.")] * 5)) == []  # too few


@pytest.mark.parametrize("recipe", RECIPES)
def test_quiet_on_every_application_recipe(recipe):
    convs = load_conversations(EXAMPLES / recipe / "train.jsonl")
    assert fact_injection([Row(c, None, None, "train") for c in convs]) == []  # type: ignore[arg-type]


def test_fires_on_the_facts_example():
    convs = load_conversations(EXAMPLES / "facts-vs-format" / "train.jsonl")
    assert len(fact_injection([Row(c, None, None, "train") for c in convs])) == 1  # type: ignore[arg-type]
    fmt = load_conversations(EXAMPLES / "facts-vs-format" / "format_train.jsonl")
    assert fact_injection([Row(c, None, None, "train") for c in fmt]) == []  # type: ignore[arg-type]
