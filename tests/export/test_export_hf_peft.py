"""Merged HF and PEFT exports, read back by transformers and peft; failed checks write nothing."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from tunesmith.cli import main
from tunesmith.export import ExportError, export
from tunesmith.export.checks import load_run_fp32, make_probes, probe_logits

ANSWER = "Paris."


def run_logits(run):
    r = load_run_fp32(run)
    probes = make_probes(r.config, r.tokenizer)
    return probes, probe_logits(r.model, probes)


@torch.no_grad()
def test_hf_folder_loads_offline_and_matches_the_adapter(tiny_runs, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "hf"
    assert main(["export", str(tiny_runs["paris"]), "--format", "hf", "--merge", "--out", str(out)]) == 0
    report = json.loads((out / "export.json").read_text())
    assert report["merge"]["max_logit_gap"] <= 1e-4 and report["check"]["max_logit_gap"] <= 1e-4
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json"):
        assert (out / name).is_file(), name
    assert not any(p.name.startswith("adapter") for p in out.iterdir())

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(out)
    assert model.generation_config.eos_token_id == [
        tok.convert_tokens_to_ids("<|im_end|>"),
        tok.convert_tokens_to_ids("<|endoftext|>"),
    ]
    probes, reference = run_logits(tiny_runs["paris"])
    gap = max(
        float((model(input_ids=torch.tensor([s])).logits[0] - r).abs().max())
        for s, r in zip(probes.sequences, reference)
    )
    assert gap <= 1e-4
    # a plain transformers user: the saved chat template + generation config answer and stop as tunesmith does
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "Say hello"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    new = model.generate(**ids, max_new_tokens=20)[0, ids["input_ids"].shape[1] :]
    assert tok.decode(new, skip_special_tokens=True) == ANSWER
    assert int(new[-1]) in model.generation_config.eos_token_id  # stopped at the end-of-turn token


def test_hf_folder_is_sharded_when_large(tiny_runs, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "sharded"
    export(tiny_runs["paris"], "hf", out, max_shard_size="20KB")
    assert len(list(out.glob("model-*.safetensors"))) > 1 and (out / "model.safetensors.index.json").is_file()
    AutoModelForCausalLM.from_pretrained(out)


@torch.no_grad()
def test_peft_folder_loads_with_peft_and_matches(tiny_runs, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "peft"
    report = export(tiny_runs["paris"], "peft", out)
    assert report["check"]["max_logit_gap"] <= 1e-4
    config = json.loads((out / "adapter_config.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"], dtype=torch.float32)
    model = PeftModel.from_pretrained(base, out).eval()
    probes, reference = run_logits(tiny_runs["paris"])
    assert (
        max(
            float((model(input_ids=torch.tensor([s])).logits[0] - r).abs().max())
            for s, r in zip(probes.sequences, reference)
        )
        <= 1e-4
    )


def broken_run(run, tmp_path):
    copy = tmp_path / "broken"
    shutil.copytree(run, copy)
    path = copy / "adapter" / "adapter_model.safetensors"
    weights = load_file(path)
    name = next(k for k in weights if "lora_B" in k)
    weights[name][0, 0] = float("nan")
    save_file(weights, path)
    return copy


def test_non_finite_merge_writes_nothing_and_exits_2(tiny_runs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["export", str(broken_run(tiny_runs["paris"], tmp_path)), "--format", "hf", "--out", str(out)]) == 2
    assert "non-finite" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))


def test_merge_that_does_not_match_writes_nothing(tiny_runs, tmp_path, monkeypatch):
    from tunesmith.export import merge

    monkeypatch.setattr(merge, "logit_tolerance", lambda reference: 0.0)
    with pytest.raises(ExportError, match="does not match the adapter"):
        export(tiny_runs["paris"], "hf", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_refuses_to_replace_a_folder_that_is_not_an_export(tiny_runs, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not an earlier tunesmith export"):
        export(tiny_runs["paris"], "hf", tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(ExportError, match="unmerged"):
        export(tiny_runs["paris"], "peft", tmp_path / "p", merge=True)


def quick_run(tiny_runs, tmp_path, method):
    import tunesmith

    return tunesmith.train(
        {
            "model": {"name": str(tiny_runs["model"]), "dtype": "float32"},
            "method": method,
            "data": {"train": str(tiny_runs["paris"].parent / "paris.jsonl")},
            "train": {"max_steps": 3, "batch_size": 8, "lr": 1e-2, "max_length": 128, "save_every": 1000},
            "eval": {"enabled": False},
            "output_dir": str(tmp_path / method),
        },
        show_progress=False,
    ).run_dir


def test_dora_merges_within_tolerance(tiny_runs, tmp_path):
    report = export(quick_run(tiny_runs, tmp_path, "dora"), "hf", tmp_path / "hf")
    assert report["merge"]["merged"] and report["merge"]["max_logit_gap"] <= 1e-4


def test_full_fine_tune_exports_without_merging(tiny_runs, tmp_path):
    run = quick_run(tiny_runs, tmp_path, "full")
    report = export(run, "hf", tmp_path / "hf")
    assert report["merge"]["merged"] is False and report["check"]["max_logit_gap"] <= 1e-4
    with pytest.raises(ExportError, match="no adapter"):
        export(run, "peft", tmp_path / "peft")
