"""Export a run to where people run models: a merged HF folder, a PEFT adapter folder, or a GGUF file.

Every artifact is checked by the program that will read it before it is kept: the merge against the adapter
(fp32 logits), the HF folder by transformers, the PEFT folder by peft, the GGUF file by llama.cpp. The output
folder is written through a temporary folder and renamed only after its check passed: on any failure nothing
is written. `export.json` in the folder records what was checked and the figures measured.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tunesmith.errors import ExportError
from tunesmith.export.formats import FORMATS, checked_quant
from tunesmith.runfolder import RUN_PARTS, atomic_folder

log = logging.getLogger("tunesmith")

__all__ = ["FORMATS", "ExportError", "export"]


def export(
    run_dir: str | Path,
    fmt: str,
    out: str | Path,
    *,
    quant: str | None = None,
    merge: bool = False,
    verify: bool = True,
    max_shard_size: str = "2GB",
) -> dict:
    """Export `run_dir` as `fmt` into the folder `out`; return the report also written to `out/export.json`.

    `hf` and `gguf` always merge a LoRA/DoRA adapter into the base weights (`merge` only states it); `peft`
    keeps the adapter separate. `quant`: hf f32|bf16|f16 (saved dtype), gguf f32|f16|q8_0.
    """
    from tunesmith.export.checks import greedy, load_run_fp32, make_probes

    run_dir, out = Path(run_dir), Path(out)
    quant = checked_quant(fmt, quant, merge)
    _check_out(out, run_dir)

    run = load_run_fp32(run_dir)
    probes = make_probes(run.config, run.tokenizer)
    report: dict = {
        "run": str(run_dir),
        "format": fmt,
        "quant": quant,
        "method": run.config.method,
        "base_model": run.config.model.name,
        "probes": len(probes.sequences),
        "verified": verify,
    }
    if fmt == "peft":
        return _export_peft(run, probes, out, report, verify)
    from tunesmith.export.merge import merge_verified

    if fmt == "gguf":
        from tunesmith.export.gguf_llama import llama_hparams

        llama_hparams(run.model.config)  # refuse an architecture llama.cpp cannot get from us before merging
    model, report["merge"] = merge_verified(run, probes)
    reference_tokens = greedy(model, probes.prompts, n=16)
    assert quant is not None  # hf and gguf always have one
    if fmt == "hf":
        return _export_hf(model, run, probes, out, report, verify, quant, reference_tokens, max_shard_size)
    return _export_gguf(model, run, probes, out, report, verify, quant, reference_tokens, run_dir.resolve().name)


def _check_out(out: Path, run_dir: Path) -> None:
    """Refuse to replace a folder that is not an earlier export (it would be deleted), or the run itself."""
    inside = run_dir.resolve() in out.resolve().parents
    if out.resolve() == run_dir.resolve() or (inside and out.name in RUN_PARTS):
        raise ExportError("the output folder must not be the run folder or one of its parts", origin=str(out))
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "export.json").is_file())):
        raise ExportError(
            "exists and is not an earlier tunesmith export; choose a new folder (nothing was written)", origin=str(out)
        )


def _finish(tmp: Path, report: dict) -> None:
    (tmp / "export.json").write_text(json.dumps(report, indent=2) + "\n")


def _write_checked(out: Path, report: dict, write, check) -> dict:
    """`write(tmp)` the export into a temporary folder, `check(tmp)` it there (unless None), then move it to
    `out`: a failed check leaves nothing written."""

    def build(tmp: Path) -> None:
        write(tmp)
        if check is not None:
            report["check"] = check(tmp)
        _finish(tmp, report)

    atomic_folder(out, build)
    return report


def _export_peft(run, probes, out: Path, report: dict, verify: bool) -> dict:
    from tunesmith.export.checks import probe_logits
    from tunesmith.export.peft_folder import verify_peft, write_peft
    from tunesmith.model import build_model, resolve_model

    if not run.is_adapter:
        raise ExportError("this run fine-tuned all weights (method: full): it has no adapter; use --format hf")
    source = resolve_model(run.config.model.name)
    reference = probe_logits(run.model, probes)

    def base():
        return build_model(run.config, trainable=False, source=source, dtype="float32", quantize="none")

    def check(tmp: Path) -> dict:
        return verify_peft(tmp, base, reference, probes)

    return _write_checked(
        out,
        report,
        lambda tmp: write_peft(
            run.adapter_dir, run.tokenizer, tmp, base_model=source.model_id, system_prompt=run.config.data.system_prompt
        ),
        check if verify else None,
    )


def _export_hf(
    model, run, probes, out: Path, report: dict, verify: bool, quant: str, reference_tokens, max_shard_size: str
) -> dict:
    from tunesmith.export.checks import probe_logits
    from tunesmith.export.formats import HF_DTYPES
    from tunesmith.export.hf import verify_hf, write_hf

    reference = probe_logits(model, probes)
    dtype = HF_DTYPES[quant]

    def write(tmp: Path) -> None:
        write_hf(
            model,
            run.tokenizer,
            tmp,
            dtype=dtype,
            max_shard_size=max_shard_size,
            system_prompt=run.config.data.system_prompt,
        )
        _card(run, tmp, adapter=False)

    def check(tmp: Path) -> dict:
        return verify_hf(tmp, reference, probes, reference_tokens, dtype=dtype)

    return _write_checked(out, report, write, check if verify else None)


def _card(run, folder: Path, *, adapter: bool) -> None:
    """The run's model card for an export folder (from its summary.json, where the run has one)."""
    from tunesmith.model import resolve_model
    from tunesmith.runfolder import RunFolder, read_json
    from tunesmith.training.card import model_card

    summary_path = RunFolder(run.root).summary if run.root is not None else None
    summary = read_json(summary_path) if summary_path is not None and summary_path.is_file() else {}
    text = model_card(run.config, summary, resolve_model(run.config.model.name), adapter=adapter)
    (folder / "README.md").write_text(text, encoding="utf-8")


def _export_gguf(
    model, run, probes, out: Path, report: dict, verify: bool, quant: str, reference_tokens, name: str
) -> dict:
    import torch

    from tunesmith.export.checks import FIXED_PROBES, until_stop
    from tunesmith.export.gguf_check import verify_gguf
    from tunesmith.export.gguf_llama import write_gguf
    from tunesmith.export.ollama import modelfile

    system = run.config.data.system_prompt
    filename = f"{name}-{quant}.gguf"
    chat_reference = []  # the fixed probe questions as an OpenAI-style chat, and tunesmith's answer
    fixed = reference_tokens[-len(FIXED_PROBES) :]
    for q, tokens in zip(FIXED_PROBES, fixed):
        messages = ([{"role": "system", "content": system}] if system is not None else []) + [
            {"role": "user", "content": q}
        ]
        answer = until_stop(tokens, run.tokenizer)
        chat_reference.append((messages, run.tokenizer.decode(answer, skip_special_tokens=True)))

    with torch.no_grad():
        last_logits = [model(input_ids=torch.tensor([p])).logits[0, -1].float() for p in probes.prompts]

    def write(tmp: Path) -> None:
        report["gguf"] = write_gguf(model, run.tokenizer, tmp / filename, quant=quant, name=name, system_prompt=system)
        (tmp / "Modelfile").write_text(modelfile(filename, run.tokenizer, system_prompt=system, run_name=name))
        if verify:
            report["check"] = verify_gguf(
                tmp / filename,
                run.tokenizer,
                probes,
                reference_tokens,
                last_logits,
                chat_reference,
                quant=quant,
                n_ctx=model.config.max_position_embeddings,
            )
        else:
            log.warning("GGUF written without its llama.cpp check (--no-verify)")
        _finish(tmp, report)

    atomic_folder(out, write)
    return report


__all__ = ["FORMATS", "ExportError", "export"]
