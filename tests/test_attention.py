"""The blocked causal attention computes what SDPA computes, and hands SDPA every case it does not cover."""

import pytest
import torch
import torch.nn.functional as F

import tiny
from tunesmith import attention
from tunesmith.attention import block_causal_attention, blocked_attention_forward


def _qkv(b, h, hkv, s, d, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, n, s, d, dtype=dtype, generator=g, requires_grad=True) for n in (h, hkv, hkv)]


@pytest.mark.parametrize("s,block", [(1 + 64 * 2, 64), (50, 64), (64, 64), (97, 16), (33, 1)])
@pytest.mark.parametrize("h,hkv", [(4, 4), (6, 2), (3, 1)])
def test_matches_sdpa_forward_and_backward(s, block, h, hkv):
    q, k, v = _qkv(2, h, hkv, s, 8)
    out = block_causal_attention(q, k, v, 0.3, block=block)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3, enable_gqa=True).transpose(1, 2)
    assert out.shape == (2, s, h, 8)
    assert (out - ref).abs().max() < 1e-12
    g = torch.randn_like(out)
    got, want = torch.autograd.grad(out, (q, k, v), g), torch.autograd.grad(ref, (q, k, v), g)
    for a, b in zip(got, want):
        assert (a - b).abs().max() < 1e-12


def test_bf16_error_is_that_of_sdpa():
    q, k, v = (t.detach() for t in _qkv(2, 9, 3, 200, 64, dtype=torch.float32))
    exact = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True).transpose(1, 2)
    qb, kb, vb = q.bfloat16(), k.bfloat16(), v.bfloat16()
    with torch.no_grad():
        ours = block_causal_attention(qb, kb, vb, 64 ** -0.5).float()
        sdpa = F.scaled_dot_product_attention(qb, kb, vb, is_causal=True, enable_gqa=True).transpose(1, 2).float()
    assert (ours - exact).abs().max() <= 2 * (sdpa - exact).abs().max() + 1e-3


class _Module(torch.nn.Module):
    is_causal = True
    num_key_value_groups = 2


@pytest.mark.parametrize("case", ["mask", "no_grad", "decode", "dropout", "softcap", "too_long", "sliding"])
def test_other_cases_go_to_sdpa(case, monkeypatch):
    s = attention.MAX_LENGTH + 1 if case == "too_long" else 12
    q, k, v = _qkv(1, 4, 2, s, 8, dtype=torch.float32)
    mask, kwargs, dropout = None, {}, 0.0
    if case == "mask":
        mask = torch.ones(1, 1, s, s, dtype=torch.bool).tril()
    elif case == "decode":
        q = q[:, :, -1:]
    elif case == "dropout":
        dropout = 0.1
    elif case == "softcap":
        kwargs["softcap"] = 30.0
    elif case == "sliding":
        kwargs["sliding_window"] = 4
    calls = []
    monkeypatch.setattr(attention, "sdpa_attention_forward", lambda *a, **kw: calls.append(1) or (None, None))
    with torch.set_grad_enabled(case != "no_grad"):
        blocked_attention_forward(_Module(), q, k, v, mask, dropout=dropout, **kwargs)
    assert calls == [1]


def test_eligible_case_does_not_go_to_sdpa(monkeypatch):
    q, k, v = _qkv(1, 4, 2, 12, 8, dtype=torch.float32)
    monkeypatch.setattr(attention, "sdpa_attention_forward", lambda *a, **kw: pytest.fail("went to SDPA"))
    out, weights = blocked_attention_forward(_Module(), q, k, v, None, scaling=0.5)
    assert out.shape == (1, 12, 4, 8) and weights is None


def test_model_with_blocked_attention_matches_sdpa_in_training(chatml_tok, monkeypatch):
    used = []
    real = attention.block_causal_attention
    monkeypatch.setattr(attention, "block_causal_attention", lambda *a, **kw: used.append(1) or real(*a, **kw))
    ids = torch.randint(5, 60, (3, 40))
    mask = torch.ones_like(ids)
    mask[0, 30:] = 0  # a padded row: the mask goes to SDPA's own path
    results = {}
    for name in ("sdpa", attention.NAME):
        model = tiny.llama(chatml_tok).train()
        model.set_attn_implementation(name)
        full = model(input_ids=ids, use_cache=False).logits
        padded = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        full.sum().backward()
        results[name] = (full, padded, model.model.layers[0].self_attn.q_proj.weight.grad)
    assert len(used) == 2  # both layers of the unpadded call; the padded call went to SDPA
    for a, b in zip(results["sdpa"], results[attention.NAME]):
        assert (a - b).abs().max() < 1e-5
