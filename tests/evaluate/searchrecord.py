"""Synthetic search.json records and a minimal evaluation summary, to render the report without training."""

import copy

SEARCH = {
    "method": "successive_halving",
    "metric": "accuracy",
    "higher_is_better": True,
    "budget_s": 600.0,
    "selection_rows": 750,
    "planned": {"final_steps": 180, "rungs": [22, 44], "candidates": [1e-4, 3e-4, 1e-3, 3e-3], "seconds": 540.0},
    "trials": [
        {"trial": 0, "lr": 1e-4, "status": "pruned", "evals": [{"step": 22, "value": 0.41, "seconds": 30.0}]},
        {
            "trial": 1,
            "lr": 3e-4,
            "status": "pruned",
            "evals": [{"step": 22, "value": 0.55, "seconds": 42.0}, {"step": 44, "value": 0.61, "seconds": 90.0}],
        },
        {
            "trial": 2,
            "lr": 1e-3,
            "status": "chosen",
            "evals": [{"step": 22, "value": 0.62, "seconds": 54.0}, {"step": 44, "value": 0.7, "seconds": 110.0}],
        },
        {"trial": 3, "lr": 3e-3, "status": "pruned", "evals": [{"step": 22, "value": 0.38, "seconds": 66.0}]},
    ],
    "chosen": {"trial": 2, "lr": 1e-3, "step": 44},
    "final": {
        "steps": 180,
        "best_step": 160,
        "best_value": 0.83,
        "evals": [
            {"step": 90, "value": 0.8, "seconds": 300.1},
            {"step": 135, "value": 0.81, "seconds": 420.0},
            {"step": 160, "value": 0.83, "seconds": 500.0},
            {"step": 180, "value": 0.82, "seconds": 560.0},
        ],
        "stopped_by_budget": False,
    },
    "seconds": 575.2,
}


def search_record(**changes) -> dict:
    record = copy.deepcopy(SEARCH)
    record.update(changes)
    return record


def loss_record() -> dict:
    """eval_loss, lower is better, no best recorded: the report must find the minimum itself."""
    record = search_record(metric="eval_loss", higher_is_better=False, budget_s=None)
    for t, values in zip(record["trials"], ([2.1], [1.6, 1.4], [1.5, 1.2], [2.4])):
        for e, v in zip(t["evals"], values):
            e["value"] = v
    record["final"].update(best_step=None, best_value=None)
    for e, v in zip(record["final"]["evals"], (0.95, 0.9, 0.97, 1.0)):  # the minimum at step 135
        e["value"] = v
    return record


def single_trial_record() -> dict:
    """train.lr given, epochs auto: one trial, no rungs, only the final run's evaluations; some values null."""
    return search_record(
        budget_s=None,
        planned={"final_steps": 33, "rungs": [], "candidates": [0.01], "seconds": None},
        trials=[{"trial": 0, "lr": 0.01, "status": "chosen", "evals": []}],
        chosen={"trial": 0, "lr": 0.01, "step": 0},
        final={
            "steps": 33,
            "best_step": None,
            "best_value": None,
            "evals": [
                {"step": 8, "value": 0.5, "seconds": None},
                {"step": 16, "value": None, "seconds": 20.0},
                {"step": 33, "value": 0.75, "seconds": 40.0},
            ],
        },
        seconds=None,
    )


def summary() -> dict:
    """The least an evaluation summary holds for the report to render (one system, one metric)."""
    metric = {"value": 0.8, "ci": [0.7, 0.9]}
    system = {
        "title": "tuned",
        "description": "the tuned model",
        "metrics": {"accuracy": metric},
        "loss": {"eval_loss": 0.5, "perplexity": 1.65, "token_accuracy": 0.9},
        "examples_per_s": 10.0,
    }
    return {
        "run_dir": "run",
        "data": "test.jsonl",
        "examples": 0,
        "method": "generate",
        "task": {"kind": "free", "primary": "accuracy"},
        "bootstrap": {"resamples": 100},
        "systems": {"tuned": system},
        "tuned_vs": {},
    }


RESULTS = {"tuned": {"per_example": [], "answers": []}}
