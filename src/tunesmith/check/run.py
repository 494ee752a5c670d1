"""`tunesmith check`: every check training applies, and more, without training.

Reading order is execution order: format problems of each file, then the tokenizer and max_length, then
each good record rendered exactly as training renders it, the contract checks, analytics, PII, the
masked-token samples, and the estimate (a short calibration run, skipped when there are errors).
"""

from __future__ import annotations

import logging

from tunesmith.check import analytics, contract, facts, pii, view
from tunesmith.check.contract import Row
from tunesmith.check.findings import Finding, Report
from tunesmith.config import Config
from tunesmith.data import train_and_eval
from tunesmith.errors import DataError
from tunesmith.model.load import load_tokenizer, resolve_model
from tunesmith.render import check_max_length, render
from tunesmith.training import estimate as estimating

log = logging.getLogger("tunesmith")
UNLIMITED = 10**9


def run_check(
    config: Config,
    *,
    samples: int = 2,
    limit: int = 50,
    calibrate: bool = True,
    price_per_hour: float | None = None,
    redact: bool = True,
) -> Report:
    """Check a run's data, tokenizer and config; return the report (nothing is written). PII and secrets in the
    masked-token samples are redacted unless `redact` is False."""
    d, t = config.data, config.train
    files = {"train": d.train} | ({"eval": d.eval} if d.eval else {})
    report = Report(model=config.model.name, files=files, max_length=t.max_length)

    # 1. format: every bad record of every file
    for split, path in files.items():
        found, total = contract.format_findings(path, d.columns, limit)
        report.findings += found
        if total > len(found):
            report.truncated_findings["format"] = report.truncated_findings.get("format", 0) + total - len(found)
        report.counts[split] = {"bad": total}
    train, held_out = train_and_eval(d, t.seed, contract.load_good, strict=False)
    good = {"train": train} | ({"eval": held_out} if held_out is not None else {})
    split_off = len(held_out) if held_out is not None and d.eval is None else 0  # eval_fraction: part of train
    for split in files:
        n, bad = len(good[split]) + (split_off if split == "train" else 0), report.counts[split]["bad"]
        report.counts[split] = {"records": n + bad, "good": n, "bad": bad}

    # 2. tokenizer and max_length (a config error: raised, as training raises it)
    source = resolve_model(config.model.name)
    tokenizer = load_tokenizer(source, trust_remote_code=config.model.trust_remote_code, template=config.data.template)
    check_max_length(tokenizer, t.max_length, d.system_prompt)

    # 3. render every good record exactly as training does (once, untruncated; truncation derived)
    rows: list[Row] = []
    for split, convs in good.items():
        for conv in convs:
            try:
                full = render(
                    conv,
                    tokenizer,
                    max_length=UNLIMITED,
                    system_prompt=d.system_prompt,
                    train_on_prompt=d.train_on_prompt,
                )
            except DataError as err:
                report.findings.append(Finding("error", "render", err.reason, origin=str(conv.origin), field=err.field))
                continue
            rows.append(Row(conv, full, contract.truncate(full, t.max_length), split))

    # 4. the training contract
    found, stats, left_out = contract.contract_findings(
        rows, tokenizer, max_length=t.max_length, system_prompt=d.system_prompt, train_path=d.train
    )
    report.findings += found
    report.contract = stats
    for k, v in left_out.items():
        report.truncated_findings[k] = report.truncated_findings.get(k, 0) + v
    kept = [r.row for r in rows if r.split == "train" and r.kept]
    if good["train"] and not kept and not report.of("error"):
        report.findings.append(
            Finding(
                "error",
                "no_trained_tokens",
                f"no training row keeps a trained token within max_length={t.max_length}",
                origin=d.train,
            )
        )

    # 5. analytics, PII and fact injection
    report.lengths = analytics.lengths(rows, t.max_length)
    dup_findings, exact_pairs, prompt_pairs = analytics.duplicates(rows)
    report.findings += dup_findings
    report.findings += analytics.near_duplicates(rows, exact_pairs | prompt_pairs)
    report.findings += analytics.leakage(rows)
    report.label_balance, balance = analytics.label_balance(rows, config.eval.answer_regex, d.train)
    report.findings += balance
    report.findings += pii.pii_findings(r.conv for r in rows)
    report.findings += facts.fact_injection(rows)

    # 6. masked-token samples
    train_rows = [r.row for r in rows if r.split == "train"]
    chosen = view.choose(len(train_rows), samples)
    report.samples = [view.sample(tokenizer, train_rows[i], redact=redact) for i in chosen]

    # 7. the estimate: counts always; time and memory from a calibration run when the data is sound
    run_calibration = calibrate and not report.of("error") and bool(kept)
    report.estimate = estimating.estimate(
        config, kept, tokenizer, source, calibrate_run=run_calibration, price_per_hour=price_per_hour
    )
    report.estimate["calibrated"] = run_calibration
    report.counts["rows"] = {
        "train": sum(r.split == "train" for r in rows),
        "eval": sum(r.split == "eval" for r in rows),
        "train_kept": len(kept),
    }
    order = {"error": 0, "warning": 1, "info": 2}
    report.findings.sort(key=lambda f: order[f.severity])  # stable: file order within a severity
    return report
