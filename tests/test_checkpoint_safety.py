"""A run folder received from someone else runs no code: checkpoints hold no pickle (a planted one is never
unpickled on resume), the state round-trips exactly without it, and a run folder's own
`model.trust_remote_code` is honoured only when the person running the command passes --trust-remote-code."""

import json
import pickle
import random
import shutil

import numpy as np
import pytest
import torch

import tunesmith
from test_training import config
from tunesmith.cli import main
from tunesmith.errors import RunError
from tunesmith.runfolder import RunFolder, run_config, trusting_remote_code
from tunesmith.training import checkpoint
from tunesmith.training.checkpoint import LoopState


class Payload:
    """What a crafted pickle does when it is loaded: here, create a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def payload(marker) -> bytes:
    return pickle.dumps({"optimizer": Payload(marker)})


def test_the_payload_runs_when_unpickled(tmp_path):
    """The planted file is a real exploit: unpickling it (as torch.load(weights_only=False) did) runs it."""
    marker = tmp_path / "ran"
    pickle.loads(payload(marker))
    assert marker.exists()


def tiny_state(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 / (1 + s))
    return model, optimizer, scheduler


def test_state_round_trips_exactly_without_pickle(tmp_path):
    model, optimizer, scheduler = tiny_state()
    for _ in range(3):
        model(torch.randn(5, 4)).square().sum().backward()
        optimizer.step()
        scheduler.step()
    random.random(), np.random.rand(), torch.rand(1)  # advance every RNG
    weights, opt_state = checkpoint.trainable_state(model, optimizer)
    path = checkpoint.save(tmp_path, weights, opt_state, scheduler, LoopState(3, 1, 2, 77), keep=2)
    assert sorted(p.name for p in path.iterdir()) == [
        "state.json",
        "train_state.json",
        "train_state.safetensors",
        "trainable.safetensors",
    ]
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))

    model2, optimizer2, scheduler2 = tiny_state(seed=1)
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    state = checkpoint.load(path, model2, optimizer2, scheduler2)
    assert state == LoopState(3, 1, 2, 77)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))
    a, b = optimizer.state_dict(), optimizer2.state_dict()
    assert a["param_groups"] == b["param_groups"] and a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        assert {n: v.tolist() for n, v in a["state"][k].items()} == {n: v.tolist() for n, v in b["state"][k].items()}
    assert scheduler.state_dict() == scheduler2.state_dict()
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected
    assert (tmp_path / path.name / "train_state.json").read_text().startswith('{"format": 1')


def test_tensor_tree_keeps_keys_tuples_and_arrays():
    tree = {
        "state": {0: {"t": torch.arange(3)}, 7: {}},
        "__tensor__": "not a tag here",
        "t": (1, 2.5, None, [True, "x"]),
        "np": ("MT19937", np.arange(4, dtype=np.uint32), 3, 0, 0.0),
        "f": [float("inf"), 0.1 + 0.2],
    }
    tensors: dict = {}
    back = checkpoint._join(json.loads(json.dumps(checkpoint._split(tree, tensors, ""))), tensors)
    assert torch.equal(back["state"][0]["t"], torch.arange(3)) and back["state"][7] == {}
    assert back["__tensor__"] == "not a tag here" and back["t"] == (1, 2.5, None, [True, "x"])
    assert back["np"][1].dtype == np.uint32 and back["np"][1].tolist() == [0, 1, 2, 3]
    assert back["f"] == [float("inf"), 0.1 + 0.2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_llama_dir):
    """A 4-step run with checkpoints at steps 2 and 4, copied fresh for each test (`copy`)."""
    tmp = tmp_path_factory.mktemp("trained")
    cfg = config(tmp, tiny_llama_dir, "run", max_steps=4, save_every=2)
    tunesmith.train(cfg, show_progress=False)
    return tmp, cfg


def copy(trained, tmp_path, max_steps=6):
    from tunesmith.config import dump_config, load_config

    src, cfg = trained
    run = tmp_path / "run"
    shutil.copytree(src / "run", run)
    RunFolder(run).config.write_text(dump_config(load_config(RunFolder(run).config, [f"output_dir={run}"])))
    return run, {**cfg, "output_dir": str(run), "train": {**cfg["train"], "max_steps": max_steps}}


def test_a_planted_train_state_pt_is_never_unpickled(trained, tmp_path):
    run, cfg = copy(trained, tmp_path)
    marker = tmp_path / "ran"
    (run / "checkpoints" / "step-000004" / "train_state.pt").write_bytes(payload(marker))
    result = tunesmith.train(cfg, show_progress=False)
    assert result.summary["steps"] == 6 and not marker.exists()


def test_a_payload_in_the_state_files_is_a_damaged_checkpoint(trained, tmp_path, caplog):
    """Pickle bytes where the JSON and safetensors state go: not loaded, the checkpoint before it is used."""
    run, cfg = copy(trained, tmp_path)
    marker = tmp_path / "ran"
    newest = run / "checkpoints" / "step-000004"
    (newest / "train_state.json").write_bytes(payload(marker))
    (newest / "train_state.safetensors").write_bytes(payload(marker))
    with caplog.at_level("WARNING", logger="tunesmith"):
        result = tunesmith.train(cfg, show_progress=False)
    assert not marker.exists() and result.summary["steps"] == 6
    assert f"{newest / 'train_state.safetensors'}: damaged checkpoint file" in caplog.text
    assert "resuming from the checkpoint before it" in caplog.text
    assert [r["step"] for r in tunesmith.runfolder.read_metrics(run / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]


def test_only_payloads_left_is_a_one_line_error_through_the_cli(trained, tmp_path, capsys):
    import yaml

    run, cfg = copy(trained, tmp_path)
    marker = tmp_path / "ran"
    for ckpt in (run / "checkpoints").iterdir():
        for name in ("train_state.json", "train_state.safetensors"):
            (ckpt / name).unlink()
        (ckpt / "train_state.pt").write_bytes(payload(marker))  # an old-format (pickle) checkpoint
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "cfg.yaml")]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert "no checkpoint left to resume from" in err and "train_state.pt, a pickle" in err
    assert "to start fresh" in err and "Traceback" not in err
    assert not marker.exists()


def test_a_tampered_scheduler_state_is_refused(trained, tmp_path):
    run, _ = copy(trained, tmp_path)
    path = run / "checkpoints" / "step-000004"
    state = json.loads((path / "train_state.json").read_text())
    state["scheduler"]["optimizer"] = "anything"  # load_state_dict would set it as an attribute
    (path / "train_state.json").write_text(json.dumps(state))
    model, optimizer, scheduler = tiny_state()
    with pytest.raises(checkpoint.DamagedCheckpoint, match="scheduler state"):
        checkpoint.restore(checkpoint.read(path), model, optimizer, scheduler)


# --- trust_remote_code comes from the command line of the person running it ---


def trusting_run(trained, tmp_path):
    run, cfg = copy(trained, tmp_path)
    folder = RunFolder(run)
    text = folder.config.read_text()
    assert "trust_remote_code: false" in text
    folder.config.write_text(text.replace("trust_remote_code: false", "trust_remote_code: true"))
    return run, cfg


def spy_loads(monkeypatch) -> list[bool]:
    """Record the trust_remote_code every model load of this process is given."""
    import tunesmith.model as model_pkg

    seen: list[bool] = []
    real = model_pkg.load_model

    def load_model(*args, **kwargs):
        seen.append(kwargs["trust_remote_code"])
        return real(*args, **kwargs)

    monkeypatch.setattr(model_pkg, "load_model", load_model)
    return seen


def test_run_config_ignores_the_saved_trust_remote_code(trained, tmp_path):
    run, _ = trusting_run(trained, tmp_path)
    assert run_config(run).model.trust_remote_code is False
    assert run_config(run, trust_remote_code=True).model.trust_remote_code is True
    with trusting_remote_code():
        assert run_config(run).model.trust_remote_code is True
    assert run_config(run).model.trust_remote_code is False


@pytest.mark.parametrize("flag", [False, True])
def test_generate_trusts_remote_code_only_with_the_flag(trained, tmp_path, monkeypatch, flag):
    run, _ = trusting_run(trained, tmp_path)
    seen = spy_loads(monkeypatch)
    args = ["generate", str(run), "--prompt", "hi", "--max-new-tokens", "2"]
    assert main(args + (["--trust-remote-code"] if flag else [])) == 0
    assert seen == [flag]


def test_eval_base_model_trusts_remote_code_only_with_the_flag(trained, tmp_path, monkeypatch):
    from tunesmith.evaluate import evaluate_run

    run, _ = trusting_run(trained, tmp_path)
    seen = spy_loads(monkeypatch)
    data = tmp_path / "test.jsonl"
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]
    data.write_text(json.dumps({"messages": turns}))
    evaluate_run(run, data=data, few_shot=0, max_new_tokens=2, n_resamples=10)
    assert seen and not any(seen)


def test_every_verb_on_a_run_has_the_flag():
    from tunesmith.cli import build_parser

    parser = build_parser()
    extra = {"export": ["--format", "hf", "--out", "o"], "generate": ["--prompt", "p"]}
    for verb in ("eval", "generate", "chat", "export", "serve"):
        plain = [verb, "run", *extra.get(verb, [])]
        assert parser.parse_args([*plain, "--trust-remote-code"]).trust_remote_code is True
        assert parser.parse_args(plain).trust_remote_code is False


def test_a_resumed_train_uses_the_given_config_not_the_run_folders(trained, tmp_path, monkeypatch):
    """The run folder says trust_remote_code: true, the given config does not: it resumes, untrusted."""
    run, cfg = trusting_run(trained, tmp_path)
    seen = spy_loads(monkeypatch)
    tokenizer_trust: list[bool] = []
    import tunesmith.training.setup as setup

    real_tok = setup.load_tokenizer
    monkeypatch.setattr(
        setup, "load_tokenizer", lambda s, **kw: tokenizer_trust.append(kw["trust_remote_code"]) or real_tok(s, **kw)
    )
    result = tunesmith.train(cfg, show_progress=False)
    assert result.summary["steps"] == 6 and seen and not any(seen) and tokenizer_trust == [False]
    assert "trust_remote_code: false" in RunFolder(run).config.read_text()


def test_a_run_error_is_not_a_traceback_on_a_missing_checkpoint_file(tmp_path):
    with pytest.raises(RunError, match="damaged checkpoint file"):
        checkpoint.read(tmp_path)
