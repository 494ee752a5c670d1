"""Two tiny LoRA runs that answer differently and deterministically, trained once per test session.

tests/tiny.py's random Llama cannot learn to answer: its tied embeddings are tiny (std 0.02) and the pad row
(= <|im_end|>, the stop token) is zero, so no adapter can make a token or the stop token likely. Here the
embeddings are scaled up and the pad row filled, and each run learns one constant answer in 60 steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

import tiny
import tunesmith

ANSWERS = {"paris": "Paris.", "hello": "Hello! How can I help you today?"}
QUESTIONS = [
    "What is the capital of France?",
    "Reset my password please",
    "Where is my order VC-123456?",
    "I was charged twice",
    "How are you?",
    "Say hello",
    "What colour is the sky?",
    "Help",
]
_CACHE: dict = {}


def learnable_llama(folder: Path) -> Path:
    tok = tiny.chatml_tokenizer()
    model = tiny.llama(tok)
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(15)
        model.model.embed_tokens.weight[tok.pad_token_id].normal_(0, 0.3)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _data(path: Path, answer: str) -> str:
    with open(path, "w") as fh:
        for i in range(32):
            fh.write(
                json.dumps(
                    {
                        "messages": [
                            {"role": "user", "content": f"{QUESTIONS[i % 8]} #{i}"},
                            {"role": "assistant", "content": answer},
                        ]
                    }
                )
                + "\n"
            )
    return str(path)


def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """{'paris': run folder, 'hello': run folder, 'model': base model folder}; built once per session."""
    if not _CACHE:
        root = tmp_path_factory.mktemp("tiny-runs")
        model = learnable_llama(root / "base-model")
        _CACHE["model"] = model
        for name, answer in ANSWERS.items():
            cfg = {
                "model": {"name": str(model), "dtype": "float32"},
                "data": {"train": _data(root / f"{name}.jsonl", answer)},
                "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
                "train": {
                    "max_steps": 60,
                    "batch_size": 8,
                    "lr": 3e-2,
                    "warmup_ratio": 0.0,
                    "max_length": 128,
                    "save_every": 1000,
                },
                "eval": {"enabled": False},
                "output_dir": str(root / name),
            }
            _CACHE[name] = tunesmith.train(cfg, show_progress=False).run_dir
    return dict(_CACHE)
