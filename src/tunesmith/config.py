"""The run configuration: a typed schema, YAML loading, `a.b=c` overrides, and errors with did-you-mean.

The schema is the documentation: every field has a default a new user can live with, and unknown keys are
errors (a typo such as `lrr: 1e-3` silently ignored is a wasted run). So are duplicate keys (YAML lets the
last one win silently), booleans where a number belongs (`batch_size: true` is not 1), and YAML beyond sane
limits (an alias bomb, runaway nesting, a 5,000-digit integer): each is one error naming file, line and key.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from tunesmith.errors import ConfigError
from tunesmith.yamlfile import SURROGATE, YamlProblem, dotted, read_config_text, read_yaml, shown, yaml_error

log = logging.getLogger("tunesmith")

_INT_RANGE = 2**63  # what torch, numpy and the RNGs take; a larger setting is a typo, not a plan


def _whole_number(v: Any) -> Any:
    """Refuse booleans (pydantic reads `true` as 1) and integers past 64 bits before int validation."""
    if isinstance(v, bool):
        raise ValueError(f"should be a whole number, not {str(v).lower()}")
    if isinstance(v, int) and not -_INT_RANGE <= v < _INT_RANGE:
        raise ValueError(f"is too large (at most {_INT_RANGE - 1})")
    return v


def _real_number(v: Any) -> Any:
    """Refuse booleans (pydantic reads `true` as 1.0), infinities and NaN (YAML's .inf, .nan) before float
    validation."""
    if isinstance(v, bool):
        raise ValueError(f"should be a number, not {str(v).lower()}")
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"should be a finite number, not {v}")
    return v


Int = Annotated[int, BeforeValidator(_whole_number)]
Float = Annotated[float, BeforeValidator(_real_number)]


def _path_setting(v: str) -> str:
    """A file or folder setting: not empty (which would mean the current folder) and no NUL character."""
    if not v.strip():
        raise ValueError("is empty: give a path")
    if "\0" in v:
        raise ValueError("holds a NUL character")
    return v


PathStr = Annotated[str, AfterValidator(_path_setting)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSpec(_Strict):
    """Which base model to tune and how to load it. A bare string in YAML is shorthand for `name`."""

    name: str = "smollm2-135m"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    attention: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"
    device: str = "auto"  # auto: the CUDA GPU where there is one (its local rank's under torchrun), else cpu
    quantize: Literal["none", "4bit"] = "none"  # 4bit: QLoRA, frozen weights in NF4 through bitsandbytes
    trust_remote_code: bool = False

    @field_validator("device")
    @classmethod
    def _device_name(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", v):
            raise ValueError("should be 'auto', 'cpu', 'cuda' or 'cuda:N'")
        return v


class DataSpec(_Strict):
    """Where examples come from and how they are turned into training tokens."""

    train: PathStr
    eval: PathStr | None = None
    eval_fraction: Float | None = Field(default=None, gt=0.0, lt=1.0)
    select: PathStr | None = None  # train.lr/epochs auto: the selection split (a file); default: carved from train
    columns: dict[str, str] | None = None
    system_prompt: str | None = None
    train_on_prompt: bool = False
    # the chat template rows are rendered with: auto (the model's own; plain when it has none), chatml, llama3,
    # plain, or a Jinja file; saved with the trained model, so inference and exports use the same
    template: PathStr = "auto"

    @model_validator(mode="after")
    def _one_eval_source(self) -> DataSpec:
        if self.eval is not None and self.eval_fraction is not None:
            raise ValueError("give either 'eval' (a file) or 'eval_fraction' (a split of train), not both")
        return self


class LoraSpec(_Strict):
    """LoRA hyper-parameters (also used by DoRA)."""

    r: Int = Field(default=16, ge=1)
    alpha: Float = Field(default=32.0, gt=0)
    dropout: Float = Field(default=0.05, ge=0.0, lt=1.0)
    targets: str | list[str] = "all-linear"  # module names, or one regular expression (peft's target_modules)
    rslora: bool = False

    @field_validator("targets")
    @classmethod
    def _usable_targets(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list):
            if not v or any(not name.strip() for name in v):
                raise ValueError("should name at least one module, e.g. [q_proj, v_proj], or be 'all-linear'")
        elif not v.strip():
            raise ValueError("is empty: name modules, e.g. [q_proj, v_proj], or use 'all-linear'")
        elif v != "all-linear":
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"not a valid regular expression: {e}") from None
        return v


def parse_duration(value: Any) -> float | None:
    """Seconds from `90`, `90s`, `10m`, `1.5h` (None stays None); anything else is a ValueError."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("should be a duration such as 90s, 10m or 1.5h")
    if isinstance(value, (int, float)):
        seconds = float(value) if -_INT_RANGE < value < _INT_RANGE else math.inf
    else:
        found = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|sec|m|min|h|hr)?\s*", str(value).lower())
        if found is None:
            raise ValueError(f"'{value}' is not a duration such as 90s, 10m or 1.5h")
        unit = {"m": 60, "min": 60, "h": 3600, "hr": 3600}.get(found.group(2) or "s", 1)
        seconds = float(found.group(1)) * unit
    if not seconds > 0 or not math.isfinite(seconds):
        raise ValueError("should be a positive duration such as 90s, 10m or 1.5h")
    return seconds


class TrainSpec(_Strict):
    """Optimisation settings. One optimizer step sees batch_size x grad_accum rows (x world size)."""

    epochs: Int | Literal["auto"] = "auto"  # auto: as many as the budget allows (3 without one), best step kept
    max_steps: Int | None = Field(default=None, ge=1)
    budget: float | None = None  # seconds for search + training: `90s`, `10m`, `1.5h` (default: no limit)
    batch_size: Int = Field(default=8, ge=1)
    grad_accum: Int = Field(default=1, ge=1)
    # tokens a micro-batch may hold (rows x its longest row), rows grouped by length; auto: on for an auto run
    # whose batch_size is not set, sized so short rows do not leave each step mostly fixed overhead
    # rows per step (batch_size) by default: under a time budget, 8-row steps beat token-batched ones of ~44 short
    # rows by 11 points (docs/recipes.md); "auto" or a number batches by tokens (more tokens/s, fewer updates)
    batch_tokens: Int | Literal["auto"] | None = None
    lr: float | Literal["auto"] = "auto"  # auto: chosen by a successive-halving search on the selection split
    lr_candidates: list[Float] | None = None  # the rates lr: auto tries (default: 4, log-spaced, by method)
    weight_decay: Float = Field(default=0.0, ge=0)
    warmup_ratio: Float = Field(default=0.05, ge=0, lt=1)
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"  # after warmup: decay to 0, or hold
    max_grad_norm: Float | None = Field(default=1.0, gt=0)
    max_length: Int = Field(default=512, ge=8)
    seed: Int = 0
    save_every: Int = Field(default=50, ge=1)
    eval_every: Int = Field(default=50, ge=1)
    log_every: Int = Field(default=1, ge=1)
    keep_checkpoints: Int = Field(default=2, ge=1)
    packing: bool | Literal["auto"] = "auto"  # auto: padding-free batches where the model keeps samples apart
    group_by_length: bool = True
    threads: Int | None = Field(default=None, ge=1)
    compile: bool = False
    distributed: Literal["ddp", "fsdp"] = "ddp"  # under torchrun: replicate (DDP) or shard (FSDP2, per block)
    fuse: bool | Literal["auto"] = (
        "auto"  # CPU training: compiled RMSNorm + CE (fused.py); auto: 50M+ params, 100+ steps
    )
    # recompute each block's activations in the backward pass: less memory for larger models, more time
    gradient_checkpointing: bool = False
    # experiment trackers the steps and final figures also go to (training/trackers.py says where each writes)
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = []

    @field_validator("report_to", mode="before")
    @classmethod
    def _tracker_list(cls, v: Any) -> Any:
        if v is None or v == "none":
            return []
        if isinstance(v, str):  # `report_to: wandb`, or `train.report_to=tensorboard,mlflow` on the command line
            return [name.strip() for name in v.split(",") if name.strip()]
        return v

    @field_validator("budget", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float | None:
        return parse_duration(v)

    @field_validator("lr", mode="before")
    @classmethod
    def _positive_lr(cls, v: Any) -> Any:
        if v == "auto":
            return v
        try:
            if isinstance(v, bool):
                raise TypeError
            v = float(v)
        except (TypeError, ValueError, OverflowError):
            given = str(v).lower() if isinstance(v, bool) else repr(v)[:60]
            raise ValueError(f"should be a number such as 1e-3, or 'auto' (got {given})") from None
        if not v > 0:
            raise ValueError("should be greater than 0 (or 'auto')")
        if not math.isfinite(v):
            raise ValueError("should be a finite number (or 'auto')")
        return v

    @field_validator("lr_candidates")
    @classmethod
    def _positive_rates(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (not v or any(not x > 0 for x in v)):
            raise ValueError("should be a non-empty list of positive learning rates")
        return v

    @field_validator("epochs", "batch_tokens")
    @classmethod
    def _positive_epochs(cls, v: Any) -> Any:
        if v is not None and v != "auto" and not v >= 1:
            raise ValueError("should be at least 1 (or 'auto')")
        return v

    @property
    def auto(self) -> bool:
        """Whether a selection split steers the run: the learning rate, or the length (epochs auto and no
        max_steps), is chosen from the data."""
        return self.lr == "auto" or (self.epochs == "auto" and self.max_steps is None)

    @field_validator("packing", "fuse", mode="before")
    @classmethod
    def _true_false_or_auto(cls, v: Any) -> Any:
        if isinstance(v, bool) or v == "auto":
            return v
        raise ValueError("should be true, false or 'auto'")


class EvalSpec(_Strict):
    """Held-out evaluation run before and after training: loss, and task accuracy from generation."""

    enabled: bool = True
    max_samples: Int = Field(default=100, ge=1)
    max_new_tokens: Int = Field(default=64, ge=1)
    batch_size: Int = Field(default=16, ge=1)  # scoring rows; generation: up to 4x, within a 1 GiB KV cache
    answer_regex: str | None = None
    report: bool = True  # after training: base zero-/few-shot vs tuned -> eval.json, predictions.jsonl, report.html
    few_shot: Int = Field(default=3, ge=0)  # training examples shown to the base model in the few-shot system
    generate_every: Int | None = Field(default=None, ge=1)  # during training: task metric on generated answers
    generate_samples: Int = Field(default=16, ge=1)  # held-out rows for that periodic generation eval
    select_best: bool = False  # keep the weights of the step with the best periodic task metric
    patience: Int | None = Field(default=None, ge=1)  # stop after this many periodic evals without improvement
    # label tasks: generated answers are held to the label set (every system alike); true = free-text decoding
    free_text: bool = False
    # how generation decodes on a CPU: float32 = answers that do not depend on the batch, as the fp32 export gives;
    # model = the weights' own dtype (bf16: faster on CPUs with bf16 units; an answer may change with its batch)
    precision: Literal["float32", "model"] = "float32"
    # how answers are scored: auto = inferred from the references (label, json, text; code when rows carry
    # `tests`); codes = a set of codes per answer (set F1, exact set, invalid codes against `valid_codes`)
    task: Literal["auto", "label", "json", "text", "codes", "code"] = "auto"
    valid_codes: PathStr | None = None  # codes tasks: the valid code list (one per line; .gz allowed)
    json_schema: PathStr | None = None  # json tasks: a JSON Schema file (draft 2020-12) answers must match
    sandbox_paths: list[PathStr] = []  # code tasks: folders put on the sandboxed tests' import path
    sandbox_timeout: Float = Field(default=10.0, gt=0, le=600)  # code tasks: seconds a row's tests may run

    @field_validator("answer_regex")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"not a valid regular expression: {e}") from None
        return v


class Config(_Strict):
    """A whole run."""

    model: ModelSpec = ModelSpec()
    data: DataSpec
    method: Literal["lora", "dora", "full"] = "lora"
    lora: LoraSpec = LoraSpec()
    train: TrainSpec = TrainSpec()
    eval: EvalSpec = EvalSpec()
    output_dir: PathStr = "runs/run"
    _where: dict[str, str] = PrivateAttr(default_factory=dict)  # key -> "file:line" or "override"

    def __eq__(self, other: object) -> bool:
        """The same settings are the same config, wherever they were given (`where` is not compared)."""
        if not isinstance(other, Config):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # mutable, as pydantic models are

    def where(self, key: str) -> str | None:
        """Where a setting was given (`config.yaml:7`, `override`), for errors found after loading; None when
        it was not given (a default) or the config came from a dict."""
        return self._where.get(key)

    @model_validator(mode="after")
    def _quantized_needs_adapter(self) -> Config:
        if self.model.quantize != "none" and self.method == "full":
            raise ValueError(
                "model.quantize=4bit trains an adapter on frozen 4-bit weights (QLoRA); "
                "it cannot fine-tune all weights: use method lora or dora"
            )
        if self.model.quantize != "none" and self.train.distributed == "fsdp":
            raise ValueError(
                "model.quantize=4bit cannot be sharded with train.distributed=fsdp here (4-bit "
                "weights are packed bytes); use train.distributed=ddp, which copies the small 4-bit model"
            )
        return self

    @field_validator("model", mode="before")
    @classmethod
    def _model_shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v


# ---------------------------------------------------------------------------------------------------------
# loading


def _unknown_key_error(path: tuple[str, ...], allowed: list[str], where: str) -> ConfigError:
    key = path[-1]
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(sorted(allowed))})"
    return ConfigError(f"unknown key{hint}", origin=where, field=dotted(path))


def _check_keys(raw: dict, schema: type[BaseModel], prefix: tuple[str, ...], locate) -> None:
    """Raise a did-you-mean error for the first unknown key, walking nested sections."""
    for key, value in raw.items():
        path = prefix + (str(key),)
        field = schema.model_fields.get(str(key))
        if field is None:
            raise _unknown_key_error(path, list(schema.model_fields), locate(path))
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel) and isinstance(value, dict):
            _check_keys(value, sub, path, locate)


def parse_overrides(overrides: list[str]) -> dict:
    """Turn `["train.lr=1e-3", "method=full"]` into a nested dict; values are parsed as YAML scalars."""
    out: dict = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override '{shown(item)}' is not of the form key.sub=value")
        if SURROGATE.search(item):  # bytes that are not UTF-8 on the command line arrive as surrogates
            raise ConfigError("holds bytes that are not UTF-8", origin="override", field=shown(key))
        node = out
        parts = key.split(".")
        if len(parts) > 1 and isinstance(out.get("model"), str) and parts[0] == "model":
            out["model"] = {"name": out["model"]}  # `model=path` shorthand, then `model.dtype=...`
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{shown(item)}' conflicts with another override")
        try:
            parsed = read_yaml(value)[0] if value != "" else ""
        except yaml.YAMLError:
            parsed = value
        except YamlProblem as p:
            raise ConfigError(p.reason, origin="override", field=dotted((*parts, *p.key))) from None
        if key == "model" and isinstance(parsed, str) and isinstance(out.get("model"), dict):
            out["model"] = {**out["model"], "name": parsed}  # `model.dtype=...`, then `model=path`
        else:
            node[parts[-1]] = parsed
    return out


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        elif k == "model" and isinstance(out.get(k), dict) and isinstance(v, str):
            out[k] = {**out[k], "name": v}
        elif isinstance(v, dict) and k == "model" and isinstance(out.get(k), str):
            out[k] = {"name": out[k], **v}
        else:
            out[k] = v
    return out


def build_config(
    raw: dict,
    overrides: list[str] | None = None,
    *,
    source: str = "<config>",
    text: str | None = None,
    lines: dict[tuple[str, ...], int] | None = None,
) -> Config:
    """Validate a raw mapping (plus overrides) into a `Config`, with errors that name file, line and field.
    `lines` (or `text`, the YAML it was read from) gives each key's line."""
    if lines is None:
        try:
            lines = read_yaml(text)[1] if text else {}
        except (yaml.YAMLError, YamlProblem):
            lines = {}

    def locate(path: tuple[str, ...]) -> str:
        line = lines.get(path)
        return f"{source}:{line}" if line else source

    if not isinstance(raw, dict):
        raise ConfigError("the config must be a YAML mapping (key: value lines)", origin=source)
    over = parse_overrides(overrides or [])
    _check_keys(raw, Config, (), locate)
    _check_keys(over, Config, (), lambda p: "override")
    merged = _merge(raw, over)
    try:
        config = Config.model_validate(merged)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [p for p in err["loc"] if not str(p).startswith("function-")]
        if err["type"] != "missing":
            loc = _given(merged, loc)  # drop union-member tags, e.g. 'str' in ('lora', 'targets', 'str')
        path = tuple(str(p) for p in loc)
        if path and path[0] == "model" and len(path) > 1 and path[1] not in ModelSpec.model_fields:
            path = ("model",)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "is required"
        return_field = ".".join(path) or None
        given = _given(over, loc)
        from_override = bool(loc) and given == loc and not isinstance(_at(over, loc), dict)
        if err["type"] != "missing":  # a list item has no line of its own: its key's line (`lr_candidates: [..]`)
            path = next((path[:n] for n in range(len(path), 0, -1) if path[:n] in lines), path)
        where = "override" if from_override else locate(path)
        raise ConfigError(msg, origin=where, field=return_field) from None
    config._where = {".".join(p): locate(p) for p in lines} | dict.fromkeys(_leaf_keys(over), "override")
    return config


def _leaf_keys(data: dict, prefix: str = "") -> list[str]:
    """The dotted keys of a nested mapping's leaves (`{"train": {"lr": 1}}` -> `["train.lr"]`)."""
    out = []
    for k, v in data.items():
        out += _leaf_keys(v, f"{prefix}{k}.") if isinstance(v, dict) and v else [f"{prefix}{k}"]
    return out


def _given(data, loc: list) -> list:
    """The leading part of a validation-error location that addresses values present in `data`."""
    out, node = [], data
    for p in loc:
        in_list = isinstance(node, list) and isinstance(p, int) and 0 <= p < len(node)
        if (isinstance(node, dict) and p in node) or in_list:
            node = node[p]
        else:
            break
        out.append(p)
    return out


def _at(data, loc: list):
    for p in loc:
        data = data[p]
    return data


def load_config(source: str | Path | dict | Config, overrides: list[str] | None = None) -> Config:
    """Load a config from a YAML file, a dict, or pass a `Config` through (applying overrides)."""
    if isinstance(source, Config):
        if not overrides:
            return source
        config = build_config(source.model_dump(), overrides)
        config._where = source._where | config._where
        return config
    if isinstance(source, dict):
        config = build_config(source, overrides)
        if "output_dir" not in source and config.where("output_dir") is None:
            log.warning(
                "the config names no output_dir: the run goes to %s (give output_dir to choose)",
                Path(config.output_dir).absolute(),
            )
        return config
    path, name = Path(source), str(source)
    text = read_config_text(path, name)
    try:
        raw, lines = read_yaml(text)
    except yaml.YAMLError as e:
        raise yaml_error(e, text, name) from None
    except YamlProblem as p:
        where = f"{name}:{p.line}" if p.line else name
        raise ConfigError(p.reason, origin=where, field=dotted(p.key) or None) from None
    return build_config(raw if raw is not None else {}, overrides, source=name, lines=lines)


def is_data_file(path: str | Path) -> bool:
    """True when a command's target names a data file (anything but .yaml/.yml: an unsupported extension is
    then reported as such by the data loader) rather than a YAML config."""
    return Path(path).suffix.lower() not in (".yaml", ".yml")


def load_target(target: str | Path, overrides: list[str] | None = None, model: str | None = None) -> Config:
    """The config of `tunesmith check|train TARGET`: a YAML file, or a data file with every other setting at
    its default (the bundled model unless `model` is given, output in `runs/<file stem>`)."""
    if is_data_file(target):
        raw: dict = {"data": {"train": str(target)}, "output_dir": f"runs/{Path(target).stem}"}
        if model is not None:
            raw["model"] = model
        return load_config(raw, overrides)
    config = load_config(target, overrides)
    return config if model is None else load_config(config, [f"model={model}"])


def dump_config(config: Config) -> str:
    """The resolved config as YAML, as saved in the run folder."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
