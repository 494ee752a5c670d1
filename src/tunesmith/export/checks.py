"""What every export is checked with: the run's model in fp32, probe prompts, logit gaps, greedy tokens."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tunesmith.config import Config
from tunesmith.data.types import Message
from tunesmith.errors import TunesmithError
from tunesmith.generation import generate_tokens
from tunesmith.render import render, render_prompt, stop_token_ids

log = logging.getLogger("tunesmith")

# The largest |logit difference| (fp32) allowed between an export and the run's adapter model: an absolute
# floor plus a share of the logits' own scale, because fp32 rounding grows with it. Measured on SmolLM2-135M
# after a strong adapter (max |logit| 39): the adapter model alone is 1.8e-4 away from itself in float64, the
# merged model 1.2e-4, so the two differ by 2.8e-4 when nothing is wrong. A real merge fault (a layer left
# out, a wrong scale) moves logits by 1e-2 and more.
MERGE_ATOL = 1e-4
MERGE_RTOL = 2e-5
FIXED_PROBES = (
    "What is the capital of France?",
    "I was charged twice for my order, please help.",
    "Write one short sentence about the sea. Numbers: 12345, 3.14!",
)


@dataclass(frozen=True)
class Probes:
    """Token ids to check an export on: whole rendered conversations (logits) and prompts (generation)."""

    sequences: list[list[int]]
    prompts: list[list[int]]
    texts: list[str]  # raw strings, to compare tokenizers
    chats: list[tuple[str, list[int]]] = field(default_factory=list)  # a bare question, its full trained prompt


@dataclass
class RunModel:
    """A run's tuned model, loaded in fp32 for exporting."""

    model: Any  # PeftModel for lora/dora runs, the model itself for full fine-tuning
    tokenizer: Any
    config: Config
    adapter_dir: Path | None
    root: Path | None = None  # the run folder

    @property
    def is_adapter(self) -> bool:
        return self.adapter_dir is not None


def load_run_fp32(run_dir: str | Path) -> RunModel:
    """The run's model in float32 on the CPU (whatever dtype and device it trained in, a QLoRA adapter on the
    unquantized base): the reference every export must match, merged and written from CPU memory."""
    from tunesmith.model.tuned import load_tuned
    from tunesmith.runfolder import RunFolder

    model, tokenizer, config = load_tuned(run_dir, dtype="float32", device="cpu")
    run = RunFolder(run_dir)
    return RunModel(model, tokenizer, config, run.adapter if run.has_adapter else None, Path(run_dir))


def make_probes(config: Config, tokenizer, n_data: int = 3, max_length: int = 256) -> Probes:
    """Probe prompts: a few of the run's own examples (when its data is still readable) plus fixed ones."""
    from tunesmith.data.loader import load_conversations

    system = config.data.system_prompt
    convs = []
    for path in (config.data.eval, config.data.train):
        if path is None:
            continue
        try:
            convs = [c for c in load_conversations(path, config.data.columns) if not c.is_text][:n_data]
        except TunesmithError as e:
            log.debug("probe data unavailable (%s); using fixed probes only", e)
        if convs:
            break
    sequences, prompts, texts = [], [], []
    for c in convs:
        sequences.append(render(c, tokenizer, max_length=max_length, system_prompt=system).input_ids)
        prompts.append(render_prompt(c.prompt_messages(), tokenizer, system_prompt=system)[-max_length:])
        texts.append(" ".join(m.content for m in c.messages))
    chats = []
    for q in FIXED_PROBES:
        full = render_prompt([Message("user", q)], tokenizer, system_prompt=system)
        ids = full[-max_length:]
        sequences.append(ids)
        prompts.append(ids)
        texts.append(q)
        chats.append((q, full))
    return Probes(sequences, prompts, texts, chats)


@torch.no_grad()
def probe_logits(model, probes: Probes) -> list[torch.Tensor]:
    """fp32 logits of every probe sequence (one at a time: no padding to reason about)."""
    model.eval()
    return [model(input_ids=torch.tensor([s])).logits[0].float() for s in probes.sequences]


def logit_tolerance(reference: list[torch.Tensor]) -> float:
    """The fp32 |logit gap| an export may show against the reference logits (see MERGE_ATOL, MERGE_RTOL)."""
    scale = max(float(x.abs().max()) for x in reference)
    return MERGE_ATOL + MERGE_RTOL * scale if scale == scale else MERGE_ATOL


def max_gap(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """The largest absolute logit difference over all probes and positions (inf when not finite)."""
    gap = max(float((x - y).abs().max()) for x, y in zip(a, b))
    return gap if gap == gap else float("inf")


def greedy(model, prompts: list[list[int]], n: int = 16) -> list[list[int]]:
    """tunesmith's own greedy continuation of each prompt: exactly `n` tokens, on past any stop token, so that
    every probe compares `n` tokens of the weights' behaviour (stopping is checked separately)."""
    return [list(generate_tokens(model, p, max_new_tokens=n, stop_ids=[])) for p in prompts]


def until_stop(tokens: list[int], tokenizer) -> list[int]:
    """The answer a chat user sees: the tokens before the first stop token."""
    stops = set(stop_token_ids(tokenizer))
    return next((tokens[:i] for i, t in enumerate(tokens) if t in stops), tokens)


def matching_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens two continuations share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
