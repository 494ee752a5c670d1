"""The model to decode with. On a CPU it computes in float32, a LoRA/DoRA adapter is merged into it and its linear
layers are packed for oneDNN: a copy of the weights, what the verified merged export computes, with answers that
do not depend on the batch. The copy is kept while the weights are unchanged and made again after they change
(training on, a checkpoint loaded)."""

from __future__ import annotations

import copy
import weakref

import torch

from tunesmith.model.adapters import is_quantized
from tunesmith.model.packed import can_pack, pack_linears
from tunesmith.precision import decoding_precision

_KEPT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _lora_layers(model) -> list[torch.nn.Module]:
    return [m for m in model.modules() if hasattr(m, "lora_A") and hasattr(m, "disable_adapters")]


def inference_dtype(model) -> torch.dtype:
    """float32 on a CPU: bf16 decoding there changed 5 of 8 greedy answers between a prompt alone and in a batch
    (padding changes the rounding), fp32 none, at 2.2x the time on an AMX CPU (docs/eval.md); the model's own
    dtype inside `decoding_in("model")`. Elsewhere (a GPU) the model's own dtype: a float32 copy would double the
    memory."""
    p = next(model.parameters())
    cpu_float = p.device.type == "cpu" and p.is_floating_point()
    return torch.float32 if cpu_float and decoding_precision() == "float32" else p.dtype


@torch.no_grad()
def state_key(model, layers: list[torch.nn.Module]) -> tuple:
    """What the copy depends on: the active adapter and whether it is on, which tensors hold the weights, and the
    values of those that train (a float64 sum and sum of squares each: PyTorch's fused AdamW updates weights
    without counting a new tensor version, so versions cannot tell)."""
    weights = list(model.parameters())
    trained = [p for p in weights if p.requires_grad]
    values = ()
    if trained:
        sums = torch.stack([torch.stack([p.double().sum(), p.double().square().sum()]) for p in trained])
        values = tuple(sums.flatten().tolist())
    disabled = any(layer.disable_adapters for layer in layers)
    active = getattr(model, "active_adapters", ()) if layers else ()  # a plain model's is a method
    return (tuple(active or ()), disabled, values, tuple(id(p) for p in weights))


def _adapter_layers(model) -> list[torch.nn.Module]:
    """A PEFT model's LoRA/DoRA layers (none for a plain model)."""
    peft = hasattr(model, "peft_config") and hasattr(model, "merge_and_unload")
    return _lora_layers(model) if peft else []


def weights_key(model) -> tuple:
    """What a model's computation depends on (`state_key`): equal keys, the same weights and adapter state."""
    return state_key(model, _adapter_layers(model))


def _affordable(model, dtype: torch.dtype, copies: int = 1) -> bool:
    """Whether `copies` copies of the weights in `dtype` fit comfortably (under half the memory free where they
    live)."""
    size = sum(p.numel() * (dtype.itemsize if p.is_floating_point() else p.element_size()) for p in model.parameters())
    device = next(model.parameters()).device
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
    else:
        import psutil

        free = psutil.virtual_memory().available
    return 2 * copies * size < free


def merged_copies(model, adapters) -> dict:
    """A plain copy of a PEFT `model` per adapter name in `adapters` (None: the base weights alone), each with its
    adapter merged in and in the inference dtype: what `for_inference` and the verified merged export compute, and
    no per-row adapter work at every token. Empty (decode the PEFT model itself) for a plain, 4-bit or sharded
    model, or when the copies would not fit in half the free memory."""
    if not hasattr(model, "merge_and_unload") or is_quantized(model):
        return {}
    if any(type(p).__name__ == "DTensor" for p in model.parameters()):
        return {}
    names = list(dict.fromkeys(adapters))
    dtype = inference_dtype(model)
    if not _affordable(model, dtype, copies=len(names)):
        return {}
    copies = {}
    for name in names:
        twin = copy.deepcopy(model).to(dtype)
        plain = twin.unload() if name is None else twin.merge_and_unload(adapter_names=[name])
        plain.eval()
        for p in plain.parameters():
            p.requires_grad_(False)
        pack_linears(plain)
        copies[name] = plain
    return copies


def _packable(model) -> bool:
    return any(type(m) is torch.nn.Linear and can_pack(m.weight) for m in model.modules())


def for_inference(model):
    """The model generation runs: a copy in `inference_dtype`, with a PEFT model's active adapter merged in (inside
    `disable_adapter()`, the base weights alone) and its linear layers packed for oneDNN on a CPU (`packed.py`).
    `model` itself where there is nothing to change (already plain, in its inference dtype, nothing to pack), and
    for a 4-bit base, a sharded model, or a model whose copy would not fit in half the free memory."""
    if is_quantized(model) or any(type(p).__name__ == "DTensor" for p in model.parameters()):
        return model
    layers = _adapter_layers(model)
    dtype = inference_dtype(model)
    cast = any(p.is_floating_point() and p.dtype != dtype for p in model.parameters())
    if not layers and not cast and not _packable(model):
        return model
    key = (dtype, *state_key(model, layers))
    kept = _KEPT.get(model)
    if kept is not None and kept[0] == key:
        return kept[1]
    _KEPT.pop(model, None)  # the stale copy goes before a new one is made
    if not _affordable(model, dtype):
        return model
    twin = copy.deepcopy(model).to(dtype)  # cast first: the adapter is merged in the inference dtype
    plain = (twin.unload() if key[2] else twin.merge_and_unload()) if layers else twin
    plain.eval()
    for p in plain.parameters():
        p.requires_grad_(False)
    pack_linears(plain)
    _KEPT[model] = (key, plain)
    return plain
