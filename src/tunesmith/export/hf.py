"""A merged Hugging Face model folder: config, (sharded) safetensors, tokenizer with the chat template, and a
generation config whose stop tokens are the ones the model was trained to end a turn with."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from tunesmith.errors import ExportError
from tunesmith.export.checks import Probes, greedy, logit_tolerance, max_gap, probe_logits
from tunesmith.model.load import DTYPES
from tunesmith.render import stop_token_ids, template_of

log = logging.getLogger("tunesmith")


def write_hf(
    model,
    tokenizer,
    folder: Path,
    *,
    dtype: str = "float32",
    max_shard_size: str = "2GB",
    system_prompt: str | None = None,
) -> None:
    """Save `model` (plain transformers, already merged) and its tokenizer so `from_pretrained` needs nothing else."""
    model = model.to(DTYPES[dtype])
    model.config.dtype = dtype
    model.save_pretrained(folder, max_shard_size=max_shard_size, safe_serialization=True)
    save_tokenizer(tokenizer, folder, system_prompt=system_prompt)


def trained_template(tokenizer, system_prompt: str | None) -> str:
    """The chat template the run trained with, defaulting to the run's system prompt where a conversation
    has none (as training inserted it), instead of the base template's own default (SmolLM2's names SmolLM)."""
    template = template_of(tokenizer)
    if system_prompt is None:
        return template
    import json

    default = (
        "{%- if not messages or messages[0]['role'] != 'system' -%}"
        f"{{%- set messages = [{{'role': 'system', 'content': {json.dumps(system_prompt)}}}] + messages -%}}"
        "{%- endif -%}"
    )
    return default + template


def save_tokenizer(tokenizer, folder: Path, *, system_prompt: str | None = None) -> None:
    """The tokenizer with the chat template it trained with (base models: the plain one; the run's system prompt
    as its default), and a generation config that stops where training's turns end."""
    from transformers import GenerationConfig

    original = tokenizer.chat_template
    tokenizer.chat_template = trained_template(tokenizer, system_prompt)
    try:
        tokenizer.save_pretrained(folder)
    finally:
        tokenizer.chat_template = original
    stops = stop_token_ids(tokenizer)
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=stops if len(stops) > 1 else stops[0],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    ).save_pretrained(folder)


def template_check(tokenizer, probes: Probes) -> None:
    """The written tokenizer, applying its own chat template to a bare user question (no system message),
    must give exactly the prompt tunesmith trained with (the run's system prompt included)."""
    for question, trained in probes.chats:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True)
        ids = list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
        if ids != trained:
            raise ExportError(
                "the written chat template does not render a conversation as the run trained on it (its default "
                "system prompt differs?); nothing was written"
            )


def verify_hf(
    folder: Path, reference: list[torch.Tensor], probes: Probes, reference_tokens: list[list[int]], *, dtype: str
) -> dict:
    """Load the folder back with transformers (offline, fp32) and compare with the run's model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    gen = GenerationConfig.from_pretrained(folder, local_files_only=True)
    template_check(tokenizer, probes)
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
