"""A crafted dataset with planted problems: the report finds each at its line, and nothing else.

Planted: exact duplicates (verbatim, and differing only in case and spacing), a near-duplicate (one word
changed), a conflicting label, an exact and a near train/eval leak, and PII or secrets (email, phone number,
Luhn-valid card, API keys, a private key), next to decoys that must not be reported (a Luhn-invalid card
number, an order id, a date, a price).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tunesmith.check import load, run_check
from tunesmith.check.minhash import jaccard, shingles, similar_pairs
from tunesmith.check.pii import luhn, scan_text

WORDS = [
    "anchor",
    "bridge",
    "candle",
    "dolphin",
    "ember",
    "falcon",
    "garden",
    "harbor",
    "island",
    "jungle",
    "kettle",
    "lantern",
    "meadow",
    "nickel",
    "orchard",
    "pepper",
    "quartz",
    "river",
    "saddle",
    "timber",
    "umbrella",
    "velvet",
    "walnut",
    "yonder",
    "zephyr",
    "amber",
    "basket",
    "copper",
    "desert",
    "engine",
    "feather",
    "glacier",
    "hammer",
    "ivory",
    "jacket",
    "kernel",
    "ladder",
    "marble",
    "needle",
    "oyster",
    "pillow",
    "quiver",
    "ribbon",
    "silver",
    "thistle",
    "tunnel",
    "valley",
    "window",
    "yellow",
    "zipper",
    "acorn",
    "beacon",
    "cactus",
    "drizzle",
]


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def chat(user: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def crafted(folder: Path) -> tuple[Path, Path, set[tuple[str, str, str | None]]]:
    """Write train/eval files; return them and the expected (check, path:line, field) findings."""
    rng = random.Random(7)
    train = [chat(sentence(rng, 18), sentence(rng, 10)) for _ in range(20)]  # lines 1-20: clean
    held = [chat(sentence(rng, 18), sentence(rng, 10)) for _ in range(6)]  # eval lines 1-6: clean
    q7 = train[6]["messages"][0]["content"].split()
    q7[5] = "xylophone"  # one word changed
    q13 = held[0]["messages"][0]["content"]
    decoys = "Order VC-590559 on 2024-02-09 for $130.99, card 4111 1111 1111 1112 (invalid)."
    train += [
        train[2],  # 21 exact duplicate of 3
        chat("  " + train[4]["messages"][0]["content"].upper(), train[4]["messages"][1]["content"]),  # 22 dup of 5
        chat(" ".join(q7), train[6]["messages"][1]["content"]),  # 23 near-duplicate of 7
        chat(train[8]["messages"][0]["content"], "A completely different answer here."),  # 24 conflict with 9
        chat("Please write to jane.roe@example.org about it.", "Noted, thanks."),  # 25 email
        chat("How do I reach support?", "Call us on +1 415-555-0134 any day."),  # 26 phone
        chat("Charge my card 4539 1488 0343 6467 please.", "Done."),  # 27 card (Luhn-valid)
        chat(decoys, "Nothing sensitive in this one."),  # 28 decoys only
        chat("Here is my key sk-proj-AbCdEfGhIjKlMnOpQrStUvWx12 for the API.", "Please revoke it."),  # 29 API key
        chat(
            "Deploy with this:\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
            "-----END OPENSSH PRIVATE KEY-----",
            "Never share private keys.",
        ),  # 30 private key
        chat("My AWS id is AKIAIOSFODNN7EXAMPLE, is that ok?", "Rotate it now."),  # 31 AWS key
    ]
    near = q13.split()
    near[3] = "xylophone"
    held += [
        chat(train[10]["messages"][0]["content"], "Another answer."),  # eval 7: exact leak of train 11
        chat(" ".join(near), held[0]["messages"][1]["content"]),
    ]  # eval 8: near-dup of eval 1 (same split)
    # eval 8 is a near-duplicate inside eval; a near *leak* needs a train twin:
    near_leak = train[12]["messages"][0]["content"].split()
    near_leak[2] = "xylophone"
    held += [chat(" ".join(near_leak), "Yet another answer.")]  # eval 9: near leak of train 13
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (folder / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held))
    expected = {
        ("duplicate", "train.jsonl:21", None),
        ("duplicate", "train.jsonl:22", None),
        ("near_duplicate", "train.jsonl:23", None),
        ("conflict", "train.jsonl:24", None),
        ("pii", "train.jsonl:25", "messages[0].content"),
        ("pii", "train.jsonl:26", "messages[1].content"),
        ("pii", "train.jsonl:27", "messages[0].content"),
        ("pii", "train.jsonl:29", "messages[0].content"),
        ("pii", "train.jsonl:30", "messages[0].content"),
        ("pii", "train.jsonl:31", "messages[0].content"),
        ("leak", "eval.jsonl:7", None),
        ("near_duplicate", "eval.jsonl:8", None),
        ("near_leak", "eval.jsonl:9", None),
    }
    return folder / "train.jsonl", folder / "eval.jsonl", expected


def test_planted_problems_are_found_at_their_lines_and_nothing_else(tmp_path, tiny_llama_dir, monkeypatch):
    _, _, expected = crafted(tmp_path)
    monkeypatch.chdir(tmp_path)
    config = load("train.jsonl", ["data.eval=eval.jsonl"], model=str(tiny_llama_dir))
    report = run_check(config, calibrate=False)
    found = {(f.check, f.origin, f.field) for f in report.findings if f.severity != "info"}
    assert found == expected
    assert len(report.findings) - len(report.of("info")) == len(expected)  # each once
    kinds = {f.origin: f.message for f in report.findings if f.check == "pii"}
    assert "email address" in kinds["train.jsonl:25"] and "phone number" in kinds["train.jsonl:26"]
    assert "card number" in kinds["train.jsonl:27"] and "OpenAI" in kinds["train.jsonl:29"]
    assert "private key" in kinds["train.jsonl:30"] and "AWS" in kinds["train.jsonl:31"]
    assert "4539" not in kinds["train.jsonl:27"].replace("453***67", "")  # redacted, not printed in full
    related = {f.origin: f.related for f in report.findings}
    assert related["train.jsonl:21"] == ("train.jsonl:3",) and related["train.jsonl:22"] == ("train.jsonl:5",)
    assert related["train.jsonl:23"] == ("train.jsonl:7",) and related["eval.jsonl:7"] == ("train.jsonl:11",)
    assert related["eval.jsonl:9"] == ("train.jsonl:13",) and related["eval.jsonl:8"] == ("eval.jsonl:1",)
    assert report.exit_code() == 0 and report.exit_code(strict=True) == 1


def test_pii_patterns():
    assert luhn("4539148803436467") and not luhn("4111111111111112")
    assert [k for k, _ in scan_text("mail a.b+c@mail.example.co.uk")] == ["email address"]
    assert [k for k, _ in scan_text("call (415) 555-0199 or +44 20 7946 0958")] == ["phone number"] * 2
    assert [k for k, _ in scan_text("ghp_" + "a1" * 18 + " and hf_" + "x" * 34)] == [
        "API key (GitHub token)",
        "API key (Hugging Face)",
    ]
    assert list(scan_text("VC-123456 shipped 2024-02-09, total $1,299.00, ticket #4411")) == []


def test_minhash_finds_similar_texts_only():
    rng = random.Random(1)
    texts = [sentence(rng, 30) for _ in range(30)]
    words = texts[4].split()
    words[7] = "xylophone"
    texts.append(" ".join(words))
    pairs = similar_pairs(texts, 0.8)
    assert [(i, j) for i, j, _ in pairs] == [(4, 30)]
    assert pairs[0][2] == pytest.approx(jaccard(shingles(texts[4]), shingles(texts[30])))


def test_terminal_lists_the_first_findings_of_a_check_and_counts_the_rest():
    from rich.console import Console

    from tunesmith.check.findings import Finding, Report
    from tunesmith.check.terminal import print_report

    report = Report(model="m", files={"train": "t.jsonl"}, max_length=64)
    report.findings = [Finding("error", "format", "no usable field", origin=f"t.jsonl:{i}") for i in range(1, 51)]
    report.findings += [Finding("warning", "duplicate", "exact duplicate", origin=f"t.jsonl:{i}") for i in range(9)]
    report.truncated_findings["format"] = 10  # past the per-file limit
    console = Console(record=True, width=200, no_color=True)
    print_report(report, console)
    lines = console.export_text().splitlines()
    assert sum(line.startswith("error: t.jsonl:") for line in lines) == 20
    assert sum(line.startswith("warning: t.jsonl:") for line in lines) == 8
    assert "... and 40 more format errors (--json lists up to 50 per file)" in lines
    assert "... and 1 more duplicate warning (all in --json)" in lines
    assert lines[-1] == "50 errors, 9 warnings: errors: training would refuse to start"


def test_fix_out_writes_the_training_data_without_duplicates_and_leaks(tmp_path, tiny_llama_dir, monkeypatch):
    import json

    from tunesmith.check.fix import write_clean
    from tunesmith.errors import TunesmithError

    crafted(tmp_path)
    monkeypatch.chdir(tmp_path)
    config = load("train.jsonl", ["data.eval=eval.jsonl"], model=str(tiny_llama_dir))
    report = run_check(config, calibrate=False)
    original = (tmp_path / "train.jsonl").read_bytes()
    done = write_clean(report, "train.jsonl", tmp_path / "clean.jsonl", ["train.jsonl", "eval.jsonl"])
    dropped = {f.origin for f in report.findings if f.check == "duplicate" and f.origin.startswith("train.jsonl")}
    dropped |= {o for f in report.findings if f.check in ("leak", "near_leak") for o in f.related}
    total = len(original.splitlines())
    assert done["kept"] == total - len(dropped) - done.get("format", 0) and done["kept"] > 0
    kept = [json.loads(line) for line in (tmp_path / "clean.jsonl").read_text().splitlines()]
    assert len(kept) == done["kept"]
    assert (tmp_path / "train.jsonl").read_bytes() == original  # the user's file is untouched
    again = run_check(load("clean.jsonl", ["data.eval=eval.jsonl"], model=str(tiny_llama_dir)), calibrate=False)
    assert not [f for f in again.findings if f.check in ("duplicate", "leak", "near_leak")]
    with pytest.raises(TunesmithError, match="never over yours"):
        write_clean(report, "train.jsonl", tmp_path / "train.jsonl", ["train.jsonl"])
