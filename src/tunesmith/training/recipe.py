"""`tunesmith.train(config)`: everything around the loop, in reading order.

Check config, data, tokenizer and model first (a bad input fails before anything is written), then open the
run folder, evaluate the base model, train, save the final adapter, evaluate again, and write the summary.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import resource
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tunesmith import checkpoint, distributed
from tunesmith.adapters import apply_method, count_parameters
from tunesmith.check.contract import refuse_contract_errors
from tunesmith.checkpoint import LoopState, atomic_folder, atomic_write_text
from tunesmith.config import Config, dump_config, load_config
from tunesmith.data import load_conversations, split_eval
from tunesmith.data.types import Conversation
from tunesmith.errors import DataError, RunError
from tunesmith.evaluate.metrics import exact_match
from tunesmith.fused import fuse_for_training
from tunesmith.generation import generate_answers
from tunesmith.hardware import choose_threads, resolve_device, resolve_dtype
from tunesmith.models import compile_blocks, load_model, load_tokenizer, resolve_model, resolve_packing
from tunesmith.pack import collate, collate_padded, plan_batches
from tunesmith.progress import TrainProgress
from tunesmith.render import Rendered, check_max_length, render_all
from tunesmith.training.loop import LoopHooks, train_loop
from tunesmith.training.loss import mean_loss
from tunesmith.training.metrics import MetricsWriter
from tunesmith.runfolder import read_json, write_json

log = logging.getLogger("tunesmith")

# Settings that may change when re-running into an existing run folder (they do not change what was done).
RESUMABLE_CHANGES = {"train.max_steps", "train.epochs", "train.save_every", "train.eval_every",
                     "train.log_every", "train.keep_checkpoints", "train.threads", "model.attention",
                     "model.device", "train.fuse"}


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


@dataclass
class Prepared:
    """Everything checked before the run folder is touched."""

    config: Config
    tokenizer: object
    source: object
    train_rows: list[Rendered]
    eval_rows: list[Rendered]
    eval_convs: list[Conversation]
    dropped: list[Rendered]


def prepare(config: Config) -> Prepared:
    """Read and render the data and load the tokenizer; raise a clear error on any bad input."""
    d = config.data
    train_convs = load_conversations(d.train, d.columns)
    if d.eval is not None:
        eval_convs = load_conversations(d.eval, d.columns)
    elif d.eval_fraction is not None:
        train_convs, eval_convs = split_eval(train_convs, d.eval_fraction, config.train.seed)
    else:
        eval_convs = []
        if config.eval.enabled:
            log.info("no held-out data, so no before/after evaluation: set data.eval (a file) or "
                     "data.eval_fraction=0.1 (a split of train)")
    source = resolve_model(config.model.name)
    tokenizer = load_tokenizer(source, trust_remote_code=config.model.trust_remote_code)
    check_max_length(tokenizer, config.train.max_length, d.system_prompt)
    opts = dict(max_length=config.train.max_length, system_prompt=d.system_prompt, train_on_prompt=d.train_on_prompt)
    train_rows, dropped = render_all(train_convs, tokenizer, **opts)
    eval_rows, eval_dropped = render_all(eval_convs, tokenizer, **opts)
    # the fast checks of `tunesmith check`: refuse rows that would teach the wrong thing (masked eos, ...)
    refuse_contract_errors(train_convs + eval_convs, train_rows + dropped + eval_rows + eval_dropped, tokenizer,
                           d.system_prompt)
    if not train_rows:
        raise DataError(f"no training row keeps a trained token within max_length={config.train.max_length} "
                        f"(first: {dropped[0].origin})", origin=d.train)
    for r in (dropped + eval_dropped)[:5]:
        log.warning("%s: dropped: no trained token left after truncation to %d tokens", r.origin,
                    config.train.max_length)
    if len(dropped + eval_dropped) > 5:
        log.warning("... %d rows dropped in all", len(dropped + eval_dropped))
    truncated = sum(r.truncated for r in train_rows)
    if truncated:
        log.warning("%d training rows truncated to max_length=%d (%d trained tokens lost)", truncated,
                    config.train.max_length, sum(r.trained_tokens_lost for r in train_rows))
    return Prepared(config, tokenizer, source, train_rows, eval_rows, eval_convs, dropped)


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb, name = a.get(key), b.get(key), f"{prefix}{key}"
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, name + ".")
        elif va != vb:
            out.append(name)
    return out


def open_run_dir(config: Config, resume: bool | None) -> tuple[Path, Path | None]:
    """The run folder, and the checkpoint to resume from (None for a fresh start)."""
    run_dir = Path(config.output_dir)
    saved = run_dir / "config.yaml"
    latest = (checkpoint.list_checkpoints(run_dir / "checkpoints") or [None])[-1]
    if not saved.is_file():
        if resume:
            raise RunError("nothing to resume: no run here", origin=str(run_dir))
        if run_dir.exists() and any(run_dir.iterdir()):
            raise RunError("the output folder exists and is not a tunesmith run; choose another output_dir",
                           origin=str(run_dir))
        return run_dir, None
    if resume is False:
        raise RunError("a run already exists here; resume it (--resume) or choose another output_dir",
                       origin=str(run_dir))
    old = load_config(saved).model_dump(mode="json")
    changed = [k for k in _diff(old, config.model_dump(mode="json")) if k not in RESUMABLE_CHANGES]
    if changed:
        raise RunError(f"holds a run with a different config ('{changed[0]}' differs); choose another "
                       "output_dir", origin=str(run_dir))
    return run_dir, latest


def evaluate(model, prep: Prepared, batches: list[dict]) -> dict:
    """Held-out loss and, for chat data, task accuracy (exact match) on up to eval.max_samples rows."""
    cfg = prep.config
    result = {"eval_loss": mean_loss(model, batches)}
    convs = [c for c in prep.eval_convs if not c.is_text][: cfg.eval.max_samples]
    if convs:
        answers = generate_answers(model, prep.tokenizer, [list(c.prompt_messages()) for c in convs],
                                   system_prompt=cfg.data.system_prompt, max_new_tokens=cfg.eval.max_new_tokens,
                                   batch_size=cfg.eval.batch_size)
        result["accuracy"] = exact_match(answers, [c.reference() or "" for c in convs], cfg.eval.answer_regex)
        result["samples"] = len(convs)
    return result


def _unsharded(prep: Prepared, config: Config, device, weights: dict) -> torch.nn.Module:
    """The trained model as one plain module: the base model loaded again, with the gathered trainable weights."""
    model = apply_method(load_model(prep.source, dtype=config.model.dtype, attention=config.model.attention,
                                    trust_remote_code=config.model.trust_remote_code, device=device,
                                    quantize=config.model.quantize), config.method, config.lora)
    checkpoint.load_weights(model, weights, "the sharded model")
    return model


def train(config: Config | dict | str | Path, overrides: list[str] | None = None, *,
          resume: bool | None = None, show_progress: bool = True) -> RunResult:
    """Fine-tune a model as `config` says; return the run's result. Resumes a run folder that has one."""
    config = load_config(config, overrides)
    device = resolve_device(config.model.device)
    dist = distributed.init(device)
    threads = choose_threads(config.train.threads, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    prep = prepare(config)
    run_dir, latest = open_run_dir(config, resume)
    summary_path = run_dir / "summary.json"
    t = config.train
    lengths = [len(r.input_ids) for r in prep.train_rows]
    micro_per_epoch = len(distributed.shard(plan_batches(lengths, t.batch_size, seed=t.seed, epoch=0), dist))
    steps_per_epoch = math.ceil(micro_per_epoch / t.grad_accum)
    total_steps = t.max_steps or t.epochs * steps_per_epoch
    if summary_path.is_file():  # a finished run: nothing to train unless it was asked for more steps since
        done = read_json(summary_path)
        if latest is None or done.get("steps", 0) >= total_steps or (done.get("best") or {}).get("early_stopped"):
            log.info("%s holds this run, finished at step %s: nothing to train (raise train.max_steps or "
                     "train.epochs to go on, or choose another output_dir)", run_dir, done.get("steps"))
            return RunResult(run_dir, done if dist.is_main else {})
    torch.manual_seed(config.train.seed)
    model = apply_method(load_model(prep.source, dtype=config.model.dtype, attention=config.model.attention,
                                    trust_remote_code=config.model.trust_remote_code, device=device,
                                    quantize=config.model.quantize),
                         config.method, config.lora)
    trainable, total = count_parameters(model)
    packing = resolve_packing(config.train.packing, model)
    fused = fuse_for_training(model, config, device, total_steps)  # after the packing check (the model's own modules)
    where = f"{device}, {resolve_dtype(config.model.dtype, device)}" + \
        (", 4-bit NF4 base" if config.model.quantize == "4bit" else "") + \
        (f", {threads} threads" if device.type == "cpu" else "")
    log.info("%s: %s on %s, %s of %s parameters trainable, %s batches%s", config.model.name, config.method, where,
             f"{trainable:,}", f"{total:,}", "packed" if packing else "padded",
             f", {fused} fused RMSNorms" if fused else "")
    eval_batches = [collate_padded(prep.eval_rows[i:i + config.eval.batch_size], prep.tokenizer.pad_token_id)
                    for i in range(0, len(prep.eval_rows), config.eval.batch_size)]
    run_dir.mkdir(parents=True, exist_ok=True)
    if dist.is_main:
        atomic_write_text(run_dir / "config.yaml", dump_config(config))
    if dist.is_main and eval_batches and config.eval.enabled and not (run_dir / "eval_before.json").is_file():
        log.info("evaluating the base model on %d held-out rows", len(prep.eval_rows))
        write_json(run_dir / "eval_before.json", evaluate(model, prep, eval_batches))

    wrapped = distributed.wrap(model, dist, t.distributed)  # FSDP shards `model` in place: before the optimizer
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.train.lr, weight_decay=config.train.weight_decay)

    from transformers import get_scheduler

    scheduler = get_scheduler("constant_with_warmup" if t.lr_scheduler == "constant" else t.lr_scheduler, optimizer,
                              num_warmup_steps=round(t.warmup_ratio * total_steps), num_training_steps=total_steps)
    state = LoopState()
    if latest is not None:
        state = checkpoint.load(latest, model, optimizer, scheduler, dist.rank)
        log.info("resuming from %s (step %d)", latest, state.step)

    cache: dict[int, list] = {}

    def plan(epoch: int) -> list[dict]:
        if epoch not in cache:
            cache.clear()
            order = distributed.shard(plan_batches(lengths, t.batch_size, seed=t.seed, epoch=epoch,
                                                   group_by_length=t.group_by_length), dist)
            cache[epoch] = [collate([prep.train_rows[i] for i in b], prep.tokenizer.pad_token_id, packing)
                            for b in order]
        return cache[epoch]

    stop = {"flag": False}
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True)) \
        if hasattr(signal, "SIGTERM") and _main_thread() else None
    writer = MetricsWriter(run_dir / "metrics.jsonl", resume_step=state.step, enabled=dist.is_main,
                           log_every=t.log_every)
    bar = TrainProgress(total_steps, state.step, enabled=dist.is_main and show_progress)
    ckpt_root = run_dir / "checkpoints"

    probe = _generation_probe(model, prep) if dist.world_size == 1 and config.eval.generate_every else None

    def log_step(record: dict) -> None:
        if probe is not None and record["step"] % config.eval.generate_every == 0:
            with eager(t.compile):
                record[probe.key] = probe(record["step"])
        writer(record)
        bar.update(record)

    def save(s: LoopState) -> None:
        weights, optimizer_state = checkpoint.trainable_state(model, optimizer)  # every rank: FSDP gathers
        rngs = distributed.gather_object(checkpoint.rng_state(), dist)  # each rank draws its own dropout
        if dist.is_main:
            checkpoint.save(ckpt_root, weights, optimizer_state, scheduler, s, t.keep_checkpoints, rngs)

    def eval_loss() -> float:
        with eager(t.compile):
            return mean_loss(model, eval_batches)

    if t.compile:
        log.info("compiling %d decoder blocks with torch.compile (the first steps are slow)", compile_blocks(model))
    hooks = LoopHooks(plan=plan, total_steps=total_steps, log=log_step, save=save,
                      evaluate=eval_loss if eval_batches else None,
                      should_stop=lambda: stop["flag"] or (probe is not None and probe.should_stop))
    started, start_step, start_tokens = time.perf_counter(), state.step, state.tokens
    try:
        state = train_loop(wrapped, optimizer, scheduler, t, hooks, state, dist)
    finally:
        bar.close()
        writer.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    seconds = time.perf_counter() - started
    if stop["flag"]:
        raise RunError(f"stopped by SIGTERM at step {state.step}; the checkpoint is saved, re-run to resume",
                       origin=str(run_dir))
    if state.step % t.save_every:
        save(state)
    if distributed.is_sharded(model):  # rank 0 goes on (save, evaluate) with a plain copy of the trained model
        weights = distributed.gather_trainable(model)
        del wrapped, optimizer, params
        model = _unsharded(prep, config, device, weights) if dist.is_main else None
    if not dist.is_main:
        return RunResult(run_dir)

    if probe is not None:
        probe.restore_best()  # only when eval.select_best: the final weights are the best step's
    save_final(model, prep.tokenizer, run_dir, config.method)
    with eager(t.compile):
        after = evaluate(model, prep, eval_batches) if eval_batches and config.eval.enabled else None
    before = read_json(run_dir / "eval_before.json") if (run_dir / "eval_before.json").is_file() else None
    summary = {
        "run_dir": str(run_dir), "model": config.model.name, "method": config.method, "steps": state.step,
        "epochs": state.epoch + state.batch / max(micro_per_epoch, 1), "train_rows": len(prep.train_rows),
        "eval_rows": len(prep.eval_rows), "dropped_rows": [str(r.origin) for r in prep.dropped],
        "trainable_parameters": trainable, "total_parameters": total, "threads": threads, "device": str(device),
        "train_seconds": round(seconds, 2), "tokens": state.tokens,
        "tokens_per_s": round((state.tokens - start_tokens) / seconds, 1) if state.step > start_step else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **({"peak_gpu_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)} if device.type == "cuda" else {}),
        "before": before, "after": after,
    }
    if probe is not None and probe.summary() is not None:
        summary["best"] = probe.summary()
    if after is not None and config.eval.report and any(not c.is_text for c in prep.eval_convs):
        from tunesmith.evaluate import evaluate_run

        log.info("comparing base zero-shot, base %d-shot and tuned on the held-out data", config.eval.few_shot)
        with eager(t.compile):
            report = evaluate_run(run_dir, model=model, tokenizer=prep.tokenizer, config=config,
                                  few_shot=config.eval.few_shot, max_samples=config.eval.max_samples)
        summary["comparison"] = {"report": str(run_dir / "report.html"), "metric": report["task"]["primary"],
                                 **{k: s["metrics"][report["task"]["primary"]]["value"]
                                    for k, s in report["systems"].items()}}
    write_json(summary_path, summary)
    return RunResult(run_dir, summary)


def _generation_probe(model, prep: Prepared):
    """The periodic generation eval (eval.generate_every) on the first eval.generate_samples held-out rows."""
    from tunesmith.evaluate.periodic import GenerationProbe

    e = prep.config.eval
    if not any(not c.is_text for c in prep.eval_convs):
        log.warning("eval.generate_every needs chat eval data with answers: no periodic generation eval")
        return None
    return GenerationProbe(model, prep.tokenizer, prep.eval_convs, samples=e.generate_samples,
                           system_prompt=prep.config.data.system_prompt, answer_regex=e.answer_regex,
                           max_new_tokens=e.max_new_tokens, batch_size=e.batch_size, select_best=e.select_best,
                           patience=e.patience)


def save_final(model, tokenizer, run_dir: Path, method: str) -> Path:
    """The deliverable: a PEFT adapter folder (`adapter/`) or a full model folder (`model/`), with tokenizer."""
    name = "model" if method == "full" else "adapter"

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return atomic_folder(run_dir / name, write)


def eager(compiled: bool):
    """Run compiled blocks eagerly (evaluation and generation: other shapes, no gradients, no recompiles)."""
    return torch.compiler.set_stance("force_eager") if compiled else contextlib.nullcontext()


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
