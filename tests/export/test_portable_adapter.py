"""An exported adapter names its base model by the id another machine loads it by (not a folder in our cache),
and carries a filled-in model card: loaded on a "machine" whose only copy of the base model is the Hugging Face
hub cache under that id (a fresh HF_HOME, offline)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tinyruns import _data, learnable_llama

import tunesmith
from tunesmith.export import export

HUB_ID = "tunesmith-test/tiny-chat"


def _hub_cache(home: Path, model: Path) -> None:
    """The layout huggingface_hub reads offline: hub/models--org--name/{refs/main, snapshots/<rev>/...}."""
    repo = home / "hub" / f"models--{HUB_ID.replace('/', '--')}"
    rev = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(rev)
    shutil.copytree(model, repo / "snapshots" / rev)


def test_exported_adapter_loads_by_its_hub_id_on_a_fresh_machine(tmp_path):
    base = learnable_llama(tmp_path / "base-model")
    config = json.loads((base / "config.json").read_text())
    config["_name_or_path"] = HUB_ID  # a local copy of a hub model remembers where it came from
    (base / "config.json").write_text(json.dumps(config))
    run = tunesmith.train(
        {
            "model": {"name": str(base), "dtype": "float32"},
            "data": {"train": _data(tmp_path / "train.jsonl", "Paris."), "system_prompt": "Answer briefly."},
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
            "train": {"max_steps": 2, "batch_size": 4, "lr": 1e-2, "max_length": 64, "save_every": 1000},
            "eval": {"enabled": False},
            "output_dir": str(tmp_path / "run"),
        },
        show_progress=False,
    ).run_dir
    assert json.loads((run / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == HUB_ID
    out = tmp_path / "peft"
    export(run, "peft", out)
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == HUB_ID
    card = (out / "README.md").read_text()
    assert card.startswith("---\nbase_model: tunesmith-test/tiny-chat\nlibrary_name: peft\n")
    assert "Answer briefly." in card and "steps: 2" in card and str(base) in card  # the local copy as a hint

    # the exported chat template defaults to the system prompt the run trained with (not the base's own)
    from transformers import AutoTokenizer

    from tunesmith.data.types import Message
    from tunesmith.render import render_prompt

    exported = AutoTokenizer.from_pretrained(out)
    bare = exported.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False)
    assert "Answer briefly." in bare
    trained = render_prompt([Message("user", "Hi")], exported, system_prompt="Answer briefly.")
    assert exported(bare, add_special_tokens=False)["input_ids"] == trained
    merged = tmp_path / "hf"
    report = export(run, "hf", merged)  # its check renders the fixed probes through the written template
    assert "greedy_identical" in report["check"]
    assert (
        AutoTokenizer.from_pretrained(merged)
        .apply_chat_template(
            [{"role": "system", "content": "Other."}, {"role": "user", "content": "Hi"}], tokenize=False
        )
        .count("Answer briefly.")
        == 0
    )  # a conversation's own system message still wins
    assert (
        (merged / "README.md")
        .read_text()
        .startswith("---\nbase_model: tunesmith-test/tiny-chat\nlibrary_name: transformers")
    )

    home = tmp_path / "fresh-home"
    _hub_cache(home, base)
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    code = (
        "import sys, torch\n"
        "from peft import AutoPeftModelForCausalLM\n"
        "m = AutoPeftModelForCausalLM.from_pretrained(sys.argv[1])\n"
        "print(type(m).__name__, m.peft_config['default'].base_model_name_or_path)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["PeftModelForCausalLM", HUB_ID]
