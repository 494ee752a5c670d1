"""Tiny models and tokenizers built in-process: hermetic (no network, no cache), seeded, fast."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello! How can I help you today?",
    "category: billing\nreply: We will refund the double charge.",
    "What is the capital of France? Paris.",
    "My order VC-123456 has not arrived yet, where is it?",
    "Please reset my password, I am locked out.",
    "user assistant system",
    "The model answers short questions with short answers.",
]


def _bpe(specials: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    return tok


def chatml_tokenizer() -> PreTrainedTokenizerFast:
    """SmolLM2-like: bos <|im_start|>, eos = pad = <|im_end|>, a ChatML template with a default system prompt."""
    tok = PreTrainedTokenizerFast(
        tokenizer_object=_bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]),
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    tok.chat_template = CHATML
    return tok


def base_tokenizer() -> PreTrainedTokenizerFast:
    """GPT-2-like base model tokenizer: no chat template, bos = eos = <|endoftext|>, no pad token."""
    return PreTrainedTokenizerFast(
        tokenizer_object=_bpe(["<|endoftext|>"]), bos_token="<|endoftext|>", eos_token="<|endoftext|>"
    )


def _shape(tokenizer, hidden: int = 32) -> dict:
    """The tiny decoders' common size: 2 layers, 4 query heads over 2 KV heads, 256 positions."""
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
    )


def llama(tokenizer, seed: int = 0, hidden: int = 32) -> LlamaForCausalLM:
    """Hidden size 32 by default; 4-bit quantization (blocks of 64 weights) needs at least 64."""
    torch.manual_seed(seed)
    ends = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(LlamaConfig(tie_word_embeddings=True, **ends, **_shape(tokenizer, hidden))).eval()


def windowed(tokenizer, kind: str = "mistral", seed: int = 4, window: int = 8):
    """Attention that is not plain causal: a tiny Mistral with a `window`-token sliding window, or (`gemma2`) a tiny
    Gemma2 with soft-capped attention logits and every other layer windowed."""
    from transformers import Gemma2Config, Gemma2ForCausalLM, MistralConfig, MistralForCausalLM

    torch.manual_seed(seed)
    shape = dict(sliding_window=window, **_shape(tokenizer))
    if kind == "mistral":
        return MistralForCausalLM(MistralConfig(**shape)).eval()
    return Gemma2ForCausalLM(Gemma2Config(head_dim=8, attn_logit_softcapping=5.0, **shape)).eval()


def gpt2(tokenizer, seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return GPT2LMHeadModel(cfg).eval()


def save_model_folder(folder: Path, kind: str = "llama", hidden: int = 32) -> Path:
    """A complete HF model folder (config, safetensors, tokenizer) that tunesmith can load by path."""
    tok = chatml_tokenizer() if kind == "llama" else base_tokenizer()
    model = llama(tok, hidden=hidden) if kind == "llama" else gpt2(tok)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@torch.no_grad()
def hf_generate(model, tok, batch: list[list[int]], max_new_tokens: int, stop: list[int]) -> list[list[int]]:
    """transformers' own greedy `generate` on a left-padded batch, each row cut at its first stop token: the
    reference the decode loop is held to."""
    width = max(len(p) for p in batch)
    ids = torch.full((len(batch), width), tok.pad_token_id)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, p in enumerate(batch):
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        temperature=None,
        top_p=None,
        top_k=None,
        eos_token_id=stop,
        pad_token_id=tok.pad_token_id,
    )
    rows = []
    for row in out[:, width:].tolist():
        cut = next((i for i, t in enumerate(row) if t in stop), len(row))
        rows.append(row[:cut])
    return rows


def say_words(path: Path, rows: int) -> str:
    """A chat file of `rows` rows a tiny model can fit ("Say hello #3" -> "hello"); its path."""
    import json

    words = ["hello", "bye", "yes", "no"]
    lines = [
        {
            "messages": [
                {"role": "user", "content": f"Say {words[i % 4]} #{i}"},
                {"role": "assistant", "content": words[i % 4]},
            ]
        }
        for i in range(rows)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return str(path)


ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict | None = None, cwd: Path = ROOT, timeout: int = 900):
    """The real `tunesmith` CLI in a fresh interpreter, output captured (`env` None: this process's)."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
