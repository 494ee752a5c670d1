"""One shared model, many adapters, one worker that decodes every active request at every step (continuous
batching): requests join a running batch as they arrive and leave it when done, cancelled or late.

Each served model (every adapter, and the bare base) decodes on its own merged copy where memory allows, one batch
per model; otherwise one batch on the peft model, each row with its own adapter. A run's labels.json holds its
answers.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tunesmith.errors import ConfigError
from tunesmith.generation import LabelSet, LabelTrie, TextStream, picker
from tunesmith.model.adapters import is_quantized
from tunesmith.model.decode import Batch
from tunesmith.model.inference import inference_dtype, merged_copies
from tunesmith.render import prompt_head, stop_token_ids
from tunesmith.serve import MAX_BATCH

log = logging.getLogger("tunesmith")

JOIN_ROWS = 16  # new prompts computed in one pass at most (a longer pass holds more activations at once)


@dataclass(frozen=True)
class ServedModel:
    """A name clients ask for, the peft adapter behind it (None: the base weights), its system prompt, and the
    label set its chat answers are held to by default (a run's labels.json; None: free text)."""

    name: str
    adapter: str | None
    system_prompt: str | None
    labels: LabelSet | None = None
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass
class Job:
    """One generation request. `emit` receives ("text", str), then ("done", finish_reason, n_tokens) or
    ("error", message); it is called from the worker thread."""

    served: ServedModel
    prompt: list[int]
    max_tokens: int
    emit: Callable[[tuple], None]
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    labels: LabelSet | None = None  # hold the answer to this label set
    deadline: float | None = None  # time.monotonic() past which the request is dropped with a timeout error
    cancelled: threading.Event = field(default_factory=threading.Event)

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline


class QueueFull(Exception):
    """More requests are waiting than the server accepts."""


MIXED = "__mixed__"  # the group of rows decoding on the PEFT model itself, each with its own adapter


@dataclass
class _Group:
    """Rows decoding together on one model, and the logits of their next token."""

    batch: Batch
    running: list[_Running] = field(default_factory=list)
    logits: torch.Tensor | None = None

    def add(self, row: _Running, logits: torch.Tensor) -> None:
        self.running.append(row)
        self.logits = logits[None] if self.logits is None else torch.cat([self.logits, logits[None]])


class Engine:
    """Owns the models; decodes queued jobs on a single worker thread. `plain` maps an adapter name (None: the
    base weights) to a merged copy its rows decode on; an adapter without one decodes on `model`."""

    def __init__(
        self,
        model,
        tokenizer,
        models: dict[str, ServedModel],
        *,
        max_queue: int = 256,
        plain: dict | None = None,
        max_active: int = MAX_BATCH,
    ):
        self.model, self.tokenizer, self.models = model, tokenizer, models
        self.plain = plain or {}
        self.context = int(getattr(model.config, "max_position_embeddings", 2048))
        self.stop_ids = stop_token_ids(tokenizer)
        self._tries: dict[LabelSet, LabelTrie] = {}
        self._heads: dict[str, list[int]] = {}  # served model -> the tokens its prompts start with
        self._batches: dict[str | None, Batch] = {}  # kept while idle: each keeps its computed prompt heads
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self.max_active = max_active  # requests decoding at once (each row holds its KV cache); the others wait
        self._thread: threading.Thread | None = None
        self.served_requests = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="tunesmith-worker", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop the worker."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def submit(self, job: Job) -> None:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFull(f"{self._queue.maxsize} requests are already waiting") from None

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def _work(self) -> None:
        """Every step: take queued requests while there is room, then advance every group one token: pick each
        row's next token, let finished rows go, one forward pass for the rows left."""
        groups: dict[str | None, _Group] = {}
        closing = False
        while groups or not closing:
            active = sum(len(g.running) for g in groups.values())
            arrived: dict[str | None, list[Job]] = {}
            while not closing and active < self.max_active:
                try:  # block only when nothing is decoding
                    job = self._queue.get(block=active == 0 and not arrived)
                except queue.Empty:
                    break
                if job is None:
                    closing = True
                elif self._live(job) and self._has_room(job):
                    key = job.served.adapter if job.served.adapter in self.plain else MIXED
                    arrived.setdefault(key, []).append(job)
                    active += 1
            for key, jobs in arrived.items():  # each model's new prompts computed together
                group = groups.get(key) or _Group(self._batch(key))
                for part in self._by_head(jobs):
                    for start in range(0, len(part), JOIN_ROWS):
                        self._join(group, part[start : start + JOIN_ROWS])
                if group.running:
                    groups[key] = group
                else:
                    group.batch.clear()
            for key in list(groups):
                if not self._advance(groups[key]):
                    groups.pop(key).batch.clear()

    def _batch(self, key: str | None) -> Batch:
        """The batch a model's rows decode in (made once: it keeps the prompt heads it computed)."""
        if key not in self._batches:
            self._batches[key] = Batch(self.plain.get(key, self.model), self.tokenizer.pad_token_id)
        return self._batches[key]

    def _head(self, job: Job) -> int:
        """How many leading tokens of the job's prompt its model's prompts all start with (its system turn)."""
        name = job.served.name
        if name not in self._heads:
            self._heads[name] = prompt_head(self.tokenizer, job.served.system_prompt)
        head, n = self._heads[name], 0
        while n < min(len(head), len(job.prompt) - 1) and head[n] == job.prompt[n]:
            n += 1
        return n

    def _by_head(self, jobs: list[Job]) -> list[list[Job]]:
        """`jobs` in parts that share an adapter and a prompt head, in order of arrival."""
        parts: dict[tuple, list[Job]] = {}
        for job in jobs:
            parts.setdefault((job.served.adapter, tuple(job.prompt[: self._head(job)])), []).append(job)
        return list(parts.values())

    def _advance(self, group: _Group) -> bool:
        """One token for every row of `group`; whether any row is still decoding."""
        assert group.logits is not None
        tokens, keep = [], []
        for j, r in enumerate(group.running):
            token = r.next_token(group.logits[j], self.stop_ids)
            if token is not None:
                tokens.append(token)
                keep.append(j)
        self.served_requests += len(group.running) - len(keep)
        group.running = [group.running[j] for j in keep]
        group.batch.keep(keep)
        group.logits = self._step(group.batch, group.running, tokens) if group.running else None
        if group.logits is None:
            group.running = []
        return bool(group.running)

    def _live(self, job: Job) -> bool:
        """False for a request dropped before it starts: cancelled (counted as served), or past its deadline."""
        if job.cancelled.is_set():
            self.served_requests += 1
            return False
        if job.expired():
            job.emit(("error", "the request's time limit passed before it started", "timeout"))
            self.served_requests += 1
            return False
        return True

    def _has_room(self, job: Job) -> bool:
        """False for a request that may generate nothing (answered at once)."""
        if job.max_tokens <= 0:
            job.emit(("done", "length", 0))
            self.served_requests += 1
            return False
        return True

    def _join(self, group: _Group, jobs: list[Job]) -> None:
        """The jobs' prompts computed together and taken into the group's batch (a failure fails those jobs
        alone: one bad request must not take the server down)."""
        ready = []
        for job in jobs:  # how each chooses its tokens, set up first: a job that cannot be fails before it joins
            try:
                ready.append(_Running(job, TextStream(self.tokenizer), self._trie(job.labels)))
            except Exception as e:
                self._fail([job], e)
        if not ready:
            return
        jobs = [r.job for r in ready]
        try:
            with torch.inference_mode():
                logits = group.batch.join_many(
                    [job.prompt for job in jobs],
                    [job.served.adapter for job in jobs],
                    max(j.max_tokens for j in jobs),
                    head=self._head(jobs[0]),
                )
        except Exception as e:
            self._fail(jobs, e)
            return
        for running, row in zip(ready, logits):
            group.add(running, row)

    def _fail(self, jobs: list[Job], e: Exception) -> None:
        log.exception("generation failed")
        for job in jobs:
            job.emit(("error", f"generation failed: {type(e).__name__}: {e}"))
        self.served_requests += len(jobs)

    def _step(self, batch: Batch, running: list[_Running], tokens: list[int]) -> torch.Tensor | None:
        try:
            with torch.inference_mode():
                return batch.step(tokens)
        except Exception as e:  # every row of the failed step gets the error; the server goes on
            self._fail([r.job for r in running], e)
            return None

    def _trie(self, labels: LabelSet | None) -> LabelTrie | None:
        if labels is None:
            return None
        if labels not in self._tries:
            self._tries[labels] = LabelTrie.of(labels, self.tokenizer)
        return self._tries[labels]


@dataclass
class _Running:
    """A request in the batch: its tokens so far, the text sent, how its next token is chosen."""

    job: Job
    text: TextStream
    trie: LabelTrie | None
    generated: list[int] = field(default_factory=list)
    out: str = ""
    sent: int = 0
    generator: torch.Generator | None = None

    def __post_init__(self) -> None:
        job = self.job
        if job.temperature > 0:
            seed = job.seed if job.seed is not None else int(torch.randint(0, 2**62, ()).item())
            self.generator = torch.Generator().manual_seed(seed)

    def next_token(self, logits: torch.Tensor, stop_ids: list[int]) -> int | None:
        """Choose, emit and keep the next token; None once the request is over (finished, stopped, cancelled,
        past its deadline, or failed), its last events emitted."""
        job = self.job
        if job.cancelled.is_set():
            return None
        if job.expired():
            job.emit(("error", f"the request's time limit passed after {len(self.generated)} tokens", "timeout"))
            return None
        try:
            pick = picker(self.trie, job.temperature, job.top_p, self.generator)  # as `generate` chooses
            return self._accept(pick(logits[None], [0], [self.generated])[0], stop_ids)
        except Exception as e:
            log.exception("generation failed")
            job.emit(("error", f"generation failed: {type(e).__name__}: {e}"))
            return None

    def _accept(self, token: int, stop_ids: list[int]) -> int | None:
        """Emit text that can no longer become a stop string; None when this token ends the answer."""
        job = self.job
        if token in stop_ids:
            self._finish("stop")
            return None
        self.generated.append(token)
        self.out += self.text.push(token)
        hold = max((len(s) for s in job.stop), default=1) - 1  # text that might still become a stop string
        cut = min((i for i in (self.out.find(s, self.sent) for s in job.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.out = self.out[:cut]
            self._finish("stop")
            return None
        if len(self.generated) >= job.max_tokens:
            self._finish("length")
            return None
        if len(self.out) - hold > self.sent:
            job.emit(("text", self.out[self.sent : len(self.out) - hold]))
            self.sent = len(self.out) - hold
        return token

    def _finish(self, reason: str) -> None:
        if len(self.out) > self.sent:
            self.job.emit(("text", self.out[self.sent :]))
        self.job.emit(("done", reason, len(self.generated)))


def _adapter_source(path: str) -> tuple[Path, str | None, str | None, LabelSet | None]:
    """(adapter folder, base model name, system prompt, label set) for `--adapter NAME=PATH`: a run folder or an
    adapter folder."""
    from tunesmith.runfolder import RunFolder, run_config

    p = Path(path)
    if RunFolder(p).has_adapter:
        config, folder = run_config(p), RunFolder(p)
        return folder.adapter, config.model.name, config.data.system_prompt, LabelSet.from_file(folder.labels)
    if (p / "adapter_config.json").is_file():
        return p, None, None, None
    raise ConfigError(
        "is neither a tunesmith run with an adapter nor a PEFT adapter folder", origin=path, field="--adapter"
    )


def load_engine(
    run_dir: str | Path,
    adapters: dict[str, str] | None = None,
    *,
    max_queue: int = 256,
    free_text: bool = False,
    max_active: int = MAX_BATCH,
) -> Engine:
    """Load a run's model once and every extra adapter into it; name each as clients will ask for it.

    A run (or run-folder adapter) with a labels.json answers with its labels by default; `free_text` turns that off."""
    from tunesmith.model.tuned import load_tuned
    from tunesmith.runfolder import RunFolder

    adapters = adapters or {}
    model, tokenizer, config = load_tuned(run_dir)
    if not is_quantized(model):  # decode as evaluation and `generate` do (float32 on a CPU: batch-independent)
        model = model.to(inference_dtype(model))
    run_name = Path(run_dir).resolve().name
    labels = None if free_text else LabelSet.from_file(RunFolder(run_dir).labels)
    if not hasattr(model, "load_adapter"):
        if adapters:
            raise ConfigError(
                "this run fine-tuned all weights (method: full): extra adapters need a LoRA/DoRA "
                "run whose base model they share",
                field="--adapter",
            )
        served = ServedModel(run_name, None, config.data.system_prompt, labels)
        return Engine(model, tokenizer, _logged({run_name: served}), max_queue=max_queue, max_active=max_active)
    active = model.active_adapter if isinstance(model.active_adapter, str) else model.active_adapter[0]
    models = {run_name: ServedModel(run_name, active, config.data.system_prompt, labels)}
    for i, (name, path) in enumerate(adapters.items()):
        if name in models or name == "base":
            raise ConfigError(f"the model name '{name}' is used twice", field="--adapter")
        folder, base, system, own_labels = _adapter_source(path)
        if base is not None and base != config.model.name:
            raise ConfigError(
                f"was trained on '{base}', but this server's base model is '{config.model.name}'",
                origin=path,
                field="--adapter",
            )
        internal = f"adapter_{i + 1}"
        model.load_adapter(str(folder), adapter_name=internal)
        models[name] = ServedModel(
            name,
            internal,
            system if base is not None else config.data.system_prompt,
            None if free_text else own_labels,
        )
        log.info("adapter '%s' loaded from %s", name, folder)
    if "base" in models:
        raise ConfigError("a run named 'base' clashes with the name of the bare base model; rename the run folder")
    models["base"] = ServedModel("base", None, config.data.system_prompt)
    model.set_adapter(active)
    model.eval()
    plain = merged_copies(model, [m.adapter for m in models.values()])
    log.info(
        "decoding %s, in %s",
        "each adapter on its own merged copy"
        if plain
        else "one batch, each row with its own adapter (no memory for a merged copy per adapter)",
        str(inference_dtype(model)).removeprefix("torch."),
    )
    return Engine(model, tokenizer, _logged(models), max_queue=max_queue, plain=plain, max_active=max_active)


def _logged(models: dict[str, ServedModel]) -> dict[str, ServedModel]:
    for m in models.values():
        if m.labels is not None:
            log.info(
                "model '%s' answers chat requests with one of its %d labels (labels.json); "
                'a request with "free_text": true gets free text',
                m.name,
                len(m.labels.labels),
            )
    return models
