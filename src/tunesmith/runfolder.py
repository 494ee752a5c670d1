"""A run folder: every file name in it, its atomic writers, and its step metrics.

Everything a run writes goes through here, complete or absent (temporary name, fsync, rename), so the
names and the guarantee live in one place; `model/tuned.py` loads a run's trained model from these paths.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from tunesmith.config import Config, load_config
from tunesmith.errors import RunError

log = logging.getLogger("tunesmith")


class _Part:
    """A file or folder of a run folder, named once: `RunFolder(root).summary` is `root / "summary.json"`."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, folder: RunFolder, owner: type | None = None) -> Path:
        return folder.root / self.name


class RunFolder:
    """The paths of one run folder (naming them reads or creates nothing)."""

    config = _Part("config.yaml")
    summary = _Part("summary.json")
    metrics = _Part("metrics.jsonl")
    eval_before = _Part("eval_before.json")  # the base model's held-out metrics, kept for a resumed run
    checkpoints = _Part("checkpoints")
    adapter = _Part("adapter")  # LoRA/DoRA: a PEFT adapter folder
    model = _Part("model")  # full fine-tuning: a whole model folder
    tensorboard = _Part("tensorboard")
    eval_json = _Part("eval.json")
    predictions = _Part("predictions.jsonl")
    report_html = _Part("report.html")
    report_md = _Part("report.md")
    labels = _Part("labels.json")  # label tasks: the closed answer set, for label-constrained answers
    search = _Part("search.json")  # train.lr/epochs auto: the trials, their scores, and the choice

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def deliverable(self, method: str) -> Path:
        """Where the trained weights go: `model/` for full fine-tuning, else `adapter/`."""
        return self.model if method == "full" else self.adapter

    @property
    def has_adapter(self) -> bool:
        return (self.adapter / "adapter_config.json").is_file()

    @property
    def has_model(self) -> bool:
        return (self.model / "config.json").is_file()


# the parts of a run folder an export may never be written into
RUN_PARTS = ("adapter", "model", "checkpoints")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for f in folder.rglob("*"):
        if f.is_file():
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
    fsync_dir(folder)


def atomic_folder(dest: Path, write: Callable[[Path], None]) -> Path:
    """Run `write(tmp_folder)`, then fsync and rename it to `dest` (replacing an older one)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{dest.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
        _fsync_tree(tmp)
        if dest.exists():
            old = dest.parent / f".old-{dest.name}-{os.getpid()}"
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
        fsync_dir(dest.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small file atomically (temporary file, fsync, rename)."""
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def run_config(run_dir: str | Path) -> Config:
    """The config a run was trained with; a folder without one is not a run."""
    path = RunFolder(run_dir).config
    if not path.is_file():
        raise RunError("not a tunesmith run folder (no config.yaml)", origin=str(run_dir))
    return load_config(path)


class MetricsWriter:
    """Append-only step metrics (`metrics.jsonl`, plus TensorBoard when it is installed). On resume, lines
    past the resumed step are dropped so the curve continues."""

    def __init__(self, path: Path, *, resume_step: int = 0, enabled: bool = True, log_every: int = 1):
        self.path, self.enabled, self.log_every = path, enabled, log_every
        self._tb = None
        if not enabled:
            return
        kept = [r for r in read_metrics(path) if r.get("step", 0) <= resume_step] if resume_step else []
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(RunFolder(path.parent).tensorboard))
        except ImportError:
            log.debug("tensorboard not installed: metrics go to %s only", path)

    def __call__(self, record: dict) -> None:
        if not self.enabled or (record["step"] % self.log_every and "eval_loss" not in record):
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: Path) -> list[dict]:
    """The logged records of a run (an absent file is an empty list)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
