"""Side-by-side LoRA training throughput: naive HF+PEFT, TRL SFTTrainer (padded and packed), tunesmith.

Same model shape (SmolLM2-135M, the bundled weights; or a larger shape, randomly initialised once per run
with the bundled tokenizer: `--shape`), LoRA r=16 on all linear layers, the same variable-length chat rows
(prompts 20-200 tokens, completions 5-100), the same effective batch, max_length and optimizer steps, and the
same optimisation (AdamW lr 2e-4 constant, no weight decay, gradients clipped at 1.0, LoRA dropout 0.05).
Every variant runs in its own process (so peak RSS is its own); variants are interleaved over rounds so
background load hits all alike; the table reports ratios against naive and TRL measured in this run.

    pip install -e '.[bench]'   # TRL and datasets, for the TRL variants
    python benchmarks/train_throughput.py [--steps 6] [--rounds 2] [--json OUT]
    python benchmarks/train_throughput.py --device cuda --shape smollm2-1.7b --batch 16   # on a GPU
    python benchmarks/train_throughput.py --variants tunesmith,tunesmith_qlora          # QLoRA (bitsandbytes)
    python benchmarks/train_throughput.py --variants tunesmith,tunesmith_gc             # gradient checkpointing

On a GPU every variant runs there: naive in fp32, TRL with `bf16=True` (its recommended mixed precision),
tunesmith with its defaults (bf16, SDPA per packed sample); memory is then also the peak of
`torch.cuda.max_memory_allocated`, and the matmul peak is measured on the GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ["naive", "trl", "trl_packed", "tunesmith"]  # and tunesmith_qlora, on request
# short rows (~46 tokens, as intent routing data): tunesmith batched by tokens against batched by 8 rows
SHORT = ["tunesmith_short", "tunesmith_short_rows"]
SHORT_ROWS_PER_LONG = 8  # short rows drawn per long one, so a token-batched step has rows enough
LR, RANK, ALPHA, MAX_LENGTH = 2e-4, 16, 32, 512
# larger shapes of the same family (the published SmolLM2 configs), randomly initialised
SHAPES = {
    "smollm2-135m": None,
    "smollm2-360m": dict(
        hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15, num_key_value_heads=5
    ),
    "smollm2-1.7b": dict(
        hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32, num_key_value_heads=32
    ),
}


def make_shape(shape: str, folder: Path) -> str:
    """The model the variants load: the bundled SmolLM2-135M, or a random model of a larger shape."""
    sys.path.insert(0, str(ROOT / "src"))
    from tunesmith.model.load import load_tokenizer, resolve_model

    source = resolve_model("smollm2-135m")
    if SHAPES[shape] is None:
        return str(source.folder)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(source.folder)
    for key, value in SHAPES[shape].items():
        setattr(config, key, value)
    config.head_dim = config.hidden_size // config.num_attention_heads
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(folder)
    load_tokenizer(source).save_pretrained(folder)
    return str(folder)


# ----------------------------------------------------------------------------------------------- data


def make_rows(n: int, seed: int, tokenizer, short: bool = False) -> list[dict]:
    """Chat rows whose prompt and completion lengths follow the benchmark's ranges, from real English text;
    `short`: intent-routing-like rows (a 8-24-token request, a 2-6-token answer; ~46 tokens rendered)."""
    texts = []
    for split in ("train", "eval", "test"):
        for line in (ROOT / "examples/support" / f"{split}.jsonl").read_text().splitlines():
            texts += [m["content"] for m in json.loads(line)["messages"]]
    rng = random.Random(seed)

    def text_of(n_tokens: int) -> str:
        ids: list[int] = []
        while len(ids) < n_tokens:
            ids += tokenizer(" " + rng.choice(texts), add_special_tokens=False).input_ids
        return tokenizer.decode(ids[:n_tokens]).strip()

    return [
        {
            "messages": [
                {"role": "user", "content": text_of(rng.randint(8, 24) if short else rng.randint(20, 200))},
                {"role": "assistant", "content": text_of(rng.randint(2, 6) if short else rng.randint(5, 100))},
            ]
        }
        for _ in range(n)
    ]


def setup(args):
    """Tokenizer, rendered train/eval rows (tunesmith's renderer, so every variant trains the same tokens)."""
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "src"))
    from tunesmith.data.formats import normalise
    from tunesmith.errors import Origin
    from tunesmith.model.load import load_tokenizer, resolve_model
    from tunesmith.render import render

    source = resolve_model(args.model)
    tok = load_tokenizer(source)
    short = args.worker.startswith("tunesmith_short")
    n_train = args.steps * args.batch * (SHORT_ROWS_PER_LONG if short else 1)
    rows = make_rows(n_train + 32, 0, tok, short)
    convs = [normalise(r, Origin("bench", i + 1)) for i, r in enumerate(rows)]
    rendered = [render(c, tok, max_length=MAX_LENGTH) for c in convs]
    return source, tok, rows[:n_train], rendered[:n_train], rendered[n_train:]


def eval_loss(model, eval_rows, pad_id) -> float:
    """Held-out completion loss in fp32, computed the same way for every variant."""
    import torch

    from tunesmith.pack import collate_padded
    from tunesmith.training.loss import mean_loss

    model = model.float()
    with torch.autocast("cpu", enabled=False):
        return mean_loss(model, [collate_padded(eval_rows[i : i + 8], pad_id) for i in range(0, len(eval_rows), 8)])


def lora_model(source, dtype, device):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(source.load_path, dtype=dtype).to(device)
    return get_peft_model(
        model,
        LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"),
    )


# ------------------------------------------------------------------------------------------- variants


def run_naive(args) -> dict:
    """transformers + peft, fp32, batches padded to the longest row, labels through the model, plain loop."""
    import torch

    from tunesmith.pack import collate_padded

    source, tok, _, train_rows, eval_rows = setup(args)
    model = lora_model(source, torch.float32, args.device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)  # the optimizer settings every variant shares
    model.train()
    times, tokens = [], 0
    for i in range(args.steps):
        batch = collate_padded(train_rows[i * args.batch : (i + 1) * args.batch], tok.pad_token_id)
        t = time.perf_counter()
        out = model(**{k: v.to(args.device) for k, v in batch.items()})
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        sync(args.device)
        times.append(time.perf_counter() - t)
        tokens += int(batch["attention_mask"].sum()) if i else 0
    return {"step_s": times, "tokens": tokens, "eval_loss": eval_loss(model, eval_rows, tok.pad_token_id)}


def run_trl(args, packed: bool) -> dict:
    """TRL SFTTrainer + peft with its defaults; packed = its padding-free packing."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    source, tok, rows, _, eval_rows = setup(args)
    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            sync(args.device)
            times.append(time.perf_counter() - self.t)

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(source.load_path, dtype=torch.float32)
    gpu = args.device.startswith("cuda")
    cfg = SFTConfig(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=args.batch,
        max_steps=args.steps,
        learning_rate=LR,
        max_length=MAX_LENGTH,
        packing=packed,
        padding_free=packed,
        logging_steps=1000,
        save_strategy="no",
        report_to=[],
        use_cpu=not gpu,
        dataloader_num_workers=0,
        seed=0,
        data_seed=0,
        lr_scheduler_type="constant",
        warmup_steps=0,
        disable_tqdm=True,
        bf16=gpu,
    )
    # conversational prompt/completion rows: TRL then trains on the completion only, as the others do
    pc = [{"prompt": r["messages"][:1], "completion": r["messages"][1:]} for r in rows]
    trainer = SFTTrainer(
        model=model,
        args=cfg,
        train_dataset=Dataset.from_list(pc),
        processing_class=tok,
        peft_config=LoraConfig(
            r=RANK, lora_alpha=ALPHA, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
        ),
        callbacks=[Timer()],
    )
    counted = 0
    for i, batch in enumerate(trainer.get_train_dataloader()):
        if i >= args.steps:
            break
        mask = batch.get("attention_mask")
        counted += int(mask.sum()) if mask is not None and not packed else int(batch["input_ids"].numel())
        if i == 0:
            counted = 0
    trainer.train()
    return {"step_s": times, "tokens": counted, "eval_loss": eval_loss(trainer.model, eval_rows, tok.pad_token_id)}


def run_tunesmith(args, quantize: str = "none", checkpointing: bool = False) -> dict:
    """tunesmith's own defaults, through the public API (QLoRA: `model.quantize: 4bit`). On short rows
    (`tunesmith_short*`): batches of `--batch` rows, or (`tunesmith_short`) batches of up to `--batch` x 256 tokens,
    what `train.batch_tokens: auto` gives an auto run."""
    import tunesmith
    from tunesmith.model.tuned import load_tuned
    from tunesmith.pack import AUTO_ROW_TOKENS
    from tunesmith.runfolder import read_metrics

    _, tok, rows, _, eval_rows = setup(args)
    tmp = Path(tempfile.mkdtemp())
    with open(tmp / "train.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    result = tunesmith.train(
        {
            "model": {"name": args.model, "device": args.device, "quantize": quantize},
            "data": {"train": str(tmp / "train.jsonl")},
            "lora": {"r": RANK, "alpha": ALPHA, "dropout": 0.05},
            "train": {
                "max_steps": args.steps,
                "batch_size": args.batch,
                "batch_tokens": args.batch * AUTO_ROW_TOKENS if args.worker == "tunesmith_short" else None,
                "lr": LR,
                "max_length": MAX_LENGTH,
                "threads": args.threads,
                "save_every": 10_000,
                "lr_scheduler": "constant",
                "warmup_ratio": 0.0,  # the schedule every variant shares
                "fuse": True,
                "gradient_checkpointing": checkpointing,
            },  # what `auto` does for runs of 100+ steps; this short benchmark has fewer
            "output_dir": str(tmp / "run"),
        },
        show_progress=False,
    )
    metrics = read_metrics(result.run_dir / "metrics.jsonl")
    times = [
        m["tokens"] / m["tokens_per_s"] if i == 0 else (m["tokens"] - metrics[i - 1]["tokens"]) / m["tokens_per_s"]
        for i, m in enumerate(metrics)
    ]
    model, _, _ = load_tuned(result.run_dir, dtype="float32")  # QLoRA too: its adapter on the fp32 base
    return {
        "step_s": times,
        "tokens": metrics[-1]["tokens"] - metrics[0]["tokens"],
        "eval_loss": eval_loss(model, eval_rows, tok.pad_token_id),
    }


def sync(device: str) -> None:
    """Wait for queued GPU work, so a step's wall time is its own."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def worker(args) -> None:
    import torch

    run = {
        "naive": run_naive,
        "trl": lambda a: run_trl(a, False),
        "trl_packed": lambda a: run_trl(a, True),
        "tunesmith": run_tunesmith,
        "tunesmith_qlora": lambda a: run_tunesmith(a, "4bit"),
        "tunesmith_gc": lambda a: run_tunesmith(a, checkpointing=True),
        "tunesmith_short": run_tunesmith,
        "tunesmith_short_rows": run_tunesmith,
    }[args.worker]
    out = run(args)
    sys.path.insert(0, str(ROOT / "src"))
    from tunesmith.hardware import peak_rss_mb  # after the run: the baseline workers never import tunesmith

    out["peak_rss_mb"] = peak_rss_mb()
    if args.device.startswith("cuda"):
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20  # eval loss (fp32, no grad) included
    steady = out["step_s"][1:]  # the first step (allocation, compilation) is not throughput
    out["tokens_per_s"] = out["tokens"] / sum(steady)
    out["step_s_median"] = statistics.median(steady)
    out["tokens_per_step"] = out["tokens"] / len(steady)
    Path(args.out).write_text(json.dumps(out))


# --------------------------------------------------------------------------------------------- driver


def matmul_peak(threads: int, device: str = "cpu") -> dict:
    """Best bf16 and fp32 torch.mm throughput on this device, in TFLOP/s (the ceiling for the fraction). bf16 is
    measured only where the hardware runs it fast: without AVX-512 BF16 or AMX it is a slow fallback path
    (10+ minutes for these matmuls on an AVX2-only CPU) that tunesmith does not train in."""
    import torch

    sys.path.insert(0, str(ROOT / "src"))
    from tunesmith.hardware import fast_bf16

    torch.set_num_threads(threads)
    n = 2048 if device == "cpu" else 8192
    out = {}
    dtypes = (("bf16", torch.bfloat16),) if fast_bf16(device) else ()
    for name, dtype in (*dtypes, ("fp32", torch.float32)):
        a, b = (torch.randn(n, n, dtype=dtype, device=device) for _ in range(2))
        best = 0.0
        for _ in range(5):
            sync(device)
            t = time.perf_counter()
            for _ in range(4):
                torch.mm(a, b)
            sync(device)
            best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t) / 1e12)
        out[name] = best
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=6, help="optimizer steps per variant (the first is warm-up)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2, help="interleaved repetitions of every variant")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="of: " + ", ".join(VARIANTS + ["tunesmith_qlora", "tunesmith_gc"] + SHORT),
    )
    p.add_argument("--device", default="cpu", help="cpu, or cuda / cuda:N: every variant trains there")
    p.add_argument("--shape", default="smollm2-135m", choices=list(SHAPES))
    p.add_argument("--model", help=argparse.SUPPRESS)  # the workers' model folder, made by the driver
    p.add_argument("--json", help="write the results here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    variants = args.variants.split(",")
    args.model = make_shape(args.shape, Path(tempfile.mkdtemp()) / args.shape)
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    peaks = []
    for r in range(args.rounds):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
        for v in order:
            out = Path(tempfile.mkstemp(suffix=".json")[1])
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                v,
                "--out",
                str(out),
                "--steps",
                str(args.steps),
                "--batch",
                str(args.batch),
                "--threads",
                str(args.threads),
                "--device",
                args.device,
                "--model",
                args.model,
            ]
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false")
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"variant {v} failed:\n{done.stderr[-3000:]}")
            runs[v].append(json.loads(out.read_text()))
            print(f"round {r + 1} {v:20s} {runs[v][-1]['tokens_per_s']:8.1f} tok/s", file=sys.stderr)
        peaks.append(matmul_peak(args.threads, args.device))

    res = {
        v: {
            "tokens_per_s": statistics.median(x["tokens_per_s"] for x in rs),
            "step_s": statistics.median(x["step_s_median"] for x in rs),
            "tokens_per_step": statistics.median(x["tokens_per_step"] for x in rs),
            "peak_rss_mb": max(x["peak_rss_mb"] for x in rs),
            "eval_loss": statistics.median(x["eval_loss"] for x in rs),
            **({"peak_gpu_mb": max(x["peak_gpu_mb"] for x in rs)} if "peak_gpu_mb" in rs[0] else {}),
        }
        for v, rs in runs.items()
    }
    peak = {k: max(p[k] for p in peaks) for k in peaks[0]}
    n_params = model_parameters(args.model)  # LoRA, frozen weights: ~4 N FLOPs a token (fwd 2N + input grads 2N)
    summary = {
        "variants": res,
        "matmul_peak_tflops": peak,
        "steps": args.steps,
        "batch": args.batch,
        "threads": args.threads,
        "rounds": args.rounds,
        "device": device_name(args.device),
        "shape": args.shape,
        "parameters": n_params,
    }
    if "tunesmith" in res:
        ts = res["tunesmith"]
        trained_in = "bf16" if "bf16" in peak else "fp32"  # what `model.dtype: auto` chose on this machine
        summary["peak_fraction"] = 4 * n_params * ts["tokens_per_s"] / (peak[trained_in] * 1e12)
        if "naive" in res:
            summary["speedup_vs_naive"] = ts["tokens_per_s"] / res["naive"]["tokens_per_s"]
            summary["rss_ratio_vs_naive"] = ts["peak_rss_mb"] / res["naive"]["peak_rss_mb"]
            if "peak_gpu_mb" in ts:
                summary["gpu_memory_ratio_vs_naive"] = ts["peak_gpu_mb"] / res["naive"]["peak_gpu_mb"]
            summary["eval_loss_gap_vs_naive"] = ts["eval_loss"] / res["naive"]["eval_loss"] - 1
        for v in SHORT:  # item 5 of issue 13: short rows at >= 80% of the long rows' tokens/s
            if v in res:
                summary[f"{v}_vs_long"] = res[v]["tokens_per_s"] / ts["tokens_per_s"]
        trl = [res[v]["tokens_per_s"] for v in ("trl", "trl_packed") if v in res]
        if trl:
            summary["speedup_vs_trl"] = ts["tokens_per_s"] / max(trl)
    base = res.get("naive", next(iter(res.values())))
    print(
        f"\n{'variant':20s} {'tokens/s':>9s} {'tok/step':>9s} {'step s':>7s} {'peak RSS MB':>12s} {'eval loss':>10s} "
        f"{'speed x naive':>14s} {'RSS x naive':>12s}"
    )
    for v, r in res.items():
        print(
            f"{v:20s} {r['tokens_per_s']:9.1f} {r['tokens_per_step']:9.0f} {r['step_s']:7.2f} "
            f"{r['peak_rss_mb']:12.0f} {r['eval_loss']:10.4f} "
            f"{r['tokens_per_s'] / base['tokens_per_s']:14.2f} {r['peak_rss_mb'] / base['peak_rss_mb']:12.2f}"
        )
    print(
        "\nmatmul peak: "
        + ", ".join(f"{k} {v:.2f} TFLOP/s" for k, v in peak.items())
        + "; "
        + "  ".join(f"{k} {v:.3f}" for k, v in summary.items() if isinstance(v, float))
    )
    if any("peak_gpu_mb" in r for r in res.values()):
        print("peak GPU MB: " + ", ".join(f"{v} {r['peak_gpu_mb']:.0f}" for v, r in res.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


def model_parameters(folder: str) -> int:
    """Parameters of the benchmarked model, counted without loading its weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    return sum(p.numel() for p in model.parameters())


def device_name(device: str) -> str:
    import platform

    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


if __name__ == "__main__":
    main()
