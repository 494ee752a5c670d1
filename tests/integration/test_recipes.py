"""The application recipes under examples/: each passes `tunesmith check --strict`, and a few training steps
through the real CLI end in a comparison report scored by the recipe's own metric (set F1 for codes, field
accuracy for clause JSON, pass@1 from the sandbox for code). The facts example is the one that is flagged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tiny import cli

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

RECIPES = {  # config -> the primary metric its comparison report must carry
    "examples/support/config.yaml": "exact_match",
    "examples/medical-coding/config.yaml": "set_f1_micro",
    "examples/legal-review/config.yaml": "field_accuracy",
    "examples/code-framework/config.yaml": "pass_at_1",
}


def tunesmith(*args, env, timeout=900):
    return cli(*args, env=env, timeout=timeout)


@pytest.fixture
def env(tmp_path):
    return dict(os.environ)  # the session's model cache (conftest)


@pytest.mark.parametrize("config", list(RECIPES))
def test_recipe_passes_check_strict(config, env):
    done = tunesmith("check", config, "--strict", "--no-calibrate", env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_the_facts_example_is_flagged_and_the_format_example_is_not(env):
    facts = tunesmith("check", "examples/facts-vs-format/facts.yaml", "--strict", "--no-calibrate", env=env)
    assert facts.returncode == 1 and "looks like teaching the model facts" in facts.stdout, facts.stdout[-3000:]
    fmt = tunesmith("check", "examples/facts-vs-format/format.yaml", "--strict", "--no-calibrate", env=env)
    assert fmt.returncode == 0, fmt.stdout[-3000:]


@pytest.mark.parametrize("config", [c for c in RECIPES if "support" not in c])  # support: test_bundled_demo
def test_recipe_smoke_trains_and_scores_with_its_metric(config, env, tmp_path):
    run = tmp_path / "run"
    held_out = Path(yaml.safe_load(Path(config).read_text())["data"]["eval"])
    few = tmp_path / "eval.jsonl"  # 6 held-out rows: the before/after loss covers them all (100 took 33 s)
    few.write_text("".join(held_out.read_text().splitlines(keepends=True)[:6]))
    done = tunesmith(
        "train",
        config,
        f"data.eval={few}",
        "train.budget=null",
        "train.lr=1e-3",
        "train.epochs=1",
        "train.max_steps=2",
        "train.batch_size=4",
        "eval.max_samples=3",
        "eval.few_shot=1",
        "eval.max_new_tokens=24",
        f"output_dir={run}",
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["comparison"]["metric"] == RECIPES[config]
    report = json.loads((run / "eval.json").read_text())
    assert set(report["systems"]) == {"base_zero_shot", "base_few_shot", "tuned"}
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    tuned = rows[0]["systems"]["tuned"]
    if "code-framework" in config:  # every answer was run: passed or a reason
        for row in rows:
            execution = row["systems"]["tuned"]["execution"]
            assert execution["passed"] or execution["reason"], execution
        assert "style" in report["systems"]["tuned"]["metrics"]
    if "medical-coding" in config:
        assert "codes" in tuned and "invalid_codes" in tuned
        assert "invalid_codes" in report["systems"]["tuned"]["metrics"]
    if "legal-review" in config:
        assert {"field:clause_type", "field:risk", "field:reason:rouge_l"} <= set(tuned["scores"])
    assert (run / "report.html").is_file()
