"""`train.report_to`: TensorBoard, W&B (offline) and MLflow (SQLite store) get what `metrics.jsonl` gets and the
final figures, read back through each tracker's own reader; a resumed run continues the same tracker runs."""

import json
import logging
from pathlib import Path

import pytest

import tiny
import tunesmith
from tunesmith.errors import ConfigError
from tunesmith.runfolder import read_metrics
from tunesmith.training import trackers


def _config(tmp_path: Path, model_dir, steps: int, report_to) -> dict:
    data = tiny.say_words(tmp_path / "train.jsonl", 24)
    return {
        "model": {"name": str(model_dir), "dtype": "float32"},
        "data": {"train": data, "eval_fraction": 0.25},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "train": {
            "max_steps": steps,
            "epochs": 3,
            "batch_size": 4,
            "lr": 1e-2,
            "max_length": 64,
            "eval_every": 2,
            "save_every": 2,
            "report_to": report_to,
        },
        "eval": {"report": False, "max_samples": 4, "max_new_tokens": 4},
        "output_dir": str(tmp_path / "run"),
    }


def same(curve: list[tuple[int, float]], expected: list[tuple[int, float]]) -> bool:
    """The same steps, and values equal to float32 rounding (TensorBoard keeps float32)."""
    return [s for s, _ in curve] == [s for s, _ in expected] and [v for _, v in curve] == pytest.approx(
        [v for _, v in expected], rel=1e-6
    )


def _tensorboard(run: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def _wandb_records(path: Path) -> list[bytes]:
    """The records of a W&B transaction log (`run-*.wandb`): a 7-byte `:W&B` header, then LevelDB's log format
    (32 KiB blocks of chunks, each with a 7-byte header: crc32, length, type full/first/middle/last)."""
    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B", "not a W&B transaction log"
    pos, pending, records = 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 1:
            records.append(chunk)
        elif kind in (2, 3):
            pending = (pending if kind == 3 else b"") + chunk
        elif kind == 4:
            records.append(pending + chunk)
    return records


def _wandb_history(run: Path) -> tuple[list[dict], dict]:
    """The logged steps and the summary of the offline W&B run, read from its transaction log with W&B's own
    record schema."""
    from wandb.proto import wandb_internal_pb2

    (folder,) = (run / "wandb").glob("offline-run-*")
    history, summary = [], {}
    for data in _wandb_records(next(folder.glob("*.wandb"))):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            history.append({"_step": record.history.step.num, **row})
        elif kind == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return history, summary


def _mlflow(run: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{(run / 'mlflow.db').resolve()}")
    run_id = json.loads((run / "trackers.json").read_text())["mlflow"]
    return client, run_id


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_every_tracker_reads_back_the_steps_and_the_final_figures(tmp_path, tiny_llama_dir, offline):
    result = tunesmith.train(
        _config(tmp_path, tiny_llama_dir, 4, ["tensorboard", "wandb", "mlflow"]), show_progress=False
    )
    run = result.run_dir
    logged = read_metrics(run / "metrics.jsonl")
    losses = [(r["step"], r["loss"]) for r in logged]
    held_out = [(r["step"], r["eval_loss"]) for r in logged if "eval_loss" in r]
    assert len(losses) == 4 and len(held_out) == 2

    assert same(_tensorboard(run, "loss"), losses) and same(_tensorboard(run, "eval_loss"), held_out)
    assert _tensorboard(run, "final/after/eval_loss")[0][1] == pytest.approx(result.after["eval_loss"])

    history, summary = _wandb_history(run)
    assert same([(h["_step"], h["loss"]) for h in history if "loss" in h], losses)
    assert summary["after/eval_loss"] == pytest.approx(result.after["eval_loss"])
    assert summary["before/eval_loss"] == pytest.approx(result.before["eval_loss"])

    client, run_id = _mlflow(run)
    assert same([(m.step, m.value) for m in client.get_metric_history(run_id, "loss")], losses)
    mlrun = client.get_run(run_id)
    assert mlrun.info.status == "FINISHED"
    assert mlrun.data.params["train.lr"] == "0.01" and mlrun.data.params["lora.r"] == "4"
    assert mlrun.data.metrics["final/after/eval_loss"] == pytest.approx(result.after["eval_loss"])


def test_a_resumed_run_continues_the_same_tracker_runs(tmp_path, tiny_llama_dir, offline):
    first = tunesmith.train(_config(tmp_path, tiny_llama_dir, 2, ["wandb", "mlflow"]), show_progress=False)
    ids = json.loads((first.run_dir / "trackers.json").read_text())
    second = tunesmith.train(_config(tmp_path, tiny_llama_dir, 4, ["wandb", "mlflow"]), show_progress=False)
    assert json.loads((second.run_dir / "trackers.json").read_text()) == ids
    client, run_id = _mlflow(second.run_dir)
    losses = [(r["step"], r["loss"]) for r in read_metrics(second.run_dir / "metrics.jsonl")]
    assert same([(m.step, m.value) for m in client.get_metric_history(run_id, "loss")], losses)
    assert [s for s, _ in losses] == [1, 2, 3, 4]


def test_a_tracker_that_is_not_installed_is_an_error_before_anything_is_written(tmp_path, tiny_llama_dir, monkeypatch):
    monkeypatch.setitem(trackers.PACKAGES, "wandb", "no_such_package_for_tunesmith")
    with pytest.raises(ConfigError) as e:
        tunesmith.train(_config(tmp_path, tiny_llama_dir, 2, "tensorboard,wandb"), show_progress=False)
    assert e.value.field == "train.report_to" and "pip install wandb" in str(e.value)
    assert not (tmp_path / "run").exists()


def test_an_unknown_tracker_is_a_config_error(tmp_path, tiny_llama_dir):
    with pytest.raises(ConfigError, match="train.report_to"):
        tunesmith.train(_config(tmp_path, tiny_llama_dir, 2, ["comet"]), show_progress=False)


class _Broken:
    name = "broken"
    closed = False

    def log(self, values, step):
        raise ConnectionError("the server went away")

    def close(self):
        self.closed = True


class _Kept:
    name = "kept"

    def __init__(self):
        self.seen = []

    def log(self, values, step):
        self.seen.append((step, values))

    def close(self):
        pass


def test_a_tracker_that_breaks_mid_run_is_switched_off_and_training_goes_on(caplog):
    broken, kept = _Broken(), _Kept()
    group = trackers.Trackers([broken, kept])
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        group.log({"step": 1, "loss": 2.0, "note": "text is left out", "nested": {"x": 1}})
        group.log({"step": 2, "loss": 1.5})
    assert broken.closed and group.active == [kept]
    assert kept.seen == [(1, {"loss": 2.0, "nested/x": 1.0}), (2, {"loss": 1.5})]
    assert "broken stopped working (ConnectionError: the server went away)" in caplog.text


def test_the_cli_sends_a_run_to_the_trackers_it_names(tmp_path, tiny_llama_dir):
    """Through the real CLI: `train.report_to=tensorboard,mlflow` on the command line, read back from each."""
    import os

    import yaml

    import tiny

    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(_config(tmp_path, tiny_llama_dir, 2, [])))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "WANDB_"))}
    done = tiny.cli("train", str(cfg), "train.report_to=tensorboard,mlflow", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tracking to tensorboard, mlflow" in done.stderr
    run = tmp_path / "run"
    losses = [(r["step"], r["loss"]) for r in read_metrics(run / "metrics.jsonl")]
    assert len(losses) == 2 and same(_tensorboard(run, "loss"), losses)
    client, run_id = _mlflow(run)
    assert same([(m.step, m.value) for m in client.get_metric_history(run_id, "loss")], losses)
    assert "Creating initial MLflow database" not in done.stderr  # MLflow's set-up notices stay out
