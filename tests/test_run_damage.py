"""A run folder damaged by a crash or a full disk: resume falls back to the last good checkpoint, a metrics line
cut short is dropped, what a killed writer left is cleaned up, and a full disk is a one-line error that leaves
the previous checkpoint whole."""

import errno
import os
import shutil
import subprocess
import sys

import pytest
import yaml

import tunesmith
from test_training import config, losses
from tunesmith import runfolder
from tunesmith.cli import main
from tunesmith.errors import RunError
from tunesmith.runfolder import atomic_folder, read_metrics, remove_stale_temporaries
from tunesmith.training import checkpoint


def steps(run) -> list[int]:
    return [r["step"] for r in read_metrics(run / "metrics.jsonl")]


def crashed_run(tmp_path, tiny_llama_dir, name="cut"):
    """A 6-step run with checkpoints at 2, 4 and 6 whose summary was never written (a crash at the end)."""
    cfg = config(tmp_path, tiny_llama_dir, name, max_steps=6, save_every=2, keep_checkpoints=3)
    cfg["lora"]["dropout"] = 0.1  # the RNG states must come back too
    run = tunesmith.train(cfg, show_progress=False).run_dir
    (run / "summary.json").unlink()
    return run, cfg


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_llama_dir):
    tmp = tmp_path_factory.mktemp("full")
    cfg = config(tmp, tiny_llama_dir, "full", max_steps=6, save_every=2, keep_checkpoints=3)
    cfg["lora"]["dropout"] = 0.1
    return losses(tunesmith.train(cfg, show_progress=False))


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_truncated_checkpoints_fall_back_to_the_last_good_one(tmp_path, tiny_llama_dir, uninterrupted, caplog):
    """step-6 cut short, step-4's loop state cut short, and a half-written metrics line: resume from step 2 and
    continue the very same curve."""
    run, cfg = crashed_run(tmp_path, tiny_llama_dir)
    ckpts = run / "checkpoints"
    weights = ckpts / "step-000006" / "trainable.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    state = ckpts / "step-000004" / "state.json"
    state.write_text(state.read_text()[:10])
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 7, "loss": 5.9')  # killed mid-line
    with caplog.at_level("WARNING", logger="tunesmith"):
        resumed = tunesmith.train(cfg, show_progress=False)
    assert f"{weights}: damaged checkpoint file" in caplog.text and f"{state}: damaged checkpoint file" in caplog.text
    assert "resuming from the checkpoint before it" in caplog.text
    assert losses(resumed) == pytest.approx(uninterrupted, abs=1e-6) and steps(run) == [1, 2, 3, 4, 5, 6]
    # the damaged ones were written again as training reached their steps, and read back whole
    for name in ("step-000004", "step-000006"):
        assert checkpoint.read(ckpts / name).state.step == int(name[-6:])


def test_a_damaged_final_metrics_line_is_dropped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo')
    with caplog.at_level("WARNING", logger="tunesmith"):
        assert read_metrics(path) == [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}]
    assert f"{path}:3: damaged last line" in caplog.text
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo\n{"step": 3, "loss": 1.0}\n')
    with pytest.raises(RunError, match=r"metrics.jsonl:2: damaged metrics line"):
        read_metrics(path)


def test_no_good_checkpoint_left_is_a_one_line_error(tmp_path, tiny_llama_dir, capsys):
    run, cfg = crashed_run(tmp_path, tiny_llama_dir)
    for ckpt in (run / "checkpoints").iterdir():
        weights = ckpt / "trainable.safetensors"
        weights.write_bytes(weights.read_bytes()[:50])
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "cfg.yaml")]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert "no checkpoint left to resume from" in err and "step-000006/trainable.safetensors" in err
    assert "to start fresh, move the run folder away" in err and "Traceback" not in err


def test_stale_temporaries_are_removed_and_a_live_writers_kept(tmp_path):
    gone, here = dead_pid(), os.getpid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        ckpts = tmp_path / "checkpoints"
        stale = [
            ckpts / f".tmp-step-000004-{gone}",
            ckpts / "search" / "trial-1" / f".tmp-step-000002-{gone}",
            tmp_path / f".old-adapter-{gone}",
            ckpts / f".tmp-step-000002-{here}",  # this process's PID, reused: it has written nothing yet
        ]
        for folder in stale:
            folder.mkdir(parents=True)
            (folder / "trainable.safetensors").write_bytes(b"x" * 1000)
        (tmp_path / f".tmp-metrics.jsonl-{gone}").write_text("{}")
        kept = ckpts / f".tmp-step-000006-{live.pid}"
        kept.mkdir()
        (ckpts / "step-000002").mkdir()
        removed = remove_stale_temporaries(tmp_path)
        assert sorted(removed) == sorted([*stale, tmp_path / f".tmp-metrics.jsonl-{gone}"])
        assert not any(p.exists() for p in removed)
        assert kept.is_dir() and (ckpts / "step-000002").is_dir() and (ckpts / "search" / "trial-1").is_dir()
    finally:
        live.kill()
        live.wait()


def test_a_resumed_run_removes_what_a_killed_one_left(tmp_path, tiny_llama_dir):
    run, cfg = crashed_run(tmp_path, tiny_llama_dir)
    left = run / "checkpoints" / f".tmp-step-000008-{dead_pid()}"
    left.mkdir()
    (left / "trainable.safetensors").write_bytes(b"x" * 10_000)
    shutil.rmtree(run / "checkpoints" / "step-000006")
    tunesmith.train(cfg, show_progress=False)
    assert not left.exists()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000002", "step-000004", "step-000006"]


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_at_a_checkpoint_is_one_line_and_keeps_the_previous(tmp_path, tiny_llama_dir, monkeypatch, capsys):
    cfg = config(tmp_path, tiny_llama_dir, "full-disk", max_steps=4, save_every=2)
    real = checkpoint.save_file

    def save_file(tensors, filename):  # the disk fills while the step-4 checkpoint is written
        if "step-000004" in filename and filename.endswith("train_state.safetensors"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, filename)

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "cfg.yaml")]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    ckpts = tmp_path / "full-disk" / "checkpoints"
    assert f"no space left on device writing {ckpts / 'step-000004'}: need about" in err and "Traceback" not in err
    assert sorted(p.name for p in ckpts.iterdir()) == ["step-000002"]  # no temporary folder left either
    assert checkpoint.read(ckpts / "step-000002").state.step == 2


def test_a_full_disk_at_the_final_write_is_one_line(tmp_path, tiny_llama_dir, monkeypatch):
    cfg = config(tmp_path, tiny_llama_dir, "full-final", max_steps=2, save_every=1)
    real = runfolder._fsync_tree

    def fsync_tree(folder):
        if "adapter" in folder.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(folder)

    monkeypatch.setattr(runfolder, "_fsync_tree", fsync_tree)
    with pytest.raises(RunError, match=r"no space left on device writing .*full-final/adapter: need more than"):
        tunesmith.train(cfg, show_progress=False)
    run = tmp_path / "full-final"
    assert not (run / "adapter").exists() and not [p for p in run.iterdir() if p.name.startswith(".tmp-")]


def test_safetensors_own_out_of_space_error_is_recognised(tmp_path):
    """safetensors reports a full disk as a SafetensorError carrying the OS error in its message."""
    from safetensors import SafetensorError

    def write(tmp):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    with pytest.raises(RunError, match="no space left on device writing .*out: need about 3.0 MB"):
        atomic_folder(tmp_path / "out", write, need_bytes=3 * 2**20)
    assert list(tmp_path.iterdir()) == []


def test_too_little_free_space_is_refused_before_training(tmp_path, tiny_llama_dir, monkeypatch):
    cfg = config(tmp_path, tiny_llama_dir, "small-disk", max_steps=2)
    monkeypatch.setattr(runfolder, "free_bytes", lambda path: 1000)
    with pytest.raises(RunError, match=r"small-disk: not enough free space for this run: need about .* MB"):
        tunesmith.train(cfg, show_progress=False)
    assert not (tmp_path / "small-disk" / "checkpoints").exists()


def test_the_space_estimate_covers_what_is_written(tmp_path, tiny_llama_dir, monkeypatch):
    cfg = config(tmp_path, tiny_llama_dir, "measured", max_steps=2, save_every=1, keep_checkpoints=1)
    seen = {}
    real = checkpoint.space_needed

    def space_needed(model, *args):
        seen["estimate"] = real(model, *args)
        return seen["estimate"]

    monkeypatch.setattr(checkpoint, "space_needed", space_needed)
    run = tunesmith.train(cfg, show_progress=False).run_dir
    one, final, total = seen["estimate"]
    assert runfolder.folder_bytes(run / "checkpoints" / "step-000002") <= one
    weights = run / "adapter" / "adapter_model.safetensors"
    assert weights.stat().st_size <= final + 2**16 and total >= 2 * one + final
