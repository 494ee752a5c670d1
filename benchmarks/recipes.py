"""Does an automatic recipe beat fixed defaults? Four ways to fine-tune the bundled model, on real label data,
scored the same way on a test split that no arm chooses by.

    (a) defaults  train.lr=2e-4, train.lr_scheduler=cosine, train.epochs=3, batch 8 (tunesmith before `auto`)
    (b) auto      train.budget=10m alone: lr and epochs `auto` (a search on the selection split, in the budget)
    (c) oracle    lr in {3e-4, 1e-3, 3e-3}, constant after warm-up, 3 epochs; the selection metric after every
                  epoch (9 points); the best of the 9 on the selection split is scored on test; its time is
                  the sum of the three runs' training time
    (d) TRL       SFTTrainer with its defaults + PEFT LoRA r16 all-linear (tunesmith's default adapter), 3 epochs

Data: CLINC150 (../shared/data/clinc150, 150 intents): 10 rows an intent of train.jsonl to train on, 5 of
val.jsonl to choose on, 10 of test.jsonl to report on, drawn stratified with a fixed seed; and
examples/support (6 categories; the label is the `category:` line): train / eval (choose) / test (report).
Every arm is scored by one call, `tunesmith.evaluate.evaluate_run` on its run folder (TRL's adapter is saved
as one): test accuracy of greedy answers held to the label set (`--score generate`, tunesmith's default on a
label task) or of the label set ranked by log-likelihood (`--score rank`: exact, but it runs every label, about
30x slower with CLINC150's 150), always a valid label, with a 95% bootstrap interval. The oracle's points are the
selection metric an auto run chooses by (`evaluate.selection.make_selector`: the accuracy of label-constrained
greedy answers) on the selection split. Every arm runs in its own process.

    pip install -e '.[bench]'   # TRL and datasets, for arm (d)
    python benchmarks/recipes.py --json benchmarks/recipes-cpu-2core.json
    python benchmarks/recipes.py --quick                      # clinc150: 20 intents, 1 epoch, a 5m budget
    python benchmarks/recipes.py --datasets support --arms a,b --work /tmp/recipes   # finished arms are kept

With `--work DIR` a finished arm (its result.json, same settings) is reused when the command is run again; an
unfinished one starts over from scratch (its training time must be one uninterrupted measurement).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLINC = ROOT.parent / "shared" / "data" / "clinc150"
SUPPORT = ROOT / "examples" / "support"
MODEL = "smollm2-135m"
ARMS = {"a": "defaults", "b": "auto (budget)", "c": "oracle", "d": "TRL SFTTrainer"}
DATASETS = ("clinc150", "support")
DEFAULTS = {"lr": 2e-4, "lr_scheduler": "cosine", "batch_size": 8}  # (a); epochs from --epochs
ORACLE_LRS = (3e-4, 1e-3, 3e-3)
RANK, ALPHA, DROPOUT = 16, 32, 0.05  # tunesmith's default LoRA (all linear layers), for TRL too
SUPPORT_REGEX = r"category:\s*(\w+)"
SEED = 0
ANSWER_TOKENS = 24  # generated answer tokens: the longest label (after `category: `) fits with room to spare


# ----------------------------------------------------------------------------------------------- data


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def chat(text: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]}


def stratified(rows: list[dict], labels: list[str], per_label: int, rng: random.Random) -> list[dict]:
    """`per_label` rows of each label, drawn with `rng`, in a shuffled order."""
    by_label: dict[str, list[dict]] = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r)
    out: list[dict] = []
    for label in labels:
        pool = by_label.get(label, [])
        if len(pool) < per_label:
            sys.exit(f"clinc150: intent {label!r} has {len(pool)} rows, fewer than {per_label}")
        out += rng.sample(pool, per_label)
    rng.shuffle(out)
    return out


def make_clinc(folder: Path, intents: int, per_intent: tuple[int, int, int]) -> dict:
    """Chat JSONL files of a stratified, seeded sample of CLINC150 (in-scope intents only)."""
    rng = random.Random(SEED)
    train = read_jsonl(CLINC / "train.jsonl")
    labels = sorted({r["label"] for r in train})
    if intents < len(labels):
        labels = sorted(rng.sample(labels, intents))
    files = {}
    for split, source, n in zip(("train", "select", "test"), ("train", "val", "test"), per_intent):
        rows = train if source == "train" else read_jsonl(CLINC / f"{source}.jsonl")
        picked = stratified(rows, labels, n, rng)
        files[split] = write_jsonl(folder / f"{split}.jsonl", [chat(r["text"], r["label"]) for r in picked])
    return {**files, "answer_regex": None, "labels": len(labels)}


def make_support(folder: Path) -> dict:
    """examples/support as it is (chat rows whose answer starts with `category: <label>`)."""
    files = {}
    for split, source in (("train", "train"), ("select", "eval"), ("test", "test")):
        files[split] = write_jsonl(folder / f"{split}.jsonl", read_jsonl(SUPPORT / f"{source}.jsonl"))
    return {**files, "answer_regex": SUPPORT_REGEX, "labels": 6}


def make_data(dataset: str, folder: Path, args) -> dict:
    data = make_clinc(folder, args.intents, args.rows) if dataset == "clinc150" else make_support(folder)
    data["rows"] = {split: len(read_jsonl(Path(data[split]))) for split in ("train", "select", "test")}
    (folder / "data.json").write_text(json.dumps(data, indent=2))
    return data


# -------------------------------------------------------------------------------------------- scoring


def score_test(run_dir: Path, data: dict, method: str) -> dict:
    """Test accuracy of a run folder with a 95% bootstrap interval: greedy answers held to the label set
    (`generate`, tunesmith's default on a label task) or the label set ranked by log-likelihood (`rank`);
    both always answer a valid label."""
    from tunesmith.evaluate import evaluate_run

    started = time.perf_counter()
    s = evaluate_run(
        run_dir,
        data=data["test"],
        out_dir=run_dir / "test",
        method=method,
        max_samples=None,
        max_new_tokens=ANSWER_TOKENS,
        include_base=False,
        few_shot=0,
        answer_regex=data["answer_regex"],
        free_text=False,
    )
    if s["task"]["kind"] != "label" or (method == "generate" and not s["label_constrained"]):
        raise SystemExit(f"{data['test']}: not scored as a label task ({s['task']['kind']})")
    acc = s["systems"]["tuned"]["metrics"]["accuracy"]
    return {
        "accuracy": acc["value"],
        "ci": acc["ci"],
        "examples": s["examples"],
        "method": method,
        "seconds": time.perf_counter() - started,
    }


def score_selection(run_dir: Path, data: dict) -> dict:
    """The selection metric an auto run chooses by, on the selection split (accuracy of label-constrained
    greedy answers; held-out loss where the split is too small to tell settings apart by accuracy)."""
    from tunesmith.data import load_conversations
    from tunesmith.evaluate.selection import make_selector
    from tunesmith.model.tuned import load_tuned
    from tunesmith.render import render_all

    model, tok, config = load_tuned(run_dir)
    convs = load_conversations(data["select"])
    rows, _ = render_all(convs, tok, max_length=config.train.max_length, system_prompt=config.data.system_prompt)
    selector = make_selector(
        convs,
        rows,
        load_conversations(data["train"]),
        tok,
        system_prompt=config.data.system_prompt,
        answer_regex=data["answer_regex"],
        batch_size=config.eval.batch_size,
    )
    return {"metric": selector.metric, "higher_is_better": selector.higher_is_better, "value": selector(model)}


# ----------------------------------------------------------------------------------------------- arms


def tunesmith_config(data: dict, args, out: Path, **train) -> dict:
    """The config every tunesmith arm shares: its own data, no base-model evaluation (the benchmark scores
    test itself), the arm's training settings."""
    if args.max_steps:
        train.setdefault("max_steps", args.max_steps)
    return {
        "model": {"name": MODEL, "device": args.device},
        "data": {"train": data["train"]},
        "train": {"threads": args.threads, **train},
        "eval": {"enabled": False, "report": False, "answer_regex": data["answer_regex"]},
        "output_dir": str(out),
    }


def figures(summary: dict) -> dict:
    return {k: summary.get(k) for k in ("steps", "epochs", "tokens", "tokens_per_s", "train_seconds", "peak_rss_mb")}


def arm_defaults(data: dict, args, folder: Path) -> dict:
    import tunesmith

    cfg = tunesmith_config(data, args, folder / "run", **DEFAULTS, epochs=args.epochs)
    result = tunesmith.train(cfg, show_progress=False)
    s = result.summary
    return {
        **figures(s),
        "seconds": s["train_seconds"],
        "choice": f"lr 2e-4 cosine, {s['epochs']:.1f} epochs",
        "test": score_test(result.run_dir, data, args.score),
    }


def curve_throughput(curves: list[list[dict]]) -> tuple[int, float]:
    """Tokens and seconds of training steps logged as `metrics.jsonl` records (cumulative tokens, tokens/s)."""
    tokens, seconds = 0, 0.0
    for curve in curves:
        before = 0
        for rec in curve:
            step, before = rec["tokens"] - before, rec["tokens"]
            tokens, seconds = tokens + step, seconds + step / rec["tokens_per_s"]
    return tokens, seconds


def auto_settings(args) -> dict:
    """`--auto-set train.KEY=VALUE ...` for arm (b) (an A/B of one auto setting), values read as YAML."""
    import yaml

    out = {}
    for item in args.auto_set or []:
        key, _, value = item.partition("=")
        out[key.removeprefix("train.")] = yaml.safe_load(value)
    return out


def arm_auto(data: dict, args, folder: Path) -> dict:
    import tunesmith

    cfg = tunesmith_config(data, args, folder / "run", budget=args.budget, **auto_settings(args))
    cfg["data"]["select"] = data["select"]
    result = tunesmith.train(cfg, show_progress=False)
    s = result.summary
    search = s.get("search") or {}
    record = (
        json.loads((result.run_dir / "search.json").read_text()) if (result.run_dir / "search.json").is_file() else {}
    )
    from tunesmith.runfolder import read_metrics

    pruned = [t["curve"] for t in record.get("trials", []) if t["status"] != "chosen"]
    tokens, step_seconds = curve_throughput([*pruned, read_metrics(result.run_dir / "metrics.jsonl")])
    steps_per_epoch = s["steps"] / s["epochs"] if s.get("epochs") else None  # rows or tokens a batch: as run
    best = search.get("best_step")
    choice = f"lr {search.get('lr', 0):.0e}, best step {best}" + (
        f" ({best / steps_per_epoch:.1f} epochs)" if best and steps_per_epoch else ""
    )
    return {
        **figures(s),
        "seconds": search.get("seconds", s["train_seconds"]),  # the budget's clock: search + final + selection
        "tokens": tokens,  # every trial's and the final run's training steps
        "tokens_per_s": tokens / step_seconds if step_seconds else None,
        "search": search,
        "trials": [{"lr": t["lr"], "status": t["status"], "evals": t["evals"]} for t in record.get("trials", [])],
        "choice": choice,
        "test": score_test(result.run_dir, data, args.score),
    }


def snapshot(run_dir: Path, dest: Path) -> Path:
    """What scoring a run needs (config, adapter, label set) copied aside, so the run can train on."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name in ("config.yaml", "labels.json"):
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, dest / name)
    shutil.copytree(run_dir / "adapter", dest / "adapter")
    return dest


def arm_oracle(data: dict, args, folder: Path) -> dict:
    """Each rate trained epoch by epoch (re-run into its folder with train.epochs raised: a resumable change),
    the selection metric after each epoch; the best point on the selection split is scored on test. The warm-up
    is that of the first epoch's run (5% of its steps): the later runs resume past it, at the constant rate."""
    import tunesmith

    points, seconds, tokens = [], 0.0, 0
    for lr in ORACLE_LRS:
        run, done = folder / f"lr-{lr:g}", 0
        for k in range(1, args.epochs + 1):
            length = {"max_steps": k * args.max_steps} if args.max_steps else {"epochs": k}
            cfg = tunesmith_config(data, args, run, lr=lr, lr_scheduler="constant", batch_size=8, **length)
            s = tunesmith.train(cfg, show_progress=False).summary
            seconds += s["train_seconds"]
            tokens, done = tokens + s["tokens"] - done, s["tokens"]
            snap = snapshot(run, folder / "points" / f"lr-{lr:g}-epoch-{k}")
            points.append({"lr": lr, "epoch": k, "steps": s["steps"], "dir": str(snap), **score_selection(snap, data)})
            print(f"  oracle lr {lr:g} epoch {k}: {points[-1]['metric']} {points[-1]['value']:.4f}", file=sys.stderr)
    sign = 1 if points[0]["higher_is_better"] else -1
    best = max(points, key=lambda p: sign * p["value"])  # ties: the first (lower rate, fewer epochs)
    return {
        "seconds": seconds,
        "tokens": tokens,
        "tokens_per_s": tokens / seconds if seconds else None,
        "points": points,
        "best": {k: best[k] for k in ("lr", "epoch", "steps", "metric", "value")},
        "choice": f"lr {best['lr']:g}, epoch {best['epoch']}",
        "test": score_test(Path(best["dir"]), data, args.score),
    }


def arm_trl(data: dict, args, folder: Path) -> dict:
    """TRL SFTTrainer with its defaults (lr 2e-5 linear, batch 8, gradient checkpointing, ...) and tunesmith's
    default LoRA. bf16 is TRL's default only where the hardware runs it fast (elsewhere the Trainer's CPU autocast
    emulates it, many times slower). The adapter is saved as a tunesmith run folder and scored like the others."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from tunesmith.config import dump_config, load_config
    from tunesmith.hardware import fast_bf16
    from tunesmith.model.load import load_tokenizer, resolve_model

    source = resolve_model(MODEL)
    tok = load_tokenizer(source)
    rows = read_jsonl(Path(data["train"]))
    pc = [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows]  # completion-only loss
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_pretrained(source.load_path, dtype=torch.float32)
    gpu = args.device.startswith("cuda")
    cfg = SFTConfig(
        output_dir=str(folder / "trl"),
        num_train_epochs=args.epochs,
        max_steps=args.max_steps or -1,
        use_cpu=not gpu,
        bf16=fast_bf16(args.device),
        save_strategy="no",  # the adapter is saved once, at the end
        report_to=[],
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=model,
        args=cfg,
        train_dataset=Dataset.from_list(pc),
        processing_class=tok,
        peft_config=LoraConfig(
            r=RANK, lora_alpha=ALPHA, lora_dropout=DROPOUT, target_modules="all-linear", task_type="CAUSAL_LM"
        ),
    )
    out = trainer.train()
    steps = out.global_step
    logged = [r["num_tokens"] for r in trainer.state.log_history if "num_tokens" in r]
    tokens = int(float(logged[-1])) if logged else 0  # TRL's own count: non-padding tokens of the batches trained on
    run = folder / "run"
    trainer.save_model(str(run / "adapter"))  # the PEFT adapter and the tokenizer
    scored = tunesmith_config(data, args, run)  # the run folder a tunesmith run would leave, for scoring
    (run / "config.yaml").write_text(dump_config(load_config(scored)))
    seconds = out.metrics["train_runtime"]
    schedule = getattr(cfg.lr_scheduler_type, "value", cfg.lr_scheduler_type)
    return {
        "steps": steps,
        "epochs": trainer.state.epoch,
        "tokens": tokens,
        "tokens_per_s": tokens / seconds,
        "seconds": seconds,
        "choice": f"lr {cfg.learning_rate:g} {schedule}, {trainer.state.epoch:.1f} epochs, bf16 {cfg.bf16}",
        "test": score_test(run, data, args.score),
    }


WORKERS = {"a": arm_defaults, "b": arm_auto, "c": arm_oracle, "d": arm_trl}


def worker(args) -> None:
    import torch

    sys.path.insert(0, str(ROOT / "src"))
    from tunesmith.hardware import peak_rss_mb

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    folder = Path(args.folder)
    data = json.loads((folder.parent / "data" / "data.json").read_text())
    started = time.perf_counter()
    out = WORKERS[args.worker](data, args, folder)
    out["wall_seconds"] = time.perf_counter() - started
    out["peak_rss_mb"] = peak_rss_mb()
    Path(args.out).write_text(json.dumps(out, indent=2))


# --------------------------------------------------------------------------------------------- driver


def run_arm(arm: str, folder: Path, args, settings: dict) -> dict:
    """The arm in a fresh process (its own memory and torch threads); a finished one with the same settings
    is reused."""
    result = folder / "result.json"
    if result.is_file():
        done = json.loads(result.read_text())
        if done.get("settings") == settings:
            print(f"{folder.parent.name} ({arm}) {ARMS[arm]}: reused {result}", file=sys.stderr)
            return done
    shutil.rmtree(folder, ignore_errors=True)  # a half-done arm starts over: its time is one measurement
    folder.mkdir(parents=True)
    cmd = [sys.executable, __file__, "--worker", arm, "--folder", str(folder), "--out", str(folder / "out.json")]
    cmd += ["--threads", str(args.threads), "--device", args.device, "--epochs", str(args.epochs)]
    cmd += ["--budget", args.budget, "--score", args.score] + (
        ["--max-steps", str(args.max_steps)] if args.max_steps else []
    )
    cmd += ["--auto-set", *args.auto_set] if args.auto_set else []
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false")
    started = time.perf_counter()
    with open(folder / "log.txt", "w") as log:
        done_proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    if done_proc.returncode:
        tail = (folder / "log.txt").read_text()[-3000:]
        sys.exit(f"arm {arm} on {folder.parent.name} failed (log: {folder / 'log.txt'}):\n{tail}")
    out = {**json.loads((folder / "out.json").read_text()), "settings": settings}
    result.write_text(json.dumps(out, indent=2))
    t = out["test"]
    print(
        f"{folder.parent.name} ({arm}) {ARMS[arm]}: test {100 * t['accuracy']:.1f}%, {out['seconds']:.0f} s training, "
        f"{time.perf_counter() - started:.0f} s in all",
        file=sys.stderr,
    )
    return out


TARGETS = (
    "(b) within 1 point of (c) at <= 1/3 of (c)'s time",
    "(b) >= 10 points above (a) wherever (c) is >= 10 points above (a)",
    "(b) above (d) in accuracy and time",
)


def targets(results: dict[str, dict]) -> list[dict]:
    """The issue's targets, checked per dataset where the arms they compare ran (met: None = not applicable)."""
    rows = []
    for ds, r in results.items():
        acc = {arm: x["test"]["accuracy"] for arm, x in r.items()}
        sec = {arm: x["seconds"] for arm, x in r.items()}

        def pt(x: str, y: str) -> str:
            return f"{x}-{y} {100 * (acc[x] - acc[y]):+.1f} pt"

        if {"b", "c"} <= r.keys():
            met = acc["b"] >= acc["c"] - 0.01 and sec["b"] <= sec["c"] / 3
            rows.append((TARGETS[0], ds, f"{pt('b', 'c')}, time b/c {sec['b'] / sec['c']:.2f}", met))
        if {"a", "b", "c"} <= r.keys():
            met = acc["b"] - acc["a"] >= 0.10 if acc["c"] - acc["a"] >= 0.10 else None
            rows.append((TARGETS[1], ds, f"{pt('c', 'a')}, {pt('b', 'a')}", met))
        if {"b", "d"} <= r.keys():
            met = acc["b"] > acc["d"] and sec["b"] < sec["d"]
            rows.append((TARGETS[2], ds, f"{pt('b', 'd')}, time b/d {sec['b'] / sec['d']:.2f}", met))
    return [dict(zip(("target", "dataset", "value", "met"), row)) for row in rows]


def print_tables(results: dict[str, dict], checked: list[dict]) -> None:
    print("\n| dataset | arm | test accuracy (95% CI) | training s | tokens/s | chosen |")
    print("|---|---|---|---:|---:|---|")
    for ds, r in results.items():
        for arm, x in r.items():
            t = x["test"]
            acc = f"{100 * t['accuracy']:.1f}% [{100 * t['ci'][0]:.1f}, {100 * t['ci'][1]:.1f}]"
            tps = f"{x['tokens_per_s']:.0f}" if x.get("tokens_per_s") else "-"
            print(f"| {ds} | ({arm}) {ARMS[arm]} | {acc} | {x['seconds']:.0f} | {tps} | {x.get('choice', '')} |")
    if checked:
        print("\n| target | dataset | measured | met |\n|---|---|---|---|")
        for c in checked:
            met = {True: "yes", False: "no", None: "n/a ((c) is not 10 points above (a))"}[c["met"]]
            print(f"| {c['target']} | {c['dataset']} | {c['value']} | {met} |")


def device_name(device: str) -> str:
    import platform

    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def parse_args(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", help="of: " + ", ".join(DATASETS) + " (default: both; --quick: clinc150)")
    p.add_argument("--arms", default=",".join(ARMS), help="of: " + ", ".join(f"{k} ({v})" for k, v in ARMS.items()))
    p.add_argument("--quick", action="store_true", help="for iteration: clinc150, 20 intents, 1 epoch, a 5m budget")
    p.add_argument("--threads", type=int, help="torch threads of every arm (default: all cores; --smoke 1)")
    p.add_argument("--device", default="cpu", help="cpu, or cuda / cuda:N: every arm trains and scores there")
    p.add_argument("--work", help="folder for data, runs and results (default: a new temporary folder)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--epochs", type=int, help="epochs of (a), (c) and (d) (default 3; --quick 1; --smoke 2)")
    p.add_argument("--budget", help="train.budget of (b) (default 10m; --quick 3m)")
    p.add_argument("--intents", type=int, help="CLINC150 intents sampled (default 150; --quick 20)")
    p.add_argument("--rows", default="10,5,10", help="CLINC150 rows per intent: train,select,test (default 10,5,10)")
    p.add_argument(
        "--score",
        default="generate",
        choices=["generate", "rank"],
        help="test scoring: greedy answers held to the label set (default), or the label set ranked by "
        "log-likelihood (exact, but it scores every label: 30x slower with CLINC150's 150)",
    )
    p.add_argument("--max-steps", type=int, help="cap every run at this many steps (smoke tests only)")
    p.add_argument("--auto-set", nargs="*", help="train settings of (b) only, e.g. batch_tokens=null (an A/B)")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="the plumbing in minutes: clinc150, 3 intents (8/7/4 rows), 2 steps a run, 1 thread, a 150s budget",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke:
        args.intents, args.rows, args.max_steps = 3, "8,7,4", args.max_steps or 2
        args.datasets, args.budget = args.datasets or "clinc150", args.budget or "150s"
    args.datasets = args.datasets or ("clinc150" if args.quick else ",".join(DATASETS))
    args.threads = args.threads or (1 if args.smoke else len(os.sched_getaffinity(0)))
    args.epochs = args.epochs or (1 if args.quick else 2 if args.smoke else 3)
    args.budget = args.budget or ("5m" if args.quick else "10m")  # 3m: below the shortest search on 2 AVX2 cores
    args.intents = args.intents or (20 if args.quick else 150)
    if not args.worker:
        args.rows = tuple(int(n) for n in args.rows.split(","))
        if len(args.rows) != 3:
            p.error("--rows takes three numbers: train,select,test rows per intent")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    datasets, arms = args.datasets.split(","), args.arms.split(",")
    for name, given, known in (("dataset", datasets, DATASETS), ("arm", arms, ARMS)):
        if unknown := [x for x in given if x not in known]:
            sys.exit(f"unknown {name} {unknown[0]!r} (known: {', '.join(known)})")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="recipes-"))
    print(f"work folder: {work}", file=sys.stderr)
    started = time.perf_counter()
    results: dict[str, dict] = {}
    for ds in datasets:
        data = make_data(ds, work / ds / "data", args)
        settings = {
            "data": {k: data[k] for k in ("rows", "labels")},
            "intents": args.intents if ds == "clinc150" else None,
            "epochs": args.epochs,
            "budget": args.budget,
            "max_steps": args.max_steps,
            "score": args.score,
            "device": args.device,
            "threads": args.threads,
            "auto_set": args.auto_set,
        }
        results[ds] = {arm: run_arm(arm, work / ds / arm, args, settings) for arm in arms}
    checked = targets(results)
    print_tables(results, checked)
    summary = {
        "arms": {k: ARMS[k] for k in arms},
        "epochs": args.epochs,
        "budget": args.budget,
        "intents": args.intents,
        "threads": args.threads,
        "device": device_name(args.device),
        "quick": args.quick,
        "smoke": args.smoke,
        "max_steps": args.max_steps,
        "score": args.score,
        "seconds": time.perf_counter() - started,
        "results": results,
        "targets": checked,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
