"""Eval throughput: tunesmith's batched generation and label ranking against a plain per-example HF loop.

The same model, the same prompts (rendered with the same chat template and system prompt), greedy decoding,
the same stop tokens. Prints a markdown table: examples/s, ratio to the plain loop, answers identical to the
plain loop's, and label accuracy.

    python benchmarks/eval_throughput.py --model smollm2-135m --n 32 --max-new-tokens 40
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from tunesmith.config import load_config
from tunesmith.data import load_conversations
from tunesmith.evaluate.likelihood import candidate_ids, rank_labels
from tunesmith.evaluate.metrics import normalise, to_label
from tunesmith.evaluate.task import infer_task
from tunesmith.generation import generate_answers
from tunesmith.model.load import load_model, load_tokenizer, resolve_model
from tunesmith.render import render_prompt, stop_token_ids


@torch.no_grad()
def plain_loop(model, tokenizer, prompts: list[list[int]], max_new_tokens: int) -> list[str]:
    """What a user would write first: one `generate` call per example, no batching."""
    answers = []
    for p in prompts:
        ids = torch.tensor([p])
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            eos_token_id=stop_token_ids(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
        )
        answers.append(tokenizer.decode(out[0, len(p) :], skip_special_tokens=True).strip())
    return answers


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="examples/support/config.yaml", help="system prompt and answer regex")
    ap.add_argument("--model", default=None, help="default: the config's model")
    ap.add_argument("--data", default="examples/support/test.jsonl")
    ap.add_argument("--n", type=int, default=32, help="test examples")
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    source = resolve_model(args.model or config.model.name)
    tokenizer, model = load_tokenizer(source), load_model(source, dtype=args.dtype).eval()
    convs = [c for c in load_conversations(args.data) if c.reference()][: args.n]
    system = config.data.system_prompt
    prompts = [render_prompt(list(c.prompt_messages()), tokenizer, system_prompt=system) for c in convs]
    task = infer_task([c.reference() for c in convs], answer_regex=config.eval.answer_regex)
    gold = [task.gold(c.reference()) for c in convs]

    plain, t_plain = timed(lambda: plain_loop(model, tokenizer, prompts, args.max_new_tokens))
    batched, t_batch = timed(
        lambda: generate_answers(
            model,
            tokenizer,
            [list(c.prompt_messages()) for c in convs],
            system_prompt=system,
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
        )
    )
    rows = [
        ("HF generate, one example at a time", plain, t_plain),
        (f"tunesmith batched generation (batch {args.batch_size}, left-padded, KV cache)", batched, t_batch),
    ]
    if task.kind == "label":
        cands = candidate_ids(tokenizer, task.labels, task.label_prefix, end_of_turn=task.answer_regex is None)
        scores, t_rank = timed(
            lambda: rank_labels(model, prompts, cands, tokenizer.pad_token_id, batch_rows=2 * args.batch_size)
        )
        ranked = [task.label_prefix + task.labels[max(range(len(s)), key=s.__getitem__)] for s in scores]
        rows.append((f"tunesmith label ranking ({len(task.labels)} labels, log-likelihood)", ranked, t_rank))

    print(
        f"\nmodel {source.name}, {len(convs)} examples from {args.data}, max_new_tokens {args.max_new_tokens}, "
        f"{args.threads} thread(s), {next(model.parameters()).dtype}, greedy\n"
    )
    print("| method | seconds | examples/s | vs plain HF | same answer as plain | label accuracy |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, answers, seconds in rows:
        same = sum(normalise(a) == normalise(b) for a, b in zip(answers, plain)) / len(plain)
        same_text = "-" if "ranking" in name else f"{100 * same:.0f}%"
        acc = (
            sum(to_label(a, task.labels, task.answer_regex) == g for a, g in zip(answers, gold)) / len(gold)
            if task.kind == "label"
            else float("nan")
        )
        print(
            f"| {name} | {seconds:.1f} | {len(convs) / seconds:.2f} | {t_plain / seconds:.2f}x | {same_text} | "
            f"{100 * acc:.1f}% |"
        )


if __name__ == "__main__":
    main()
