"""GGUF exports read by llama.cpp (llama-cpp-python): same tokens, same greedy answers, template and stops embedded."""

import json

import pytest
import torch
from tinyruns import ANSWERS

import tiny
from tunesmith.cli import main
from tunesmith.export import ExportError
from tunesmith.export.gguf_llama import interleave_rotary_rows, llama_hparams, pre_tokenizer_name


def llama_cpp():
    try:
        import llama_cpp
    except ImportError:  # a missing reader is a failure, not a skip
        pytest.fail(
            'llama-cpp-python is not installed: CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install '
            "llama-cpp-python==0.3.36 (see .ci/run)"
        )
    return llama_cpp


@pytest.mark.parametrize("quant", ["f32", "f16", "q8_0"])
def test_gguf_is_read_by_llama_cpp_like_tunesmith(tiny_runs, tmp_path, quant, capsys):
    Llama = llama_cpp().Llama
    out = tmp_path / quant
    assert main(["export", str(tiny_runs["paris"]), "--format", "gguf", "--quant", quant, "--out", str(out)]) == 0
    report = json.loads((out / "export.json").read_text())
    check = report["check"]
    matches = check["greedy_matching_tokens"]
    with capsys.disabled():
        print(
            f"\nGGUF {quant}: merge gap {report['merge']['max_logit_gap']:.2e}, greedy matching tokens {matches} "
            f"of {check['greedy_tokens_compared']}, tokenization {check['tokenization_identical']}, "
            f"chat {check['chat_identical']}"
        )
    assert check["greedy_tokens_compared"] == 16 and len(matches) == report["probes"]
    if quant in ("f32", "f16"):
        assert matches == [16] * report["probes"] and check["chat_identical"] == "3/3"
    assert check["tokenization_identical"] == f"{report['probes']}/{report['probes']}"

    # read it again as a user of llama.cpp would: embedded template, stop tokens, an OpenAI-style chat call
    path = out / f"{tiny_runs['paris'].name}-{quant}.gguf"
    llm = Llama(model_path=str(path), n_ctx=256, n_threads=1, verbose=False)
    try:
        assert llm.metadata["tokenizer.chat_template"] == tiny.CHATML
        assert (
            int(llm.metadata["tokenizer.ggml.eos_token_id"])
            == llm.tokenize(b"<|im_end|>", add_bos=False, special=True)[0]
        )
        r = llm.create_chat_completion(
            messages=[{"role": "user", "content": "Where is my order VC-123456?"}], temperature=0.0, max_tokens=24
        )
        assert r["choices"][0]["message"]["content"] == ANSWERS["paris"]
        assert r["choices"][0]["finish_reason"] == "stop"
    finally:
        llm.close()
    modelfile = (out / "Modelfile").read_text()
    assert f"FROM ./{path.name}" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert "<|im_start|>{{ .Role }}" in modelfile and 'SYSTEM """You are a helpful assistant."""' in modelfile


def test_interleaving_turns_half_split_rotary_into_pairwise_rotary():
    """q·k after transformers' rotate-half rope on W == after llama.cpp's pairwise rope on the reordered W."""
    torch.manual_seed(0)
    heads, dim, hidden, pos = 2, 8, 16, 5
    w, x = torch.randn(heads * dim, hidden), torch.randn(hidden)
    inv = 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim))
    cos, sin = torch.cos(pos * inv), torch.sin(pos * inv)

    def half_split(v):  # transformers: pairs (i, i + dim/2)
        a, b = v[: dim // 2], v[dim // 2 :]
        return torch.cat([a * cos - b * sin, a * sin + b * cos])

    def pairwise(v):  # llama.cpp LLAMA_ROPE_TYPE_NORM: pairs (2i, 2i + 1)
        a, b = v[0::2], v[1::2]
        return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=1).flatten()

    hf = (w @ x).reshape(heads, dim)
    cpp = (interleave_rotary_rows(w, heads) @ x).reshape(heads, dim)
    for h in range(heads):  # the same rotated vector, laid out pairwise: attention scores are unchanged
        rotated_hf, rotated_cpp = half_split(hf[h]), pairwise(cpp[h])
        assert torch.allclose(rotated_hf[: dim // 2], rotated_cpp[0::2], atol=1e-6)
        assert torch.allclose(rotated_hf[dim // 2 :], rotated_cpp[1::2], atol=1e-6)


def test_only_what_llama_cpp_can_read_is_converted():
    from transformers import GPT2Config

    with pytest.raises(ExportError, match="--format hf"):
        llama_hparams(GPT2Config())
    assert (
        pre_tokenizer_name({"normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "use_regex": True}}) == "gpt-2"
    )
    assert (
        pre_tokenizer_name(
            {
                "normalizer": None,
                "pre_tokenizer": {
                    "type": "Sequence",
                    "pretokenizers": [
                        {"type": "Digits", "individual_digits": True},
                        {"type": "ByteLevel", "use_regex": True},
                    ],
                },
            }
        )
        == "smollm"
    )
    with pytest.raises(ExportError, match="pre-tokenizer"):
        pre_tokenizer_name({"normalizer": {"type": "NFC"}, "pre_tokenizer": {"type": "Metaspace"}})
