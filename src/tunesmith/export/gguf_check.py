"""Check a GGUF file with the program that will read it: llama.cpp, through llama-cpp-python.

Three checks, each a way GGUF exports go wrong: tokenization (same ids as the transformers tokenizer),
weights (the same 16 greedy tokens from the same prompts; quantized files are reported, not required to
match), and the embedded chat template with its stop tokens (the same answers to the fixed probes).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from tunesmith.errors import ExportError
from tunesmith.export.checks import Probes, matching_prefix

log = logging.getLogger("tunesmith")

MUST_MATCH = {"f32": 16, "f16": 16}  # quantizations whose greedy tokens must equal tunesmith's
LLAMA_CPP_HINT = (
    'install it with: CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install llama-cpp-python==0.3.36 '
    "(built without native CPU tuning: a default build was seen to crash while evaluating)"
)


def open_llama(path: Path, n_ctx: int):
    """Load a GGUF with llama-cpp-python (CPU, quiet, this process's thread count)."""
    try:
        from llama_cpp import Llama
    except ImportError:
        raise ExportError(
            f"checking a GGUF file needs llama-cpp-python: {LLAMA_CPP_HINT}; or pass --no-verify "
            "to skip the check (not recommended)"
        ) from None
    return Llama(
        model_path=str(path),
        n_ctx=n_ctx,
        n_batch=min(512, n_ctx),
        n_threads=torch.get_num_threads(),
        verbose=False,
        seed=0,
    )


def llama_greedy(llm, prompt: list[int], n: int) -> tuple[list[int], np.ndarray | None]:
    """Greedy (argmax) continuation in llama.cpp from exactly these prompt ids: `n` tokens, past stop tokens;
    and the logits after the prompt."""
    import llama_cpp

    llm.reset()
    llm.eval(prompt)
    out: list[int] = []
    first = None
    for _ in range(n):
        # the last position's logits, straight from llama.cpp (Llama.scores is only kept with logits_all)
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
        first = logits.copy() if first is None else first
        token = int(np.argmax(logits))
        out.append(token)
        llm.eval([token])
    return out, first


def verify_gguf(
    path: Path,
    tokenizer,
    probes: Probes,
    reference_tokens: list[list[int]],
    reference_logits: list[torch.Tensor],
    chat_reference: list[tuple[list[dict], str]],
    *,
    quant: str,
    n_ctx: int,
) -> dict:
    """Run the three checks; raise an `ExportError` (nothing is written) when one a user would notice fails."""
    n_ctx = min(n_ctx, max(len(p) for p in probes.prompts) + 64)
    llm = open_llama(path, max(n_ctx, 128))
    try:
        meta = llm.metadata
        token_mismatch = [
            t
            for t in probes.texts
            if llm.tokenize(t.encode(), add_bos=False, special=False)
            != tokenizer(t, add_special_tokens=False).input_ids
        ]
        runs = [llama_greedy(llm, p, len(ref)) for p, ref in zip(probes.prompts, reference_tokens)]
        ours = [tokens for tokens, _ in runs]
        gap = max(float(np.abs(first - ref.float().numpy()).max()) for (_, first), ref in zip(runs, reference_logits))
        matches = [matching_prefix(a, b) for a, b in zip(ours, reference_tokens)]
        complete = [a == b for a, b in zip(ours, reference_tokens)]
        chats = []
        for messages, expected in chat_reference:
            got = llm.create_chat_completion(messages=messages, max_tokens=16, temperature=0.0, top_k=1, seed=0)
            chats.append(got["choices"][0]["message"]["content"].strip() == expected.strip())
    finally:
        llm.close()
    report = {
        "loaded_with": f"llama-cpp-python {_version()}",
        "quant": quant,
        "chat_template_embedded": "tokenizer.chat_template" in meta,
        "tokenization_identical": f"{len(probes.texts) - len(token_mismatch)}/{len(probes.texts)}",
        "max_logit_gap_after_prompt": gap,
        "greedy_matching_tokens": matches,
        "greedy_tokens_compared": len(reference_tokens[0]),
        "greedy_identical": f"{sum(complete)}/{len(complete)}",
        "chat_identical": f"{sum(chats)}/{len(chats)}",
    }
    log.info(
        "GGUF check (%s) in llama.cpp: tokenization %s identical, max |logit gap| %.3g, greedy matching "
        "tokens %s, chat answers %s identical",
        quant,
        report["tokenization_identical"],
        gap,
        matches,
        report["chat_identical"],
    )
    problems = []
    if token_mismatch:
        problems.append(
            f"llama.cpp tokenizes {len(token_mismatch)} probe text(s) differently, e.g. {token_mismatch[0][:40]!r}"
        )
    if quant in MUST_MATCH:
        short = [i for i, (m, ref) in enumerate(zip(matches, reference_tokens)) if m < min(MUST_MATCH[quant], len(ref))]
        if short:
            problems.append(
                f"greedy continuations differ from tunesmith's on {len(short)} probe(s) (matching tokens {matches})"
            )
        if not all(chats):
            problems.append(
                f"llama.cpp's chat path (embedded template, stop tokens) answers {chats.count(False)} "
                "probe question(s) differently"
            )
    if problems:
        raise ExportError(f"the GGUF file failed its llama.cpp check: {'; '.join(problems)}; nothing was written")
    return report


def _version() -> str:
    import llama_cpp

    return getattr(llama_cpp, "__version__", "?")
