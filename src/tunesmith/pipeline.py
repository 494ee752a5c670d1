"""`tunesmith.train(config)`: the whole job in reading order, above training and evaluation.

Set up (data checked before anything is written), evaluate the base model, train, save the deliverable,
evaluate again, compare base zero-/few-shot against tuned, and write the summary.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.config import Config, load_config
from tunesmith.data import Conversations
from tunesmith.errors import DataError
from tunesmith.evaluate.answers import AnswerCache, base_identity, model_dtype, weights_identity
from tunesmith.evaluate.heldout import heldout_metrics
from tunesmith.evaluate.periodic import GenerationProbe
from tunesmith.hardware import kept_process_state
from tunesmith.model.load import eager
from tunesmith.precision import decoding_in
from tunesmith.progress import quiet_libraries
from tunesmith.runfolder import atomic_write_text, read_json, write_json
from tunesmith.training import distributed, finish, search, setup
from tunesmith.training.card import write_card
from tunesmith.training.fit import fit
from tunesmith.training.setup import Run
from tunesmith.training.trackers import Trackers, check_available

log = logging.getLogger("tunesmith")


@dataclass
class RunResult:
    """What a finished run produced (also written to `summary.json`)."""

    run_dir: Path
    summary: dict = field(default_factory=dict)

    @property
    def before(self) -> dict | None:
        return self.summary.get("before")

    @property
    def after(self) -> dict | None:
        return self.summary.get("after")


def train(
    config: Config | dict | str | Path,
    overrides: list[str] | None = None,
    *,
    resume: bool | None = None,
    show_progress: bool = True,
    data: Conversations | None = None,
) -> RunResult:
    """Fine-tune a model as `config` says; return the run's result. Resumes a run folder that has one.
    `data`: the training and held-out conversations `train_and_eval` already read for this config (the CLI reads
    them before torch loads, so a bad file is an error within a second); None reads them here.
    Torch's thread count and the RNGs are as they were when it returns."""
    if data is not None and overrides:
        raise ValueError("data= holds what was read for a config: apply the overrides before reading it")
    config = load_config(config, overrides)
    check_available(config)  # a tracker that is not installed: an error before anything is written
    quiet_libraries()
    with kept_process_state(), decoding_in(config.eval.precision), distributed.ended_after():
        run = setup.start(config, resume, data)
        done = _finished(run)
        if done is not None:
            return RunResult(run.folder.root, done if run.dist.is_main else {})
        measure = _measure(run) if run.recipe is not None else None
        if measure is not None and config.train.budget is not None and run.latest is None:
            search.plan_budget(run, measure)  # before anything is written: a too-short budget leaves no trace
        setup.build(run)
        run.clock.pause()  # the budget is for the training part: not the base model's evaluation
        _evaluate_before(run)
        run.clock.resume()
        setup.optimize(run)
        keeper = _search(run, measure, show_progress) if measure is not None else None
        probe = _generation_probe(run)
        trackers = Trackers.open(config, run.folder, run.state.step) if run.dist.is_main else Trackers.none()
        try:
            summary = _train_and_report(run, probe, keeper, trackers, show_progress)
        finally:
            trackers.close()
    return RunResult(run.folder.root, summary)


def _train_and_report(
    run: Run, probe: GenerationProbe | None, keeper: search.Keeper | None, trackers: Trackers, show_progress: bool
) -> dict:
    """Train, keep the best weights, save the deliverable, evaluate and compare; the summary (empty off rank 0)."""
    config = run.config
    fitted = fit(
        run,
        show_progress=show_progress,
        annotate=_annotations(probe, keeper, config),
        stop_early=lambda: bool(probe and probe.should_stop) or bool(keeper and keeper.should_stop()),
        trackers=trackers,
    )
    gathered = finish.gather(run)  # training's last collective
    distributed.end(run.dist)  # every rank ends the group together, before rank 0's work of its own
    model = finish.unshard(run, gathered)
    if model is None:  # not rank 0: rank 0 saves and evaluates
        return {}
    if probe is not None:
        probe.restore_best()  # only when eval.select_best: the final weights are the best step's
    chosen = keeper.finish(model) if keeper is not None else None  # auto: the best step's weights
    finish.save_final(model, run.prep.tokenizer, run.folder, config.method, run.prep.source.model_id)
    _save_labels(run)
    summary = {**finish.summary(run, fitted), **_evaluate_after(run, model)}
    if chosen is not None:
        summary["search"] = chosen
    if probe is not None and probe.summary() is not None:
        summary["best"] = probe.summary()
    summary.update(_compare(run, model, summary["after"]))
    write_card(run.folder.deliverable(config.method), config, summary, run.prep.source)
    write_json(run.folder.summary, summary)
    trackers.finish(config, summary)
    return summary


def _measure(run: Run) -> search.Measure:
    """The selection metric of an auto run, on its selection split."""
    from tunesmith.evaluate.selection import make_selector

    c, prep = run.config, run.prep
    if not prep.select_rows:
        raise DataError(
            "train.lr/train.epochs auto need a selection split and the training data is too small to carve one "
            "(2 rows at least): add rows, give data.select, or set train.lr and train.epochs",
            origin=c.data.train,
        )
    selector = make_selector(
        prep.select_convs,
        prep.select_rows,
        prep.train_convs,
        prep.tokenizer,
        system_prompt=c.data.system_prompt,
        answer_regex=c.eval.answer_regex,
        batch_size=c.eval.batch_size,
        max_new_tokens=c.eval.max_new_tokens,
        spec=c.eval,
    )
    run.labels = selector.task
    return search.Measure(selector, selector.metric, selector.higher_is_better, selector.rows, 0.0, 0.0)


def _search(run: Run, measure: search.Measure, show_progress: bool) -> search.Keeper:
    """The learning-rate search (a single trial when train.lr is set), and the keeper of the final run's best."""
    record = search.search(run, measure, run.clock, show_progress=show_progress)
    if run.latest is None and run.dist.is_main and run.state.step:  # the final curve starts with the survivor's
        chosen = record["trials"][record["chosen"]["trial"]]
        write_text = "".join(json.dumps(r) + "\n" for r in chosen["curve"])
        atomic_write_text(run.folder.metrics, write_text)
    return search.Keeper(run, measure, record)


def _annotations(probe: GenerationProbe | None, keeper: search.Keeper | None, config: Config):
    hooks = ([_probe_every(probe, config)] if probe is not None else []) + ([keeper.annotate] if keeper else [])
    if not hooks:
        return None

    def annotate(record: dict) -> None:
        for hook in hooks:
            hook(record)

    return annotate


def _save_labels(run: Run) -> None:
    """A label task's answer set, for label-constrained answers (generate, chat, serve, evaluate)."""
    task = run.labels
    if task is None:
        task = _label_task(run)
    if task is not None:
        write_json(
            run.folder.labels,
            {
                "labels": task.labels,
                "prefix": task.label_prefix,
                "answer_regex": task.answer_regex,
                "end_of_turn": task.answer_regex is None,
            },
        )


def _label_task(run: Run):
    from tunesmith.evaluate.selection import label_task

    prep = run.prep
    held = prep.select_convs or prep.eval_convs or prep.train_convs
    return label_task(prep.train_convs, held, run.config.eval.answer_regex, run.config.eval.task)


def _finished(run: Run) -> dict | None:
    """The summary of a run already finished at this length (None when there is training to do)."""
    if not run.folder.summary.is_file():
        return None
    done = read_json(run.folder.summary)
    early = (done.get("best") or {}).get("early_stopped") or "search" in done  # auto: its length was chosen
    if run.latest is None or done.get("steps", 0) >= run.total_steps or early:
        log.info(
            "%s holds this run, finished at step %s: nothing to train (raise train.max_steps or "
            "train.epochs to go on, or choose another output_dir)",
            run.folder.root,
            done.get("steps"),
        )
        return done
    return None


def _heldout(run: Run, model, identity: str | None, known: dict | None = None) -> dict:
    """Held-out loss and accuracy of `model`, with the answers kept in the run folder (`evaluate.answers`);
    `known`: its held-out stats, already computed."""
    prep = run.prep
    return heldout_metrics(
        model,
        prep.tokenizer,
        run.config,
        prep.eval_convs,
        prep.eval_rows,
        train=prep.train_convs,
        cache=AnswerCache(run.folder.answers),
        identity=identity,
        known=known,
    )


def _evaluate_before(run: Run) -> None:
    """The base model's held-out figures, once per run folder (a resumed run keeps the first)."""
    config = run.config
    if run.dist.is_main and run.prep.eval_rows and config.eval.enabled and not run.folder.eval_before.is_file():
        log.info("evaluating the base model on %d held-out rows", len(run.prep.eval_rows))
        base = base_identity(config.model.name, model_dtype(run.model))
        write_json(run.folder.eval_before, _heldout(run, run.model, base))


def _evaluate_after(run: Run, model) -> dict:
    config = run.config
    after = None
    if run.prep.eval_rows and config.eval.enabled:
        known = setup.stats_of_unchanged(run, model)
        if known is not None:
            log.info("held-out loss: the last periodic evaluation's (the weights are unchanged since)")
        with eager(config.train.compile):
            after = _heldout(run, model, weights_identity(run.folder.root, config.method), known)
    before = read_json(run.folder.eval_before) if run.folder.eval_before.is_file() else None
    return {"before": before, "after": after}


def _generation_probe(run: Run) -> GenerationProbe | None:
    """The periodic generation eval (eval.generate_every) on the first eval.generate_samples held-out rows."""
    e, prep = run.config.eval, run.prep
    if run.dist.world_size != 1 or not e.generate_every:
        return None
    if not any(not c.is_text for c in prep.eval_convs):
        log.warning("eval.generate_every needs chat eval data with answers: no periodic generation eval")
        return None
    return GenerationProbe(
        run.model,
        prep.tokenizer,
        prep.eval_convs,
        samples=e.generate_samples,
        system_prompt=run.config.data.system_prompt,
        answer_regex=e.answer_regex,
        max_new_tokens=e.max_new_tokens,
        batch_size=e.batch_size,
        select_best=e.select_best,
        patience=e.patience,
        free_text=e.free_text,
        spec=e,
    )


def _probe_every(probe: GenerationProbe, config: Config):
    def annotate(record: dict) -> None:
        if record["step"] % config.eval.generate_every == 0:
            with eager(config.train.compile):
                record[probe.key] = probe(record["step"])

    return annotate


def _compare(run: Run, model, after: dict | None) -> dict:
    """Base zero-shot, base few-shot and tuned on the held-out chat data: report.html and its headline."""
    config = run.config
    if after is None or not config.eval.report or not any(not c.is_text for c in run.prep.eval_convs):
        return {}
    from tunesmith.evaluate import evaluate_run

    shots = config.eval.few_shot
    log.info("comparing base zero-shot, %stuned on the held-out data", f"base {shots}-shot and " if shots else "")
    with eager(config.train.compile):
        report = evaluate_run(
            run.folder.root,
            model=model,
            tokenizer=run.prep.tokenizer,
            config=config,
            few_shot=config.eval.few_shot,
            max_samples=config.eval.max_samples,
        )
    primary = report["task"]["primary"]
    return {
        "comparison": {
            "report": str(run.folder.report_html),
            "metric": primary,
            **{k: s["metrics"][primary]["value"] for k, s in report["systems"].items()},
        }
    }
