"""The adapter as a standalone PEFT folder (unmerged), with tokenizer, chat template and generation config."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch

from tunesmith.errors import ExportError
from tunesmith.export.checks import Probes, logit_tolerance, max_gap, probe_logits
from tunesmith.export.hf import save_tokenizer

log = logging.getLogger("tunesmith")


def write_peft(adapter_dir: Path, tokenizer, folder: Path, base_model: str, system_prompt: str | None = None) -> None:
    """Copy the run's adapter weights, config and model card; name the base model it was trained on (its hub id,
    so the adapter loads on another machine)."""
    for name in ("adapter_model.safetensors", "adapter_config.json", "README.md"):  # README.md: the model card
        if name == "README.md" and not (adapter_dir / name).is_file():
            continue
        shutil.copy2(adapter_dir / name, folder / name)
    cfg = json.loads((folder / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = base_model
    (folder / "adapter_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    save_tokenizer(tokenizer, folder, system_prompt=system_prompt)


def verify_peft(folder: Path, base_loader, reference: list[torch.Tensor], probes: Probes) -> dict:
    """Load a fresh base model, attach the written adapter with `PeftModel.from_pretrained`, compare logits."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(base_loader(), folder).eval()
    gap = max_gap(reference, probe_logits(model, probes))
    log.info("PEFT folder check: reloaded with peft, max |logit gap| %.3g", gap)
    tolerance = logit_tolerance(reference)
    if not gap <= tolerance:
        raise ExportError(
            f"the written adapter does not reproduce the run's model: max |logit gap| {gap:.3g} > "
            f"{tolerance:.2g}; nothing was written"
        )
    return {"reloaded_with": "peft PeftModel.from_pretrained", "max_logit_gap": gap, "tolerance": tolerance}
