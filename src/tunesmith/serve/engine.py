"""One shared model, many adapters, one worker that takes turns: no request waits for a long one to finish.

The base model is loaded once, each adapter into it under its own peft name; a request's `model` picks one. The
worker holds up to MAX_ACTIVE requests, each with its own KV cache, and generates SLICE tokens of each in turn
(its adapter set first). A request whose client left, or past its deadline, is dropped before it starts or
between tokens. Only the worker touches the model; a run's labels.json holds its answers.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tunesmith.errors import ConfigError
from tunesmith.generation import LabelSet, LabelTrie, TextStream, generate_tokens
from tunesmith.render import stop_token_ids

log = logging.getLogger("tunesmith")

SLICE = 16  # tokens of one request generated before the next active request's turn
MAX_ACTIVE = 8  # requests generating at once (each holds a KV cache); the rest wait in the queue


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


class Engine:
    """Owns the model; runs queued jobs one at a time on a single worker thread."""

    def __init__(self, model, tokenizer, models: dict[str, ServedModel], *, max_queue: int = 256):
        self.model, self.tokenizer, self.models = model, tokenizer, models
        self.context = int(getattr(model.config, "max_position_embeddings", 2048))
        self.stop_ids = stop_token_ids(tokenizer)
        self._tries: dict[LabelSet, LabelTrie] = {}
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
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
        """Round-robin over the active requests, SLICE tokens each; take queued ones while there is room."""
        active: deque[_Running] = deque()
        closing = False
        while active or not closing:
            while not closing and len(active) < MAX_ACTIVE:
                try:  # block only when nothing is generating
                    job = self._queue.get(block=not active)
                except queue.Empty:
                    break
                if job is None:
                    closing = True
                elif self._live(job):
                    active.append(self._begin(job))
            if not active:
                continue
            running = active.popleft()
            if self._step(running):
                active.append(running)
            else:
                self.served_requests += 1

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

    def _begin(self, job: Job) -> _Running:
        generator = None
        if job.temperature > 0:
            generator = torch.Generator().manual_seed(
                job.seed if job.seed is not None else int(torch.randint(0, 2**62, ()).item())
            )
        tokens = generate_tokens(
            self.model,
            job.prompt,
            max_new_tokens=job.max_tokens,
            stop_ids=self.stop_ids,
            temperature=job.temperature,
            top_p=job.top_p,
            generator=generator,
            constraint=self._trie(job.labels),
        )
        return _Running(job, tokens, TextStream(self.tokenizer))

    def _step(self, running: _Running) -> bool:
        """One turn of a request; True while it has more to generate."""
        job = running.job
        try:
            with self._adapter(job.served), torch.inference_mode():
                return running.advance(SLICE)
        except Exception as e:  # one bad request must not take the server down
            log.exception("generation failed")
            job.emit(("error", f"generation failed: {type(e).__name__}: {e}"))
            return False

    def _adapter(self, served: ServedModel):
        if not hasattr(self.model, "set_adapter"):
            return contextlib.nullcontext()
        if served.adapter is None:
            return self.model.disable_adapter()
        self.model.set_adapter(served.adapter)
        return contextlib.nullcontext()

    def _trie(self, labels: LabelSet | None) -> LabelTrie | None:
        if labels is None:
            return None
        if labels not in self._tries:
            self._tries[labels] = LabelTrie.of(labels, self.tokenizer)
        return self._tries[labels]


@dataclass
class _Running:
    """A request being generated: its token stream (holding its KV cache) and the text sent so far."""

    job: Job
    tokens: Iterator[int]
    text: TextStream
    out: str = ""
    sent: int = 0
    n: int = 0

    def advance(self, most: int) -> bool:
        """Generate up to `most` tokens, emitting text that can no longer become a stop string; False once done
        (finished, stopped, cancelled or past its deadline)."""
        job = self.job
        hold = max((len(s) for s in job.stop), default=1) - 1  # text that might still become a stop string
        for _ in range(most):
            if job.cancelled.is_set():
                return False
            if job.expired():
                job.emit(("error", f"the request's time limit passed after {self.n} tokens", "timeout"))
                return False
            token = next(self.tokens, None)
            if token is None:
                return self._finish("stop" if self.n < job.max_tokens else "length")
            self.n += 1
            self.out += self.text.push(token)
            cut = min((i for i in (self.out.find(s, self.sent) for s in job.stop) if i >= 0), default=-1)
            if cut >= 0:
                self.out = self.out[:cut]
                return self._finish("stop")
            if len(self.out) - hold > self.sent:
                job.emit(("text", self.out[self.sent : len(self.out) - hold]))
                self.sent = len(self.out) - hold
        return True

    def _finish(self, reason: str) -> bool:
        if len(self.out) > self.sent:
            self.job.emit(("text", self.out[self.sent :]))
        self.job.emit(("done", reason, self.n))
        return False


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
    run_dir: str | Path, adapters: dict[str, str] | None = None, *, max_queue: int = 256, free_text: bool = False
) -> Engine:
    """Load a run's model once and every extra adapter into it; name each as clients will ask for it.

    A run (or run-folder adapter) with a labels.json answers with its labels by default; `free_text` turns that off."""
    from tunesmith.model.tuned import load_tuned
    from tunesmith.runfolder import RunFolder

    adapters = adapters or {}
    model, tokenizer, config = load_tuned(run_dir)
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
        return Engine(model, tokenizer, _logged({run_name: served}), max_queue=max_queue)
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
    return Engine(model, tokenizer, _logged(models), max_queue=max_queue)


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
