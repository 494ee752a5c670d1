"""A tiny 3-label task that a tiny model learns in seconds, and one tuned run of it shared by the eval tests.

Each ticket carries one fixed trigger word (refund -> billing, order -> shipping, password -> account)
among filler words; the answer is `category: <label>`. The randomly initialised tiny base model scores
chance at best zero-shot and few-shot (answers held to the labels); 300 full fine-tuning steps learn it.
"""

import json
import random

TRIGGERS = {"billing": "refund", "shipping": "order", "account": "password"}
FILLER = ["please help", "hello there", "the quick fox", "what is this", "my model", "short answers"]
REGEX = r"category:\s*(\w+)"


def write_rows(path, n: int, seed: int) -> str:
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(n):
            label = list(TRIGGERS)[i % 3]
            text = f"{rng.choice(FILLER)} {TRIGGERS[label]} {rng.choice(FILLER)}"
            fh.write(
                json.dumps(
                    {
                        "messages": [
                            {"role": "user", "content": text},
                            {"role": "assistant", "content": f"category: {label}"},
                        ]
                    }
                )
                + "\n"
            )
    return str(path)


def run_config(model_dir, train, test, out, **train_overrides) -> dict:
    return {
        "model": str(model_dir),
        "data": {"train": train, "eval": test, "system_prompt": "Classify the ticket."},
        "method": "full",
        "train": {
            "max_steps": 300,
            "batch_size": 8,
            "lr": 1e-2,
            "max_length": 64,
            "save_every": 1000,
            "eval_every": 1000,
            "warmup_ratio": 0.0,
            **train_overrides,
        },
        "eval": {"max_new_tokens": 16, "answer_regex": REGEX, "few_shot": 3},
        "output_dir": str(out),
    }
