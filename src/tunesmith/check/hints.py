"""How to fix each check's findings: one table, check code -> a sentence or two, shown by the HTML report (and any
other view) under the check's findings. `tests/check/test_hints.py` fails when a check in src/ has no hint."""

from __future__ import annotations

FIX_OUT = "re-run `tunesmith check` with `--fix-out clean.jsonl` and point `data.train` at the new file"

HINTS: dict[str, str] = {
    "format": "Fix or delete each listed record (docs/data.md shows the accepted shapes). To drop the records that "
    f"do not parse at all (invalid JSON or UTF-8, not an object), {FIX_OUT}; fix missing or mistyped fields by hand.",
    "render": "The chat template cannot render this record the way training needs (e.g. it does not render a "
    "conversation prefix by prefix, so the trained turn cannot be found): pick another with `data.template`.",
    "eos_not_trained": "The model would never learn to stop: use a chat template whose assistant turn ends in the "
    "eos or an end-of-turn token (`data.template: chatml` or `llama3`, or your own file); with "
    "`data.train_on_prompt: true` the template itself must write that token.",
    "double_bos": "BOS appears twice inside the row: remove the BOS text from the data, or use a chat template that "
    "writes `bos_token` once, at the start (`data.template`).",
    "prompt_not_prefix": "Inference would feed the model a prompt training never showed it. Use a template whose "
    "generation prompt renders exactly like the start of the assistant turn, e.g. without a trailing space "
    "(`data.template: chatml` or `llama3`, or fix your template file).",
    "no_trained_tokens": "Rows without a trained token are dropped from training: raise `train.max_length` or "
    "shorten the prompts so each answer fits.",
    "truncated": "Truncated rows lose the end of their answer and may never learn to stop: raise `train.max_length` "
    "(the histograms below show the lengths), or shorten or split the longest records.",
    "no_chat_template": "Nothing to fix when you run the tuned model with tunesmith. For other inference stacks, "
    "set `data.template` (`chatml` or `llama3` when the vocabulary has their tokens, or a Jinja file).",
    "pad_is_eos": "Nothing to do: padding is masked by the attention mask, so eos stays trained. Another trainer "
    "that masks pad ids in the labels would never teach this model to stop.",
    "duplicate": f"Duplicates weigh a record more than the others: {FIX_OUT} (it drops the later copies in the "
    "training file). Delete duplicates in an eval file by hand.",
    "near_duplicate": "Not removed by `--fix-out`: compare each pair and delete the redundant record, unless the "
    "variation is intended (e.g. paraphrases).",
    "conflict": "The same prompt is trained toward different answers, so the model learns to hedge: keep the right "
    "completion and fix or delete the others, or make the prompts say what tells them apart.",
    "leak": f"The eval score would count answers the model was trained on: {FIX_OUT} (it drops the training rows "
    "these eval rows leak from), or delete the eval rows instead.",
    "near_leak": f"The eval score would be inflated by near-copies of training rows: {FIX_OUT} (it drops the "
    "training rows these eval rows nearly leak from), or delete the eval rows instead.",
    "label_imbalance": "The model may learn to answer the common label: add examples of the rare labels or "
    "downsample the common ones, and judge the tuned model per label (the eval report's confusion matrix).",
    "pii": "A tuned model can repeat its training text verbatim: redact or remove these values before training, "
    "and revoke any real API key or private key found here.",
    "fact_injection": "Fine-tuning teaches format, style and reasoning, not facts: put the facts in a retrieval "
    "index (RAG) and fine-tune on answering from the retrieved text (docs/check.md, Facts belong in retrieval).",
}


def hint(check: str) -> str | None:
    """How to fix findings of `check`, or None for a check without a hint."""
    return HINTS.get(check)
