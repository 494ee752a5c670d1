"""What `tunesmith export` can write, and the check of a format and quantization asked for (no torch: the CLI
refuses a wrong `--format`/`--quant` within a second, before the model libraries load)."""

from __future__ import annotations

from tunesmith.errors import ExportError

HF_DTYPES = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}  # `--quant` -> the saved dtype
GGUF_QUANTS = ("f32", "f16", "q8_0")
QUANTS: dict[str, tuple] = {"hf": tuple(HF_DTYPES), "gguf": GGUF_QUANTS, "peft": (None,)}
FORMATS = tuple(QUANTS)
DEFAULT_QUANT = {"hf": "f32", "gguf": "f16", "peft": None}


def checked_quant(fmt: str, quant: str | None, merge: bool = False) -> str | None:
    """The quantization an export of `fmt` writes (`quant`, or the format's default); an `ExportError` naming the
    choices for an unknown format, a quantization the format does not take, or `merge` with `peft`."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")
    quant = quant or DEFAULT_QUANT[fmt]
    if quant not in QUANTS[fmt]:
        raise ExportError(
            f"--quant {quant} does not apply to --format {fmt}"
            + (f" (choose from {', '.join(str(a) for a in QUANTS[fmt])})" if fmt != "peft" else "")
        )
    if fmt == "peft" and merge:
        raise ExportError("a PEFT folder holds the adapter unmerged: use --format hf (or gguf) to merge")
    return quant
