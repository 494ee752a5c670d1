"""Experiment trackers (`train.report_to`): TensorBoard, Weights & Biases and MLflow, each through its own client.

Each sees every step `metrics.jsonl` gets, then the run's settings and final figures; where each writes is in
docs/config.md. A resumed run continues the same W&B and MLflow runs (their ids: `<run>/trackers.json`). A tracker
that cannot start is an error before training; one that fails while training is switched off with a warning.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from tunesmith.config import Config, dump_config
from tunesmith.errors import ConfigError, RunError
from tunesmith.runfolder import RunFolder, read_json, read_metrics, write_json

log = logging.getLogger("tunesmith")

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}  # tracker -> module it needs
PROJECT = "tunesmith"


def check_available(config: Config) -> None:
    """A ConfigError, before anything is written, when a tracker in `train.report_to` is not installed."""
    missing = [name for name in config.train.report_to if importlib.util.find_spec(PACKAGES[name]) is None]
    if missing:
        hint = " ".join("mlflow-skinny" if m == "mlflow" else m for m in missing)
        raise ConfigError(
            f"lists {', '.join(missing)}, which is not installed: pip install {hint} "
            "(or pip install 'tunesmith[trackers]')",
            field="train.report_to",
        )


def numbers(data: dict, prefix: str = "") -> dict[str, float]:
    """The finite numbers of a (nested) dict, flattened to `a/b/c` keys; booleans and text are left out."""
    out: dict[str, float] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(numbers(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)
    return out


def _settings(config: Config, lr: float | None) -> dict[str, Any]:
    """The run's settings as flat `section.key` strings (what MLflow params and W&B config show)."""
    flat: dict[str, Any] = {}

    def walk(data: dict, prefix: str) -> None:
        for key, value in data.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    walk(config.model_dump(mode="json"), "")
    if lr is not None:
        flat["train.lr_chosen"] = lr
    return flat


class _TensorBoard:
    name = "tensorboard"

    def __init__(self, folder: RunFolder, config: Config, resume_step: int, _ids: dict):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder.tensorboard), purge_step=resume_step or None)
        self.writer.add_text("config", "```yaml\n" + dump_config(config) + "\n```", resume_step)

    def log(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def finish(self, settings: dict[str, Any], final: dict[str, float], step: int) -> None:
        hparams = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in settings.items()}
        self.writer.add_hparams(hparams, {f"final/{k}": v for k, v in final.items()}, run_name=".")
        self.log({f"final/{k}": v for k, v in final.items()}, step)

    def close(self) -> None:
        self.writer.close()


def _wandb_mode() -> str:
    """W&B's mode: the user's WANDB_MODE, else online with a login (key or netrc), else offline."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    logged_in = bool(os.environ.get("WANDB_API_KEY")) or (
        netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="replace")
    )
    return "online" if logged_in else "offline"


class _Wandb:
    name = "wandb"

    def __init__(self, folder: RunFolder, config: Config, resume_step: int, ids: dict):
        import wandb

        mode = _wandb_mode()
        if mode == "offline" and not os.environ.get("WANDB_MODE"):
            log.info("wandb: no login found, logging offline to %s (wandb sync uploads it)", folder.root / "wandb")
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", PROJECT),
            name=folder.root.resolve().name,
            dir=str(folder.root),
            id=ids.get("wandb") or uuid.uuid4().hex[:8],
            resume="allow",
            mode=mode,  # type: ignore[arg-type]  # the user's WANDB_MODE, checked by wandb itself
            config=_settings(config, None),
            reinit="create_new",
            settings=wandb.Settings(console="off", silent=True, x_disable_stats=True),
        )
        ids["wandb"] = self.run.id

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def finish(self, settings: dict[str, Any], final: dict[str, float], step: int) -> None:
        self.run.config.update({k: v for k, v in settings.items() if k == "train.lr_chosen"}, allow_val_change=True)
        self.run.summary.update(final)

    def close(self) -> None:
        self.run.finish()


_MLFLOW_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")  # what MLflow refuses in a metric name (`field:reply:chrf`)


class _Mlflow:
    name = "mlflow"

    def __init__(self, folder: RunFolder, config: Config, resume_step: int, ids: dict):
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        for chatty in ("mlflow", "alembic"):  # MLflow sets its loggers up on import: keep its set-up notices out
            logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger(chatty).level))

        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(folder.root / 'mlflow.db').resolve()}"
        self.client = MlflowClient(tracking_uri=uri)
        found_id: str | None = ids.get("mlflow")
        if found_id is None:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME", PROJECT)
            found = self.client.get_experiment_by_name(name)
            experiment = found.experiment_id if found is not None else self.client.create_experiment(name)
            found_id = self.client.create_run(experiment, run_name=folder.root.resolve().name).info.run_id
            params = [Param(k, str(v)[:6000]) for k, v in _settings(config, None).items()]
            for i in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
                self.client.log_batch(found_id, params=params[i : i + 100])
        else:
            self.client.update_run(found_id, status="RUNNING")  # a resumed run trains again
        self.run_id: str = found_id
        ids["mlflow"] = found_id

    def log(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(_MLFLOW_UNSAFE.sub("_", k), v, now, step) for k, v in values.items()]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def finish(self, settings: dict[str, Any], final: dict[str, float], step: int) -> None:
        if "train.lr_chosen" in settings:
            self.client.log_param(self.run_id, "train.lr_chosen", str(settings["train.lr_chosen"]))
        self.log({f"final/{k}": v for k, v in final.items()}, step)
        self.client.set_terminated(self.run_id, "FINISHED")

    def close(self) -> None:
        pass


_KINDS = {"tensorboard": _TensorBoard, "wandb": _Wandb, "mlflow": _Mlflow}


class Trackers:
    """The run's trackers, open from the first logged step to the summary. `Trackers.none()` logs nowhere."""

    def __init__(self, active: list[Any]) -> None:
        self.active = active
        self.last_step = 0

    @classmethod
    def none(cls) -> Trackers:
        return cls([])

    @classmethod
    def open(cls, config: Config, folder: RunFolder, resume_step: int) -> Trackers:
        """Start each tracker of `train.report_to`. A fresh run's trackers are first given the curve already in
        `metrics.jsonl` (the chosen search trial's steps); a resumed one's continue where they stopped."""
        if not config.train.report_to:
            return cls.none()
        check_available(config)
        ids_path = folder.root / "trackers.json"
        ids: dict = read_json(ids_path) if ids_path.is_file() else {}
        resumed = bool(ids)
        active: list[Any] = []
        for name in config.train.report_to:
            try:
                active.append(_KINDS[name](folder, config, resume_step, ids))
            except Exception as e:  # a tracker's own errors are many and its own: name the setting and the cause
                for tracker in active:
                    tracker.close()
                raise RunError(f"could not start {name}: {type(e).__name__}: {e}", field="train.report_to") from e
        write_json(ids_path, ids)
        trackers = cls(active)
        log.info("tracking to %s", ", ".join(config.train.report_to))
        if not resumed:
            for record in read_metrics(folder.metrics):
                if record.get("step", 0) <= resume_step:
                    trackers.log(record)
        trackers.last_step = resume_step
        return trackers

    def _each(self, what: str, *args) -> None:
        for tracker in list(self.active):
            try:
                getattr(tracker, what)(*args)
            except Exception as e:  # training goes on without a tracker that broke
                log.warning(
                    "%s stopped working (%s: %s): training goes on without it", tracker.name, type(e).__name__, e
                )
                self.active.remove(tracker)
                with contextlib.suppress(Exception):  # it is already broken
                    tracker.close()

    def log(self, record: dict) -> None:
        """One step's record (the numbers in it; `step` is the x axis)."""
        step = int(record.get("step", self.last_step))
        values = {k: v for k, v in numbers(record).items() if k != "step"}
        if values:
            self._each("log", values, step)
        self.last_step = max(self.last_step, step)

    def finish(self, config: Config, summary: dict) -> None:
        """The run's final figures (the summary's numbers) and the learning rate it trained at."""
        chosen = (summary.get("search") or {}).get("lr")
        lr = chosen if chosen is not None else (config.train.lr if config.train.lr != "auto" else None)
        self._each("finish", _settings(config, lr), numbers(summary), self.last_step)

    def close(self) -> None:
        for tracker in self.active:
            try:
                tracker.close()
            except Exception as e:  # closing cannot lose the run
                log.warning("%s did not close cleanly: %s", tracker.name, e)
        self.active = []
