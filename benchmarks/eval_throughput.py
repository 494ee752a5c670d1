"""Generation throughput, side by side in one run: the same tuned model, prompts and greedy decoding through

    (a) tunesmith before the fast path: transformers' `generate` on left-padded batches of the PEFT model
    (b) tunesmith now: `generation.generate_ids` (adapter merged into a float32 copy with its linear layers packed
        for oneDNN, preallocated KV cache, shared prefix computed once, prompts in prefill passes of similar
        length, finished rows leave the batch), in the batches evaluation makes (`batches`: up to 16 x
        --batch-size rows within a 1 GiB KV cache)
    (b16) the same path in the run's own 16-bit dtype (`--precision model`)
    (c) a plain HF loop: one `generate` call per prompt, as a user would write first
    (d) llama.cpp (llama-cpp-python): the same run merged and exported by `tunesmith export --format gguf`
        (f16), one prompt at a time: the CPU reference

Prints a markdown table: generated tokens/s, ratio to (a), and how many answers are token-for-token those of (c);
and how many of (b)'s answers are the same alone (b1) as in a batch (batch invariance).
Without `--run`, a run is made first (2 LoRA steps on examples/support: a real adapter, nothing more).

    python benchmarks/eval_throughput.py                      # bundled model, 32 support test prompts
    python benchmarks/eval_throughput.py --run runs/support --n 80 --few-shot 3
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def make_run(folder: Path) -> Path:
    import tunesmith

    overrides = ["train.lr=1e-3", "train.max_steps=2", "eval.enabled=false", "eval.report=false"]
    result = tunesmith.train(str(ROOT / "examples/support/config.yaml"), [*overrides, f"output_dir={folder}"])
    return Path(result.run_dir)


@torch.no_grad()
def hf(model, tok, prompts: list[list[int]], max_new: int, stops: list[int]) -> list[list[int]]:
    """transformers' greedy `generate` on one left-padded batch, each row cut at its first stop token."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), tok.pad_token_id)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, width - len(p) :] = torch.tensor(p)
        mask[r, width - len(p) :] = 1
    gen = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=max_new,
        do_sample=False,
        temperature=None,
        top_p=None,
        top_k=None,
        eos_token_id=stops,
        pad_token_id=tok.pad_token_id,
    )
    return [cut(row, stops) for row in gen[:, width:].tolist()]


def before(model, tok, prompts: list[list[int]], max_new: int, batch: int, stops: list[int]) -> list[list[int]]:
    """(a): what `generate_batch` did before the fast path: left-padded batches through `generate`."""
    return in_batches(prompts, batch, lambda chunk: hf(model, tok, chunk, max_new, stops))


def plain(model, tok, prompts: list[list[int]], max_new: int, stops: list[int]) -> list[list[int]]:
    """(c): one `generate` call per prompt."""
    return [hf(model, tok, [p], max_new, stops)[0] for p in prompts]


def in_batches(prompts: list[list[int]], size: int, answer) -> list[list[int]]:
    """`answer(batch)` over batches of `size` prompts, longest first (as evaluation orders them)."""
    out: list[list[int]] = [[] for _ in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    for start in range(0, len(order), size):
        chunk = order[start : start + size]
        for i, ids in zip(chunk, answer([prompts[i] for i in chunk])):
            out[i] = ids
    return out


def llama_cpp(gguf: Path, prompts: list[list[int]], max_new: int, stops: list[int]) -> list[list[int]]:
    """(d): greedy in llama.cpp from exactly these prompt ids, one prompt at a time, up to a stop token."""
    from tunesmith.export.gguf_check import open_llama

    llm = open_llama(gguf, n_ctx=max(len(p) for p in prompts) + max_new + 8)
    out = []
    try:
        for p in prompts:
            got: list[int] = []
            for token in llm.generate(p, top_k=1, top_p=1.0, temp=0.0, reset=True):
                if token in stops or len(got) >= max_new:
                    break
                got.append(token)
            out.append(got)
    finally:
        llm.close()
    return out


def cut(row: list[int], stops: list[int]) -> list[int]:
    for i, t in enumerate(row):
        if t in stops:
            return row[:i]
    return row


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="a trained run folder (default: make one, 2 steps on examples/support)")
    ap.add_argument("--data", default=str(ROOT / "examples/support/test.jsonl"))
    ap.add_argument("--n", type=int, default=32, help="test prompts")
    ap.add_argument("--few-shot", type=int, default=0, help="prior example turns in every prompt (as eval does)")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--dtype", default=None, choices=["float32", "bfloat16"], help="default: as the run trained")
    ap.add_argument("--no-llama", action="store_true", help="leave out (d)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from tunesmith.data import load_conversations
    from tunesmith.evaluate.systems import pick_shots
    from tunesmith.generation import batches, generate_ids
    from tunesmith.model.inference import for_inference, inference_dtype
    from tunesmith.model.tuned import load_tuned
    from tunesmith.precision import decoding_in
    from tunesmith.render import render_prompt, stop_token_ids

    work = Path(tempfile.mkdtemp(prefix="eval-throughput-"))
    run = Path(args.run) if args.run else make_run(work / "run")
    model, tok, config = load_tuned(run, dtype=args.dtype)
    convs = [c for c in load_conversations(args.data) if c.reference()][: args.n]
    shots = pick_shots(load_conversations(config.data.train), args.few_shot, 0) if args.few_shot else []
    system = config.data.system_prompt
    prompts = [render_prompt([*shots, *c.prompt_messages()], tok, system_prompt=system) for c in convs]
    stops, n, b = stop_token_ids(tok), args.max_new_tokens, args.batch_size

    rows = []
    ref, t = timed(lambda: plain(model, tok, prompts, n, stops))
    rows.append(("(c) HF generate, one prompt at a time", ref, t))
    old, t = timed(lambda: before(model, tok, prompts, n, b, stops))
    rows.insert(0, (f"(a) tunesmith before: HF generate, left-padded batches of {b}", old, t))

    def new() -> list[list[int]]:
        got: list[list[int]] = [[] for _ in prompts]
        for chunk in chunks:
            for i, answer in zip(chunk, generate_ids(model, tok, [prompts[i] for i in chunk], max_new_tokens=n)):
                got[i] = answer
        return got

    chunks = batches(for_inference(model), prompts, b, n)  # as evaluation makes them (longest first, up to 16 x b)
    ours, t = timed(new)
    sizes = [len(c) for c in chunks]
    rows.insert(1, (f"(b) tunesmith now: merged, preallocated cache, shared prefix, batches of {sizes}", ours, t))
    one, t = timed(lambda: [generate_ids(model, tok, [p], max_new_tokens=n)[0] for p in prompts])
    rows.insert(2, ("(b1) tunesmith now, one prompt at a time", one, t))
    invariant = {"b": sum(a == c for a, c in zip(ours, one))}  # alone against evaluation's batches
    dtype = next(model.parameters()).dtype
    if inference_dtype(model) != dtype:  # the same path in the run's own 16-bit dtype, for the cost of float32
        with decoding_in("model"):
            chunks = batches(for_inference(model), prompts, b, n)
            halves, t = timed(new)
            name, sizes = str(dtype).removeprefix("torch."), [len(c) for c in chunks]
            rows.insert(3, (f"(b16) the same path in {name} (--precision model), batches of {sizes}", halves, t))
            alone16 = [generate_ids(model, tok, [p], max_new_tokens=n)[0] for p in prompts]
        invariant["b16"] = sum(a == c for a, c in zip(halves, alone16))
    exact = ref  # the answers the new path must give: transformers' own, in the precision it decodes in
    if inference_dtype(model) != dtype:
        full = copy.deepcopy(model).to(inference_dtype(model))
        exact, t = timed(lambda: plain(full, tok, prompts, n, stops))
        rows.append(
            (
                f"(c32) HF generate on a {str(inference_dtype(model)).removeprefix('torch.')} copy, one at a time",
                exact,
                t,
            )
        )
    if not args.no_llama:
        from tunesmith.export import export

        export(run, "gguf", work / "gguf", quant="f16", verify=False)
        gguf = next((work / "gguf").glob("*.gguf"))
        got, t = timed(lambda: llama_cpp(gguf, prompts, n, stops))
        rows.append(("(d) llama.cpp, f16 GGUF of the merged run, one prompt at a time", got, t))

    tokens_in = sum(len(p) for p in prompts) / len(prompts)
    print(
        f"\nrun {run}, {len(prompts)} prompts (mean {tokens_in:.0f} tokens, {args.few_shot}-shot), up to {n} new "
        f"tokens, greedy, {args.threads} thread(s); the run's weights {str(dtype).removeprefix('torch.')}, (b) decodes "
        f"in {str(inference_dtype(model)).removeprefix('torch.')}, llama.cpp in f16\n"
    )
    base_tps = None
    print("| path | seconds | generated tokens | tokens/s | vs (a) | same tokens as (c) | same as HF in (b)'s dtype |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, answers, seconds in rows:
        made = sum(len(a) for a in answers)
        tps = made / seconds
        base_tps = base_tps or tps
        same = sum(a == r for a, r in zip(answers, ref))
        exactly = sum(a == r for a, r in zip(answers, exact))
        print(
            f"| {name} | {seconds:.1f} | {made} | {tps:.1f} | {tps / base_tps:.2f}x | {same}/{len(ref)} | "
            f"{exactly}/{len(ref)} |"
        )
    for key, same in invariant.items():
        print(f"\nbatch invariance of ({key}): {same}/{len(prompts)} answers the same alone as in its batches")


if __name__ == "__main__":
    main()
