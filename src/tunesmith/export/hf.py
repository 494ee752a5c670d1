"""A merged Hugging Face model folder: config, (sharded) safetensors, tokenizer with the chat template, and a
generation config whose stop tokens are the ones the model was trained to end a turn with."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from tunesmith.export.checks import ExportError, Probes, greedy, logit_tolerance, max_gap, probe_logits
from tunesmith.model.load import DTYPES
from tunesmith.render import stop_token_ids, template_of

log = logging.getLogger("tunesmith")

HF_DTYPES = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}


def write_hf(model, tokenizer, folder: Path, *, dtype: str = "float32", max_shard_size: str = "2GB") -> None:
    """Save `model` (plain transformers, already merged) and its tokenizer so `from_pretrained` needs nothing else."""
    model = model.to(DTYPES[dtype])
    model.config.dtype = dtype
    model.save_pretrained(folder, max_shard_size=max_shard_size, safe_serialization=True)
    save_tokenizer(tokenizer, folder)


def save_tokenizer(tokenizer, folder: Path) -> None:
    """The tokenizer with the chat template it trained with (base models: the plain one), and a generation
    config that stops where training's turns end."""
    from transformers import GenerationConfig

    tokenizer.chat_template = template_of(tokenizer)
    tokenizer.save_pretrained(folder)
    stops = stop_token_ids(tokenizer)
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=stops if len(stops) > 1 else stops[0],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    ).save_pretrained(folder)


def verify_hf(
    folder: Path, reference: list[torch.Tensor], probes: Probes, reference_tokens: list[list[int]], *, dtype: str
) -> dict:
    """Load the folder back with transformers (offline, fp32) and compare with the run's model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    gen = GenerationConfig.from_pretrained(folder, local_files_only=True)
    stops = stop_token_ids(tokenizer)
    saved = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    if sorted(saved) != sorted(stops):
        raise ExportError(f"the written generation config stops at {saved}, expected {stops}; nothing was written")
    gap = max_gap(reference, probe_logits(model, probes))
    tokens = greedy(model, probes.prompts, n=len(reference_tokens[0]))
    same = sum(a == b for a, b in zip(tokens, reference_tokens))
    log.info(
        "HF folder check: reloaded with transformers, max |logit gap| %.3g, greedy answers %d/%d identical",
        gap,
        same,
        len(tokens),
    )
    tolerance = logit_tolerance(reference)
    if dtype == "float32" and not gap <= tolerance:
        raise ExportError(
            f"the reloaded HF folder does not match the run's model: max |logit gap| {gap:.3g} > "
            f"{tolerance:.2g}; nothing was written"
        )
    return {
        "reloaded_with": "transformers AutoModelForCausalLM",
        "dtype": dtype,
        "max_logit_gap": gap,
        **({"tolerance": tolerance} if dtype == "float32" else {}),
        "greedy_identical": f"{same}/{len(tokens)}",
        "stop_token_ids": stops,
    }
