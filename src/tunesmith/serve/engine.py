"""One shared model, many adapters, one worker: requests are queued and run one at a time, in order.

The run's base model is loaded once. Each LoRA/DoRA adapter (the run's own, and any `--adapter NAME=PATH`)
is loaded into it under an internal peft adapter name; a request's `model` field picks one, and the worker
thread activates it (`set_adapter`, or `disable_adapter` for the bare base model) just before generating.
Only the worker touches the model, so switching adapters can never race; a run's labels.json holds its answers.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tunesmith.errors import ConfigError
from tunesmith.generation import LabelSet, LabelTrie, TextStream, generate_tokens
from tunesmith.render import stop_token_ids

log = logging.getLogger("tunesmith")


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
    cancelled: threading.Event = field(default_factory=threading.Event)


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
        while (job := self._queue.get()) is not None:
            try:
                if not job.cancelled.is_set():
                    self._run(job)
            except Exception as e:  # one bad request must not take the server down
                log.exception("generation failed")
                job.emit(("error", f"generation failed: {type(e).__name__}: {e}"))
            self.served_requests += 1

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

    def _run(self, job: Job) -> None:
        generator = None
        if job.temperature > 0:
            generator = torch.Generator().manual_seed(
                job.seed if job.seed is not None else int(torch.randint(0, 2**62, ()).item())
            )
        text = TextStream(self.tokenizer)
        out, sent, n, finish = "", 0, 0, "length"
        hold = max((len(s) for s in job.stop), default=1) - 1  # text that might still become a stop string
        with self._adapter(job.served), torch.inference_mode():
            for token in generate_tokens(
                self.model,
                job.prompt,
                max_new_tokens=job.max_tokens,
                stop_ids=self.stop_ids,
                temperature=job.temperature,
                top_p=job.top_p,
                generator=generator,
                constraint=self._trie(job.labels),
            ):
                n += 1
                if job.cancelled.is_set():
                    return
                out += text.push(token)
                cut = min((i for i in (out.find(s, sent) for s in job.stop) if i >= 0), default=-1)
                if cut >= 0:
                    out, finish = out[:cut], "stop"
                    break
                if len(out) - hold > sent:
                    job.emit(("text", out[sent : len(out) - hold]))
                    sent = len(out) - hold
            else:
                finish = "stop" if n < job.max_tokens else "length"
        if len(out) > sent:
            job.emit(("text", out[sent:]))
        job.emit(("done", finish, n))


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
