"""A run folder: every file name in it, its atomic writers, and its step metrics.

Everything a run writes goes through here, complete or absent (temporary name, fsync, rename), so the
names and the guarantee live in one place; `model/tuned.py` loads a run's trained model from these paths.
A disk that fills is a one-line error naming what was being written; what a killed writer left behind is
removed by the next run (`remove_stale_temporaries`).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
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
    answers = _Part("answers.jsonl")  # generated answers by (model, prompt, settings): each generated once

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


def megabytes(n: int) -> str:
    mb = n / 2**20
    return f"{mb:,.0f}" if mb >= 10 else f"{mb:.1f}" if mb >= 0.1 else f"{mb:.2g}"


def free_bytes(path: Path) -> int:
    """Free space on the disk that holds `path` (or, while it does not exist yet, its nearest parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def folder_bytes(path: Path) -> int:
    """The size of the files under `path` (0 when it does not exist)."""
    total = 0
    for f in Path(path).rglob("*"):
        with suppress(OSError):
            total += f.stat().st_size if f.is_file() else 0
    return total


def _out_of_space(e: BaseException) -> bool:
    """A write that failed for want of disk (safetensors reports the OS error in its message)."""
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    return "No space left on device" in str(e) or "os error 28" in str(e)


def no_space(dest: Path, need: int | None = None, at_least: bool = False) -> RunError:
    """The one-line error of a full disk: what was being written, and the room it needs when that is known."""
    free = f"{megabytes(free_bytes(dest.parent))} MB free"
    if not need:
        return RunError(f"no space left on device writing {dest} ({free})")
    about = f"more than {megabytes(need)}" if at_least else f"about {megabytes(need)}"
    return RunError(f"no space left on device writing {dest}: need {about} MB ({free})")


def atomic_folder(dest: Path, write: Callable[[Path], None], *, need_bytes: int | None = None) -> Path:
    """Run `write(tmp_folder)`, then fsync and rename it to `dest` (replacing an older one). A full disk is a
    `RunError` naming `dest` and the space it needs (`need_bytes`, else more than was written), and leaves an
    older `dest` as it was."""
    tmp = dest.parent / f".tmp-{dest.name}-{os.getpid()}"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        write(tmp)
        user_modes(tmp)
        _fsync_tree(tmp)
        if dest.exists():
            old = dest.parent / f".old-{dest.name}-{os.getpid()}"
            os.replace(dest, old)
            try:
                os.replace(tmp, dest)
            except BaseException:
                os.replace(old, dest)  # the older one stays
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except Exception as e:
        if _out_of_space(e):
            raise no_space(dest, need_bytes or folder_bytes(tmp), at_least=need_bytes is None) from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _umask() -> int:
    """The process's umask (read from /proc where it is, else set and restored at once)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def user_modes(folder: Path) -> None:
    """Give every file and folder under `folder` the permissions the user's umask asks for. Some writers
    (safetensors) create files 0600 whatever the umask: a run folder shared with a team must be readable."""
    mask = _umask()
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small file atomically (temporary file, fsync, rename); a full disk is a one-line `RunError`."""
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if _out_of_space(e):
            raise no_space(path) from None
        raise


_TEMPORARY = re.compile(r"\.(?:tmp|old)-.+-(\d+)")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return False
    return True


def remove_stale_temporaries(root: Path, depth: int = 3) -> list[Path]:
    """Remove what writers killed mid-write left in a run folder (a checkpoint's worth each, forever otherwise):
    `.tmp-NAME-PID` and `.old-NAME-PID` files and folders, down to `depth` folders deep, whose process is gone.
    This process's own PID counts as gone (containers reuse PIDs): call it before this process writes there, and
    only where it alone writes (rank 0 at the start of a run); another live PID may be a writer, and is left."""
    removed: list[Path] = []

    def visit(folder: Path, level: int) -> None:
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            return
        for entry in entries:
            match = _TEMPORARY.fullmatch(entry.name)
            if match is None:
                if level < depth and entry.is_dir() and not entry.is_symlink():
                    visit(entry, level + 1)
                continue
            pid = int(match.group(1))
            if pid != os.getpid() and _running(pid):
                log.debug("%s: left in place, process %d is running", entry, pid)
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)

    visit(Path(root), 0)
    if removed:
        log.info("removed %d temporary files left by an interrupted run (%s)", len(removed), removed[0].name)
    return removed


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


_trust_remote_code: ContextVar[bool] = ContextVar("tunesmith_trust_remote_code", default=False)


@contextmanager
def trusting_remote_code(trust: bool = True) -> Iterator[None]:
    """Within this block, a run folder's model may run code from its model repository: the `--trust-remote-code`
    of the person running the command, never a value read from a run folder."""
    token = _trust_remote_code.set(trust)
    try:
        yield
    finally:
        _trust_remote_code.reset(token)


def require_run(run_dir: str | Path) -> RunFolder:
    """`run_dir` as a run folder; a `RunError` where it has no config.yaml (it is not a run)."""
    folder = RunFolder(run_dir)
    if not folder.config.is_file():
        raise RunError("not a tunesmith run folder (no config.yaml)", origin=str(run_dir))
    return folder


def run_config(run_dir: str | Path, *, trust_remote_code: bool | None = None) -> Config:
    """The config a run was trained with; a folder without one is not a run.

    A run folder may come from someone else: its saved `model.trust_remote_code` is not honoured. The returned
    config has the caller's `trust_remote_code` instead (default: `trusting_remote_code`'s, else False)."""
    path = require_run(run_dir).config
    config = load_config(path)
    trust = _trust_remote_code.get() if trust_remote_code is None else trust_remote_code
    if config.model.trust_remote_code and not trust:
        log.info("%s: model.trust_remote_code in the run's config is ignored (pass --trust-remote-code)", path)
    config.model.trust_remote_code = trust
    return config


class MetricsWriter:
    """Append-only step metrics (`metrics.jsonl`). On resume, lines past the resumed step are dropped so the
    curve continues."""

    def __init__(self, path: Path, *, resume_step: int = 0, enabled: bool = True, log_every: int = 1):
        self.path, self.enabled, self.log_every = path, enabled, log_every
        if not enabled:
            return
        kept = [r for r in read_metrics(path) if r.get("step", 0) <= resume_step] if resume_step else []
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def wants(self, record: dict) -> bool:
        """Whether this step's record is logged (every `log_every` steps, and every step with a held-out loss)."""
        return self.enabled and not (record["step"] % self.log_every and "eval_loss" not in record)

    def __call__(self, record: dict) -> None:
        if not self.wants(record):
            return
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        except OSError as e:
            if _out_of_space(e):
                raise no_space(self.path) from None
            raise

    def close(self) -> None:
        pass


def read_metrics(path: Path) -> list[dict]:
    """The logged records of a run (an absent file is an empty list). A last line cut short (a run killed while
    writing it) is dropped with a warning; a damaged line before it is an error naming it."""
    if not path.is_file():
        return []
    lines = [(n, line) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.strip()]
    records = []
    for n, line in lines:
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a record")
        except ValueError:
            if n == lines[-1][0]:
                log.warning("%s:%d: damaged last line (a write cut short), dropped", path, n)
                break
            raise RunError(
                "damaged metrics line: move the run folder away to start fresh", origin=f"{path}:{n}"
            ) from None
        records.append(record)
    return records
