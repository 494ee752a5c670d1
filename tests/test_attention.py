"""The blocked causal attention computes what SDPA computes, and hands SDPA every case it does not cover."""

import pytest
import torch
import torch.nn.functional as F

import tiny
from tunesmith.model import attention
from tunesmith.model.attention import BlockedAttention, block_causal_attention


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
        ours = block_causal_attention(qb, kb, vb, 64**-0.5).float()
        sdpa = F.scaled_dot_product_attention(qb, kb, vb, is_causal=True, enable_gqa=True).transpose(1, 2).float()
    assert (ours - exact).abs().max() <= 2 * (sdpa - exact).abs().max() + 1e-3


class _Module(torch.nn.Module):
    is_causal = True
    num_key_value_groups = 2


@pytest.mark.parametrize("case", ["mask", "no_grad", "decode", "dropout", "too_long", "sliding"])
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
    elif case == "sliding":
        kwargs["sliding_window"] = 4
    calls = []
    monkeypatch.setattr(attention, "sdpa_attention_forward", lambda *a, **kw: calls.append(1) or (None, None))
    with torch.set_grad_enabled(case != "no_grad"):
        BlockedAttention()(_Module(), q, k, v, mask, dropout=dropout, **kwargs)
    assert calls == [1]


def test_soft_capped_logits_without_an_eager_attention_to_go_to_are_refused(monkeypatch):
    """SDPA would drop the cap; a layer whose modeling file has no eager attention gets a clear error instead."""
    q, k, v = _qkv(1, 4, 2, 12, 8, dtype=torch.float32)
    monkeypatch.setattr(attention, "sdpa_attention_forward", lambda *a, **kw: pytest.fail("went to SDPA"))
    with pytest.raises(ValueError, match="asks for softcap.*set model.attention to eager"):
        BlockedAttention()(_Module(), q, k, v, None, softcap=30.0)


def test_eligible_case_does_not_go_to_sdpa(monkeypatch):
    q, k, v = _qkv(1, 4, 2, 12, 8, dtype=torch.float32)
    monkeypatch.setattr(attention, "sdpa_attention_forward", lambda *a, **kw: pytest.fail("went to SDPA"))
    out, weights = BlockedAttention()(_Module(), q, k, v, None, scaling=0.5)
    assert out.shape == (1, 12, 4, 8) and weights is None


def test_model_with_blocked_attention_matches_sdpa_in_training(chatml_tok, monkeypatch):
    used = []
    real = attention.block_causal_attention
    monkeypatch.setattr(attention, "block_causal_attention", lambda *a, **kw: used.append(1) or real(*a, **kw))
    ids = torch.randint(5, 60, (3, 40))
    mask = torch.ones_like(ids)
    mask[0, 30:] = 0  # a padded row: the mask goes to SDPA's own path
    results = {}
    for name in ("sdpa", attention.register()):
        model = tiny.llama(chatml_tok).train()
        model.set_attn_implementation(name)
        full = model(input_ids=ids, use_cache=False).logits
        padded = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        full.sum().backward()
        results[name] = (full, padded, model.model.layers[0].self_attn.q_proj.weight.grad)
    assert len(used) == 2  # both layers of the unpadded call; the padded call went to SDPA
    for a, b in zip(results["sdpa"], results[attention.NAME]):
        assert (a - b).abs().max() < 1e-5


def test_packed_segments():
    from tunesmith.model.attention import packed_segments

    assert packed_segments(torch.tensor([[0, 1, 2, 0, 1, 0]])) == [(0, 3), (3, 5), (5, 6)]
    assert packed_segments(torch.tensor([[0, 1, 2, 3]])) == [(0, 4)]
    assert packed_segments(torch.tensor([[1, 2, 0, 1]])) is None  # does not start a sample
    assert packed_segments(torch.tensor([[0, 1, 3, 0]])) is None  # a gap inside a sample
    assert packed_segments(torch.tensor([[0, 1], [0, 1]])) is None  # not one packed row
    assert packed_segments(None) is None


def test_packed_rows_attend_per_sample_like_sdpa(chatml_tok, monkeypatch):
    """Packed rows through the model: the blocked path equals SDPA's masked path, and no sample sees another."""
    used = []
    real = attention.block_causal_attention
    monkeypatch.setattr(attention, "block_causal_attention", lambda *a, **kw: used.append(1) or real(*a, **kw))
    lengths = [7, 12, 5]
    ids = torch.randint(5, 60, (1, sum(lengths)))
    positions = torch.cat([torch.arange(n) for n in lengths])[None]
    results = {}
    for name in ("sdpa", attention.register()):
        model = tiny.llama(chatml_tok).train()
        model.set_attn_implementation(name)
        logits = model(input_ids=ids, position_ids=positions, use_cache=False).logits
        logits.square().sum().backward()
        results[name] = (logits, model.model.layers[1].self_attn.k_proj.weight.grad)
    assert len(used) == 2  # one call per layer for the whole packed row
    for a, b in zip(results["sdpa"], results[attention.NAME]):
        assert (a - b).abs().max() < 1e-5
    # each sample alone gives the same logits: no sample sees another
    start = 0
    for n in lengths:
        alone = model(input_ids=ids[:, start : start + n], use_cache=False).logits
        assert (alone - results[attention.NAME][0][:, start : start + n]).abs().max() < 1e-5
        start += n


def test_mask_that_is_not_block_causal_goes_to_sdpa(monkeypatch):
    q, k, v = _qkv(1, 4, 2, 6, 8, dtype=torch.float32)
    positions = torch.tensor([[0, 1, 2, 0, 1, 2]])
    mask = torch.ones(1, 1, 6, 6, dtype=torch.bool).tril()  # causal across both samples: not packing's mask
    calls = []
    monkeypatch.setattr(attention, "sdpa_attention_forward", lambda *a, **kw: calls.append(1) or (None, None))
    BlockedAttention()(_Module(), q, k, v, mask, position_ids=positions)
    assert calls == [1]


@pytest.mark.parametrize("kernel,h,hkv", [("blocked", 6, 3), ("sdpa", 6, 3), ("sdpa", 4, 4)])
def test_packed_row_matches_attention_per_sample(kernel, h, hkv):
    """Both kernels: blocked matmuls (CPUs), and the GPU route (a causal padded batch through SDPA, no mask)."""
    from tunesmith.model.attention import block_causal_attention, packed_causal_attention, sdpa_causal

    module = _Module()
    module.num_key_value_groups = h // hkv
    lengths = [9, 3, 70, 1, 6]
    q, k, v = _qkv(1, h, hkv, sum(lengths), 8)
    bounds = [sum(lengths[:i]) for i in range(len(lengths) + 1)]
    fn = block_causal_attention if kernel == "blocked" else sdpa_causal(module)
    out = packed_causal_attention(q, k, v, 0.25, list(zip(bounds[:-1], bounds[1:])), fn)
    ref = torch.cat(
        [
            F.scaled_dot_product_attention(
                q[:, :, a:e], k[:, :, a:e], v[:, :, a:e], is_causal=True, scale=0.25, enable_gqa=True
            ).transpose(1, 2)
            for a, e in zip(bounds[:-1], bounds[1:])
        ],
        1,
    )
    assert out.shape == ref.shape and (out - ref).abs().max() < 1e-12
    g = torch.randn_like(out)
    for x, y in zip(torch.autograd.grad(out, (q, k, v), g), torch.autograd.grad(ref, (q, k, v), g)):
        assert (x - y).abs().max() < 1e-12


def test_gpu_route_sends_packed_rows_to_sdpa_without_a_mask(chatml_tok, monkeypatch):
    """Where attention does not run blocked (GPUs), a packed row reaches SDPA as a causal batch with no mask
    (flash/memory-efficient kernels), an unpacked row goes to SDPA as it is, and the logits are SDPA's."""
    masks = []
    real = attention.sdpa_attention_forward
    monkeypatch.setattr(attention, "runs_blocked", lambda device: False)
    monkeypatch.setattr(attention, "block_causal_attention", lambda *a, **kw: pytest.fail("ran blocked"))
    monkeypatch.setattr(
        attention,
        "sdpa_attention_forward",
        lambda m, q, k, v, mask, **kw: masks.append((mask, q.shape[0])) or real(m, q, k, v, mask, **kw),
    )
    lengths = [7, 12, 5]
    ids = torch.randint(5, 60, (1, sum(lengths)))
    positions = torch.cat([torch.arange(n) for n in lengths])[None]
    model = tiny.llama(chatml_tok).train()
    model.set_attn_implementation(attention.register())
    logits = model(input_ids=ids, position_ids=positions, use_cache=False).logits
    assert [(m is None, b) for m, b in masks] == [(True, 3), (True, 3)]  # per layer: 3 samples, no mask
    ref = tiny.llama(chatml_tok).train()
    ref.set_attn_implementation("sdpa")
    assert (logits - ref(input_ids=ids, position_ids=positions, use_cache=False).logits).abs().max() < 1e-5
    masks.clear()
    model(input_ids=ids[:, :10], use_cache=False)
    assert [b for _, b in masks] == [1, 1]  # one unpacked row: SDPA's own causal path


@pytest.mark.parametrize("h,hkv", [(4, 4), (6, 2), (9, 3)])
@pytest.mark.parametrize("masking", ["none", "bool", "additive"])
def test_one_query_attention_matches_sdpa(h, hkv, masking):
    from tunesmith.model.attention import one_query_attention

    g = torch.Generator().manual_seed(3)
    b, n, d = 5, 23, 8
    q = torch.randn(b, h, 1, d, dtype=torch.float64, generator=g)
    buffer = torch.randn(2, b, hkv, n + 9, d, dtype=torch.float64, generator=g)  # a cache with room to spare
    k, v = buffer[0, :, :, :n], buffer[1, :, :, :n]
    keep = torch.ones(b, 1, 1, n, dtype=torch.bool)
    keep[1, ..., :7] = False  # left padding
    keep[3, ..., :15] = False
    mask = {"none": None, "bool": keep, "additive": torch.zeros(b, 1, 1, n, dtype=q.dtype).masked_fill(~keep, -1e30)}
    out = one_query_attention(q, k, v, mask[masking], 0.4)
    sdpa_mask = None if masking == "none" else keep
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=sdpa_mask, scale=0.4, enable_gqa=True).transpose(1, 2)
    assert out.shape == (b, 1, h, d)
    assert (out - ref).abs().max() < 1e-12
    alone = one_query_attention(q[3:4], k[3:4], v[3:4], None if masking == "none" else mask[masking][3:4], 0.4)
    assert torch.equal(alone, out[3:4])  # a row's attention does not depend on its batch


def test_decoding_steps_with_our_attention_match_sdpa(chatml_tok, monkeypatch):
    """A padded batch decoded with tunesmith's attention (one-query steps through grouped matmuls) gets SDPA's
    logits at every step and its greedy tokens."""
    from tunesmith.model.decode import decode

    used = []
    real = attention.one_query_attention
    monkeypatch.setattr(attention, "one_query_attention", lambda *a, **kw: used.append(1) or real(*a, **kw))
    g = torch.Generator().manual_seed(4)
    prompts = [torch.randint(5, len(chatml_tok), (n,), generator=g).tolist() for n in (3, 11, 7, 20)]
    seen: dict[str, list] = {}
    out = {}
    for name in ("sdpa", attention.register()):
        model = tiny.llama(chatml_tok, seed=5, hidden=64).eval()
        with torch.no_grad():
            model.get_input_embeddings().weight.mul_(4.0)
        model.set_attn_implementation(name)
        seen[name] = []

        def keep(logits, rows, generated, name=name):
            seen[name].append(logits.clone())
            return logits.argmax(-1).tolist()

        out[name] = decode(model, prompts, stop_ids=[], pad_id=chatml_tok.pad_token_id, max_new_tokens=6, pick=keep)
    assert used  # the steps went through the one-query path
    assert out["sdpa"] == out[attention.NAME]
    for a, b in zip(seen["sdpa"], seen[attention.NAME]):
        assert (a - b).abs().max() < 1e-5


@pytest.mark.parametrize("s", [1, 6])
@pytest.mark.parametrize("masking", ["none", "bool", "additive"])
def test_shared_head_attention_matches_sdpa_over_a_copy_per_row(s, masking):
    """A head kept once and read by every row equals SDPA over the head copied before each row's own keys."""
    from tunesmith.model.attention import shared_head_attention

    g = torch.Generator().manual_seed(6)
    b, h, hkv, m, n, d = 4, 6, 2, 9, 13, 8
    q = torch.randn(b, h, s, d, dtype=torch.float64, generator=g)
    hk, hv = (torch.randn(1, hkv, m, d, dtype=torch.float64, generator=g) for _ in range(2))
    k, v = (torch.randn(b, hkv, n, d, dtype=torch.float64, generator=g) for _ in range(2))
    keep = torch.ones(s, n, dtype=torch.bool).tril_(n - s).expand(b, 1, s, n).clone()  # causal over own keys
    if masking != "none":
        keep[1, ..., :4] = False  # left padding of a shorter row
    mask = {"none": None, "bool": keep, "additive": torch.zeros(keep.shape, dtype=q.dtype).masked_fill(~keep, -1e30)}
    out = shared_head_attention(q, k, v, mask[masking], 0.3, hk, hv)
    full = torch.cat([torch.ones(b, 1, s, m, dtype=torch.bool), keep], -1)
    ref = F.scaled_dot_product_attention(
        q,
        torch.cat([hk.expand(b, -1, -1, -1), k], 2),
        torch.cat([hv.expand(b, -1, -1, -1), v], 2),
        attn_mask=full,
        scale=0.3,
        enable_gqa=True,
    ).transpose(1, 2)
    assert out.shape == (b, s, h, d)
    assert (out - ref).abs().max() < 1e-12


def test_soft_capped_attention_goes_to_the_models_own_eager_attention(chatml_tok):
    """Gemma2's soft-capped logits, which transformers' SDPA refuses: training's forward and gradients through
    tunesmith's attention are those of the model's own eager attention, on a left-padded batch."""
    ids = torch.randint(3, len(chatml_tok), (2, 12), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0
    results = {}
    for name in ("eager", attention.register()):
        model = tiny.windowed(chatml_tok, "gemma2", seed=0, window=6).train()
        model.set_attn_implementation(name)
        logits = model(input_ids=ids, attention_mask=mask).logits
        logits[mask.bool()].square().sum().backward()
        results[name] = (logits.detach(), model.model.layers[0].self_attn.q_proj.weight.grad)
    (a, ga), (b, gb) = results["eager"], results[attention.NAME]
    assert (a - b)[mask.bool()].abs().max() <= 1e-5
    assert (ga - gb).abs().max() <= 1e-5 * (ga.abs().max() + 1)
