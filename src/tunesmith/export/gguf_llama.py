"""Write a Llama-architecture transformers model as a GGUF file llama.cpp (and Ollama) can run.

What llama.cpp needs that transformers does not spell out: its tensor names (`TENSOR_MAP`), Q/K rows in
the interleaved rotary layout (`interleave_rotary_rows`), the BPE vocabulary with merges, token types and
pre-tokenizer name (`pre_tokenizer_name`), the special tokens and the chat template (docs/export.md).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from tunesmith.errors import ExportError
from tunesmith.export.formats import GGUF_QUANTS
from tunesmith.export.hf import trained_template
from tunesmith.render import END_OF_TURN_TOKENS, _adds_bos, stop_token_ids

log = logging.getLogger("tunesmith")

TENSOR_MAP = {  # transformers Llama parameter name (after "model.") -> GGUF tensor name
    "embed_tokens.weight": "token_embd.weight",
    "norm.weight": "output_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
}
# llama.cpp's name for each pre-tokenizer regex we can recognise in a tokenizer.json
LLAMA3_SPLIT = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)


def interleave_rotary_rows(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Reorder each head's rows from transformers' half-split rotary layout to llama.cpp's pairwise one."""
    rows, cols = weight.shape
    head_dim = rows // n_heads
    return weight.reshape(n_heads, 2, head_dim // 2, cols).transpose(1, 2).reshape(rows, cols)


def llama_hparams(config) -> dict:
    """The hyper-parameters llama.cpp reads, or an `ExportError` naming what it cannot represent."""
    if config.model_type != "llama":
        raise ExportError(
            f"GGUF export supports Llama-architecture models (SmolLM2, Llama, TinyLlama...); this "
            f"model is '{config.model_type}': export it with --format hf instead"
        )
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        raise ExportError("GGUF export does not handle Llama models with attention/MLP biases yet")
    rope = dict(getattr(config, "rope_parameters", None) or {})
    rope.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    scaling = getattr(config, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if rope_type not in ("default", "linear"):
        raise ExportError(f"GGUF export does not handle rope scaling '{rope_type}' yet")
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return {
        "context_length": config.max_position_embeddings,
        "embedding_length": config.hidden_size,
        "block_count": config.num_hidden_layers,
        "feed_forward_length": config.intermediate_size,
        "head_count": heads,
        "head_count_kv": config.num_key_value_heads or heads,
        "head_dim": head_dim,
        "rope_theta": float(rope["rope_theta"]),
        "rope_type": rope_type,
        "rope_factor": float(rope.get("factor") or scaling.get("factor") or 1.0),
        "rms_eps": float(config.rms_norm_eps),
        "vocab_size": config.vocab_size,
        "tied": bool(getattr(config, "tie_word_embeddings", False)),
    }


def pre_tokenizer_name(spec: dict) -> str:
    """llama.cpp's name for the tokenizer.json's pre-tokenizer, or an `ExportError` when there is none."""
    pre = spec.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [p.get("type") for p in parts]
    last = parts[-1] if parts else {}
    if spec.get("normalizer") is None and kinds and kinds[-1] == "ByteLevel" and not last.get("add_prefix_space"):
        if kinds == ["ByteLevel"] and last.get("use_regex", True):
            return "gpt-2"
        if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits") and last.get("use_regex", True):
            return "smollm"
        if (
            kinds == ["Split", "ByteLevel"]
            and not last.get("use_regex", True)
            and parts[0].get("pattern", {}).get("Regex") == LLAMA3_SPLIT
        ):
            return "llama-bpe"
    raise ExportError(
        f"GGUF export cannot map this tokenizer's pre-tokenizer ({kinds}, normalizer "
        f"{(spec.get('normalizer') or {}).get('type')}) to one llama.cpp knows; supported: GPT-2 "
        "byte-level, SmolLM2/StarCoder (digits + byte-level), Llama 3"
    )


def vocabulary(tokenizer, n_vocab: int) -> dict:
    """Tokens in id order with their types, BPE merges, and the special ids, as llama.cpp's `gpt2` model wants."""
    import gguf

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    if spec["model"]["type"] != "BPE" or spec["model"].get("byte_fallback"):
        raise ExportError(f"GGUF export supports byte-level BPE tokenizers; this one is {spec['model']['type']}")
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    if max(by_id) >= n_vocab:
        raise ExportError(f"the tokenizer has ids up to {max(by_id)} but the model only {n_vocab} embeddings")
    added = {a["id"]: a for a in spec.get("added_tokens", [])}
    tokens, types = [], []
    for i in range(n_vocab):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(added[i]["content"])
            types.append(gguf.TokenType.CONTROL if added[i].get("special") else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"].get("merges", [])]
    vocab = tokenizer.get_vocab()
    eot = next((vocab[t] for t in END_OF_TURN_TOKENS if t in vocab and vocab[t] in stop_token_ids(tokenizer)), None)
    return {"tokens": tokens, "types": types, "merges": merges, "pre": pre_tokenizer_name(spec), "eot": eot}


def _tensor_type(name: str, array: np.ndarray, quant: str):
    import gguf

    Q = gguf.GGMLQuantizationType
    if array.ndim == 1 or quant == "f32":
        return Q.F32
    if quant == "q8_0" and array.shape[-1] % gguf.GGML_QUANT_SIZES[Q.Q8_0][0] == 0:
        return Q.Q8_0
    return Q.F16


def llama_tensors(model, hp: dict):
    """(gguf name, fp32 numpy array) for every weight llama.cpp needs, Q/K rows reordered for its rotary."""
    state = model.state_dict()
    for key, tensor in state.items():
        if key == "lm_head.weight":
            if not hp["tied"]:
                yield "output.weight", tensor
            continue
        if not key.startswith("model."):
            raise ExportError(f"unexpected weight '{key}' in a Llama model")
        rest = key[len("model.") :]
        if rest in TENSOR_MAP:
            yield TENSOR_MAP[rest], tensor
            continue
        layer, _, local = rest.removeprefix("layers.").partition(".")
        if not rest.startswith("layers.") or local not in TENSOR_MAP:
            if "rotary_emb" in rest:
                continue
            raise ExportError(f"unexpected weight '{key}' in a Llama model")
        if local == "self_attn.q_proj.weight":
            tensor = interleave_rotary_rows(tensor, hp["head_count"])
        elif local == "self_attn.k_proj.weight":
            tensor = interleave_rotary_rows(tensor, hp["head_count_kv"])
        yield f"blk.{int(layer)}.{TENSOR_MAP[local]}", tensor


def write_gguf(model, tokenizer, path: Path, *, quant: str, name: str, system_prompt: str | None = None) -> dict:
    """Write `model` (plain transformers Llama, merged) to `path` as GGUF with weights in `quant`; its chat
    template defaults to the run's system prompt, as the HF export's does."""
    import gguf

    if quant not in GGUF_QUANTS:
        raise ExportError(f"unknown GGUF quantization '{quant}' (choose from {', '.join(GGUF_QUANTS)})")
    hp = llama_hparams(model.config)
    voc = vocabulary(tokenizer, hp["vocab_size"])
    file_type = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }[quant]
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name)
    w.add_context_length(hp["context_length"])
    w.add_embedding_length(hp["embedding_length"])
    w.add_block_count(hp["block_count"])
    w.add_feed_forward_length(hp["feed_forward_length"])
    w.add_head_count(hp["head_count"])
    w.add_head_count_kv(hp["head_count_kv"])
    w.add_key_length(hp["head_dim"])
    w.add_value_length(hp["head_dim"])
    w.add_rope_dimension_count(hp["head_dim"])
    w.add_rope_freq_base(hp["rope_theta"])
    if hp["rope_type"] == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(hp["rope_factor"])
    w.add_layer_norm_rms_eps(hp["rms_eps"])
    w.add_vocab_size(hp["vocab_size"])
    w.add_file_type(file_type)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(voc["pre"])
    w.add_token_list(voc["tokens"])
    w.add_token_types(voc["types"])
    w.add_token_merges(voc["merges"])
    for setter, value in (
        (w.add_bos_token_id, tokenizer.bos_token_id),
        (w.add_eos_token_id, tokenizer.eos_token_id),
        (w.add_pad_token_id, tokenizer.pad_token_id),
        (w.add_unk_token_id, tokenizer.unk_token_id),
        (w.add_eot_token_id, voc["eot"]),
    ):
        if value is not None:
            setter(value)
    w.add_add_bos_token(_adds_bos(tokenizer))
    w.add_add_eos_token(False)
    w.add_chat_template(trained_template(tokenizer, system_prompt))

    counts: dict[str, int] = {}
    for gguf_name, tensor in llama_tensors(model, hp):
        array = tensor.detach().to(torch.float32).cpu().numpy()
        qtype = _tensor_type(gguf_name, array, quant)
        counts[qtype.name] = counts.get(qtype.name, 0) + 1
        if qtype == gguf.GGMLQuantizationType.F32:
            w.add_tensor(gguf_name, array)
        elif qtype == gguf.GGMLQuantizationType.F16:
            w.add_tensor(gguf_name, array.astype(np.float16))
        else:
            w.add_tensor(gguf_name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    log.info("wrote %s (%s: %s)", path.name, quant, ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    return {
        "file": path.name,
        "quant": quant,
        "tensor_types": counts,
        "tokenizer_pre": voc["pre"],
        "bos": tokenizer.bos_token_id,
        "eos": tokenizer.eos_token_id,
        "eot": voc["eot"],
        "stop_token_ids": stop_token_ids(tokenizer),
        "bytes": path.stat().st_size,
    }
