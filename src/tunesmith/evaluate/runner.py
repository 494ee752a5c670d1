"""`evaluate_run`: put one test set to every system, score it, and write eval.json, predictions.jsonl,
report.html and report.md. Called by `tunesmith eval` and at the end of `tunesmith train`."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunesmith.config import Config
from tunesmith.data import load_conversations, train_and_eval
from tunesmith.data.types import Conversation
from tunesmith.errors import DataError, RunError
from tunesmith.evaluate.answers import AnswerCache, base_identity, model_dtype, weights_identity
from tunesmith.evaluate.likelihood import candidate_ids, rank_labels, token_stats
from tunesmith.evaluate.stats import mean_ci, resamples
from tunesmith.evaluate.systems import System, is_adapter_model, pick_shots
from tunesmith.evaluate.task import Task, score, task_for
from tunesmith.generation import LabelSet
from tunesmith.precision import decoding_in
from tunesmith.render import render, render_prompt

log = logging.getLogger("tunesmith")
EVAL_MAX_LENGTH = 8192  # loss rows are never truncated short of this (few-shot prompts are long)


def test_and_train_data(config: Config, data: str | Path | None) -> tuple[list[Conversation], list[Conversation]]:
    """The chat test conversations (`data`, else the run's eval data) and the training pool for few-shot."""
    d = config.data
    for key, path in (("data.train", d.train), ("data.eval", d.eval if data is None else None)):
        if path is not None and not Path(path).exists():  # a run's relative paths: from where it was trained
            use = "few-shot examples and the label set" if key == "data.train" else "the test rows (or pass --data)"
            raise DataError(
                f"no such file: the run's {key}, read for {use}, is relative to the folder the run was trained "
                "from: run `tunesmith eval` there",
                origin=path,
            )
    if data is not None:
        train, test = load_conversations(d.train, d.columns), load_conversations(data, d.columns)
    else:
        train, held_out = train_and_eval(d, config.train.seed)
        if held_out is None:
            raise RunError("no test data: pass --data FILE (the run's config has no eval data)")
        test = held_out
    test = [c for c in test if not c.is_text and c.reference() is not None]
    if not test:
        raise DataError("no chat record with an assistant answer to score", origin=str(data or d.eval))
    return test, train


def build_systems(
    config: Config,
    model,
    tokenizer,
    *,
    train_pool: Sequence[Conversation],
    task: Task,
    few_shot: int,
    instruction: str | None,
    seed: int,
    compare: Sequence[str | Path] = (),
    include_base: bool = True,
    tuned_identity: str | None = None,
) -> list[System]:
    """Base zero-shot, base few-shot (when `few_shot` > 0), the tuned run, then each compared run."""
    systems = []
    if include_base:
        instruction = instruction if instruction is not None else config.data.system_prompt
        if is_adapter_model(model):
            base, base_tok, adapter = model, tokenizer, True
        else:
            from tunesmith.model import build_model, device_of, load_tokenizer, resolve_model

            source = resolve_model(config.model.name)
            base = build_model(config, trainable=False, source=source, device=device_of(model)).eval()
            base_tok = load_tokenizer(
                source, trust_remote_code=config.model.trust_remote_code, template=config.data.template
            )
            adapter = False
        said = "the model's default system prompt" if instruction is None else "the instruction as system prompt"
        base_id = base_identity(config.model.name, model_dtype(base))
        systems.append(
            System(
                "base_zero_shot",
                "base zero-shot",
                f"{config.model.name}, {said}",
                base,
                base_tok,
                instruction,
                base_of_adapter=adapter,
                identity=base_id,
            )
        )
        if few_shot > 0:
            shots = pick_shots(train_pool, few_shot, seed, task)
            systems.append(
                System(
                    "base_few_shot",
                    f"base {few_shot}-shot",
                    f"{config.model.name}, {said}, {len(shots) // 2} training examples as prior turns (seed {seed})",
                    base,
                    base_tok,
                    instruction,
                    shots,
                    adapter,
                    identity=base_id,
                )
            )
    systems.append(
        System(
            "tuned",
            "tuned",
            f"{config.method} run, system prompt as trained",
            model,
            tokenizer,
            config.data.system_prompt,
            identity=tuned_identity,
        )
    )
    for other in compare:
        from tunesmith.model.tuned import load_tuned

        m, tok, cfg = load_tuned(other)
        systems.append(
            System(
                f"run:{Path(other).name}",
                Path(other).name,
                f"{cfg.method} run {other}",
                m,
                tok,
                cfg.data.system_prompt,
                identity=weights_identity(other, cfg.method),
            )
        )
    return systems


def run_system(
    system: System,
    task: Task,
    test: Sequence[Conversation],
    *,
    method: str,
    max_new_tokens: int,
    batch_size: int,
    labels: LabelSet | None = None,
    cache: AnswerCache | None = None,
) -> dict:
    """Answers (generated, or the top-ranked label) and held-out token statistics of one system.

    With `labels`, generated answers are held to the label set (every system alike, so the comparison is fair)."""
    tok = system.tokenizer
    started, cache = time.perf_counter(), cache or AnswerCache(None)
    generated = len(test)
    with system.active():
        if method == "rank":
            prompts = [render_prompt(system.prompt(c), tok, system_prompt=system.system_prompt) for c in test]
            cands = candidate_ids(tok, task.labels, task.label_prefix, end_of_turn=task.answer_regex is None)
            ranked = rank_labels(system.model, prompts, cands, tok.pad_token_id, batch_rows=batch_size * 2)
            answers = [task.label_prefix + task.labels[max(range(len(s)), key=s.__getitem__)] for s in ranked]
        else:
            answers = cache.answers(
                system.identity,
                system.model,
                tok,
                [system.prompt(c) for c in test],
                system_prompt=system.system_prompt,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                labels=labels,
                progress=f"answering: {system.title}",
            )
            generated = cache.generated
        seconds = time.perf_counter() - started
        rows = [
            render(system.conversation(c), tok, max_length=EVAL_MAX_LENGTH, system_prompt=system.system_prompt)
            for c in test
        ]
        title = f"scoring the references: {system.title}"
        loss = cache.stats(
            system.identity,
            system.model,
            rows,
            batch_size,
            lambda: token_stats(system.model, rows, tok.pad_token_id, batch_size, title),
        )
    return {"answers": answers, "seconds": seconds, "generated": generated, "loss": loss}


def diffs(task: Task, base: dict, tuned: dict, samples: list[list[int]]) -> dict:
    """What tuning fixed and broke relative to a baseline, on the primary metric, with the paired interval."""
    name = task.row_metric
    b = [row[name] for row in base["per_example"]]
    t = [row[name] for row in tuned["per_example"]]
    delta = [y - x for x, y in zip(b, t)]
    step = 0.5 if name in ("accuracy", "exact_match", "json_valid", "schema_match", "pass_at_1") else 0.25
    return {
        "metric": name,
        "delta": sum(delta) / len(delta),
        "ci": list(mean_ci(delta, samples)),
        "fixed": [i for i, d in enumerate(delta) if d >= step],
        "broke": [i for i, d in enumerate(delta) if d <= -step],
    }


def score_systems(
    systems: Sequence[System],
    task: Task,
    test: Sequence[Conversation],
    references: Sequence[str],
    samples: list[list[int]],
    *,
    method: str,
    max_new_tokens: int,
    batch_size: int,
    labels: LabelSet | None = None,
    cache: AnswerCache | None = None,
) -> dict[str, dict]:
    """Each system's answers, scores (with bootstrap intervals over `samples`) and speed, by system key."""
    results: dict[str, dict] = {}
    how = method if method != "generate" or labels is None else f"generate, held to {len(labels.labels)} labels"
    for system in systems:
        log.info("evaluating %s on %d examples (%s)", system.title, len(test), how)
        out = run_system(
            system,
            task,
            test,
            method=method,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            labels=labels,
            cache=cache,
        )
        scored = score(
            task, out["answers"], references, samples, label_only=method == "rank", extras=[c.extra for c in test]
        )
        results[system.key] = {
            "title": system.title,
            "description": system.description,
            **out,
            **scored,
            # answers kept from an earlier pass took no time now: a speed only where all were generated here
            "examples_per_s": len(test) / max(out["seconds"], 1e-9) if out["generated"] == len(test) else None,
        }
    return results


def evaluate_run(
    run_dir: str | Path,
    *,
    data: str | Path | None = None,
    out_dir: str | Path | None = None,
    compare: Sequence[str | Path] = (),
    few_shot: int = 3,
    instruction: str | None = None,
    labels: Sequence[str] | None = None,
    answer_regex: str | None = None,
    schema: dict | None = None,
    method: str = "generate",
    max_samples: int | None = None,
    max_new_tokens: int | None = None,
    batch_size: int | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    include_base: bool = True,
    free_text: bool | None = None,
    precision: str | None = None,
    model=None,
    tokenizer=None,
    config: Config | None = None,
) -> dict:
    """Evaluate a run against its baselines; write the four outputs into `out_dir` (default: the run). On a label
    task every system's generated answers are held to the label set unless `free_text` (default: `eval.free_text`).
    `precision`: how answers are decoded on a CPU (default: `eval.precision`; `precision.decoding_in`)."""
    from tunesmith.evaluate.report import write_reports
    from tunesmith.model.tuned import load_tuned
    from tunesmith.runfolder import RunFolder, run_config, write_json

    run_dir = Path(run_dir)
    config = config or run_config(run_dir)
    test, train_pool = test_and_train_data(config, data)  # bad data: an error before the model loads
    if model is None:
        model, tokenizer, config = load_tuned(run_dir)
    test = test[:max_samples] if max_samples else test
    references = [c.reference() or "" for c in test]
    task = task_for(
        config.eval,
        references,
        answer_regex=answer_regex,
        labels=labels,
        extra_references=[c.reference() or "" for c in train_pool if not c.is_text],
        rows_extra=[c.extra for c in test],
        schema=schema,
    )
    if method == "rank" and task.kind != "label":
        raise DataError(
            "--method rank needs a label task (give --labels, or an answer_regex whose answers form a small label set)",
            origin=str(data or config.data.eval),
        )
    systems = build_systems(
        config,
        model,
        tokenizer,
        train_pool=train_pool,
        task=task,
        few_shot=few_shot,
        instruction=instruction,
        seed=seed,
        compare=compare,
        include_base=include_base,
        tuned_identity=weights_identity(run_dir, config.method),
    )
    free = config.eval.free_text if free_text is None else free_text
    label_set = None if free or method != "generate" else task.label_set()
    samples = resamples(len(test), n_resamples, seed)
    with decoding_in(precision or config.eval.precision):
        results = score_systems(
            systems,
            task,
            test,
            references,
            samples,
            method=method,
            max_new_tokens=max_new_tokens or config.eval.max_new_tokens,
            batch_size=batch_size or config.eval.batch_size,
            labels=label_set,
            cache=AnswerCache(RunFolder(run_dir).answers),
        )
    comparisons = {key: diffs(task, res, results["tuned"], samples) for key, res in results.items() if key != "tuned"}
    summary = {
        "run_dir": str(run_dir),
        "data": str(data or config.data.eval or "eval_fraction split"),
        "examples": len(test),
        "method": method,
        "label_constrained": label_set is not None,  # generated answers held to the label set
        "task": task.to_dict(),
        "bootstrap": {"resamples": n_resamples, "seed": seed, "level": 0.95},
        "base_loss": _base_loss(run_dir),  # the loss curve's step 0: the base model on the run's held-out rows
        **_digest(results, comparisons),
    }
    out_dir = Path(out_dir) if out_dir is not None else run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    folder = RunFolder(out_dir)
    write_json(folder.eval_json, summary)
    write_predictions(folder.predictions, test, references, results, comparisons)
    write_reports(folder, summary, test, references, results, comparisons, RunFolder(run_dir).metrics)
    return summary


def _base_loss(run_dir: Path) -> float | None:
    from tunesmith.runfolder import RunFolder, read_json

    path = RunFolder(run_dir).eval_before
    return read_json(path).get("eval_loss") if path.is_file() else None


def _digest(results: dict, comparisons: dict) -> dict:
    """The eval.json view of the results: per system metrics, loss, speed (no per-example data)."""
    keep = ("title", "description", "metrics", "loss", "seconds", "generated", "examples_per_s", "confusion")
    return {
        "systems": {k: {key: r[key] for key in keep if key in r} for k, r in results.items()},
        "tuned_vs": {
            k: {
                "metric": c["metric"],
                "delta": c["delta"],
                "ci": c["ci"],
                "fixed": len(c["fixed"]),
                "broke": len(c["broke"]),
            }
            for k, c in comparisons.items()
        },
    }


def write_predictions(
    path: Path, test: Sequence[Conversation], references: Sequence[str], results: dict, comparisons: dict
) -> None:
    """One line per test example: origin, prompt, reference, every system's answer and scores, and whether
    tuning fixed or broke it relative to each baseline."""
    verdicts = {
        key: {**dict.fromkeys(c["fixed"], "fixed"), **dict.fromkeys(c["broke"], "broke")}
        for key, c in comparisons.items()
    }
    with open(path, "w", encoding="utf-8") as fh:
        for i, conv in enumerate(test):
            row: dict[str, Any] = {
                "index": i,
                "origin": str(conv.origin),
                "prompt": [{"role": t.role, "content": t.content} for t in conv.prompt_messages()],
                "reference": references[i],
                "systems": {},
            }
            for key, res in results.items():
                entry = {"answer": res["answers"][i], "scores": res["per_example"][i]}
                if "predicted" in res:
                    entry.update(label=res["predicted"][i], gold=res["gold"][i])
                if "codes" in res:
                    entry["codes"] = res["codes"][i]
                    if "invalid" in res:
                        entry["invalid_codes"] = res["invalid"][i]
                if "execution" in res:
                    entry["execution"] = res["execution"][i]
                row["systems"][key] = entry
            row["tuned_vs"] = {key: v.get(i, "same") for key, v in verdicts.items()}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
