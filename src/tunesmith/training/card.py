"""The model card (`README.md`) of a run's adapter or model folder, filled in from the run: base model and its
license, data, settings, before/after figures. Exports copy it, so a shared adapter says what it is."""

from __future__ import annotations

from pathlib import Path

from tunesmith.config import Config
from tunesmith.model.load import ModelSource
from tunesmith.runfolder import atomic_write_text


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


_KIND = {"lora": "LoRA adapter", "dora": "DoRA adapter", "full": "fully fine-tuned model"}


def _num(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _results(summary: dict, evaluated: bool = True) -> list[str]:
    before, after = summary.get("before") or {}, summary.get("after") or {}
    lines = []
    if before or after:
        n = after.get("samples") or before.get("samples")
        lines += ["| held-out figure | base model | tuned |", "|---|---:|---:|"]
        lines.append(f"| loss | {_num(before.get('eval_loss'))} | {_num(after.get('eval_loss'))} |")
        if "accuracy" in before or "accuracy" in after:
            lines.append(f"| exact match ({n} rows) | {_pct(before.get('accuracy'))} | {_pct(after.get('accuracy'))} |")
        named = after.get("task_metric")
        if named:
            lines.append(f"| {named} ({n} rows) | {_pct(before.get(named))} | {_pct(after.get(named))} |")
    comparison = summary.get("comparison")
    if comparison:
        scores = ", ".join(f"{k} {_pct(v)}" for k, v in comparison.items() if k not in ("report", "metric"))
        lines += [
            "",
            f"Base zero-shot, base few-shot and tuned on the held-out data ({comparison['metric']}): {scores}.",
        ]
    if lines:
        return lines
    if not evaluated:
        return ["Evaluation was switched off for this run (`eval.enabled: false`): no figures."]
    return ["No held-out data was configured: no figures."]


def model_card(config: Config, summary: dict, source: ModelSource, *, adapter: bool) -> str:
    """The card's markdown: YAML front matter the hub reads, then what the run did and measured."""
    base = source.model_id
    license_ = source.license or "other"
    search = summary.get("search") or {}
    lr = search.get("lr", config.train.lr)
    front = ["---", f"base_model: {base}", f"library_name: {'peft' if adapter else 'transformers'}"]
    front += [f"license: {license_}", "pipeline_tag: text-generation", "tags:", "- tunesmith"]
    front += [f"- {config.method}", "---", ""]
    d, t = config.data, config.train
    body = [
        f"# {Path(str(summary.get('run_dir', config.output_dir))).name}",
        "",
        f"A {_KIND[config.method]} of [{base}](https://huggingface.co/{base}) "
        "trained with [tunesmith](https://pypi.org/project/tunesmith/).",
        "",
        "## Base model",
        f"- id: `{base}`" + (f" (trained from the local copy `{source.folder}`)" if source.folder else ""),
        f"- license: {source.license or 'see the base model card'}; this "
        f"{'adapter' if adapter else 'model'} is a derivative of it and carries its terms",
        "",
        "## Data",
        f"- train: `{d.train}` ({summary.get('train_rows', '?')} rows used)"
        + (f", selection split {summary.get('select_rows')} rows" if summary.get("select_rows") else ""),
        f"- held-out: `{d.eval or 'none'}` ({summary.get('eval_rows', 0)} rows)",
        f"- system prompt: {d.system_prompt!r}" if d.system_prompt else "- system prompt: the model's default",
        "",
        "## Settings",
        f"- method: {config.method}"
        + (f", r {config.lora.r}, alpha {config.lora.alpha}, targets {config.lora.targets}" if adapter else ""),
        f"- learning rate: {lr}" + (" (chosen by tunesmith's search)" if search else ""),
        f"- steps: {summary.get('steps')} ({_num(summary.get('epochs'), 2)} epochs), batch {t.batch_size}, "
        f"max_length {t.max_length}" + (f", budget {t.budget:.0f} s" if t.budget else ""),
        f"- trained on {summary.get('device')} in {summary.get('train_seconds')} s",
        "",
        "## Results",
        *_results(summary, config.eval.enabled),
        "",
        "## Use",
        "Fine-tuning teaches style, format and reasoning patterns; for facts the model must know, retrieve them "
        "at answer time (RAG).",
        "",
    ]
    if adapter:
        body += [
            "```python",
            "from peft import AutoPeftModelForCausalLM",
            'model = AutoPeftModelForCausalLM.from_pretrained("PATH_OR_REPO")',
            "```",
            "",
        ]
    return "\n".join(front + body)


def write_card(folder: Path, config: Config, summary: dict, source: ModelSource) -> None:
    """Write the card as `folder/README.md` (replacing peft's empty template)."""
    adapter = (folder / "adapter_config.json").is_file()
    atomic_write_text(folder / "README.md", model_card(config, summary, source, adapter=adapter))
