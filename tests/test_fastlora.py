"""The fused LoRA layer computes what peft computes, keeps less for backward, and saves plain peft adapters."""

import json

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model

import tiny
from tunesmith.config import LoraSpec
from tunesmith.model.adapters import apply_method
from tunesmith.model.fastlora import FusedLoraLinear, LoraLinearFn, dropped_positions


def _models(tok, dtype, method="lora", dropout=0.0):
    """(tunesmith's fused peft model, plain peft model) with identical weights and adapters."""
    spec = LoraSpec(r=4, alpha=8, dropout=dropout)
    fused = apply_method(tiny.llama(tok).to(dtype), method, spec)
    plain = get_peft_model(
        tiny.llama(tok).to(dtype),
        LoraConfig(
            r=4,
            lora_alpha=8,
            lora_dropout=dropout,
            target_modules="all-linear",
            use_dora=method == "dora",
            task_type="CAUSAL_LM",
        ),
    )
    torch.manual_seed(1)
    for (_, p), (_, q) in zip(fused.named_parameters(), plain.named_parameters()):
        if p.requires_grad:  # B starts at zero: give it values so the adapter path matters
            p.data.copy_(torch.randn_like(p) * 0.05)
            q.data.copy_(p.data)
    return fused, plain


def _loss_and_grads(model, ids):
    model.zero_grad()
    logits = model(input_ids=ids).logits.float()
    loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    loss.backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_fused_matches_peft_logits_and_gradients(chatml_tok, dtype, tol):
    fused, plain = _models(chatml_tok, dtype)
    assert any(isinstance(m, FusedLoraLinear) for m in fused.modules())
    ids = torch.randint(5, 60, (2, 12))
    la, ga = _loss_and_grads(fused.train(), ids)
    lb, gb = _loss_and_grads(plain.train(), ids)
    assert (la - lb).abs().max() <= tol
    for name, g in ga.items():
        ref = gb[name]
        assert (g - ref).abs().max() <= tol * max(1.0, ref.abs().max()), name


@pytest.mark.parametrize("weight_grad", [False, True])  # frozen: only the dropped input is kept for backward
def test_fused_dropout_gradients_match_the_explicit_formula(weight_grad):
    torch.manual_seed(0)
    x = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 8, dtype=torch.float64, requires_grad=weight_grad)
    a = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(7)
    y = LoraLinearFn.apply(x, w, None, a, b, 2.0, 0.3)
    g = torch.randn_like(y)
    inputs = (x, a, b, w) if weight_grad else (x, a, b)
    got = torch.autograd.grad(y, inputs, g)
    torch.manual_seed(7)
    keep = torch.ones(x.numel(), dtype=torch.float64)
    keep[dropped_positions(x.numel(), 0.3)] = 0
    keep = keep.view(x.shape)
    ref_y = x @ w.t() + (x * keep / 0.7) @ a.t() @ b.t() * 2.0
    want = torch.autograd.grad(ref_y, inputs, g)
    assert torch.allclose(y, ref_y)
    for u, v in zip(got, want):
        assert torch.allclose(u, v)
    assert 0 < (keep == 0).sum() < keep.numel()


def test_dropped_positions_are_iid_bernoulli():
    """Rate, no repeats, and independence: the gaps between drops are geometric with mean 1/p."""
    torch.manual_seed(0)
    n, p = 2_000_000, 0.05
    pos = dropped_positions(n, p)
    assert pos.dtype == torch.int64 and bool((pos[1:] > pos[:-1]).all()) and int(pos[0]) >= 0 and int(pos[-1]) < n
    sigma = (p * (1 - p) / n) ** 0.5
    assert abs(pos.numel() / n - p) < 4 * sigma
    gaps = (pos[1:] - pos[:-1]).double()
    assert abs(gaps.mean().item() - 1 / p) < 0.02 / p
    assert abs((gaps == 1).double().mean().item() - p) < 0.003  # P(next element dropped | this one) = p
    # each of 8 equal slices of a small tensor is dropped at the same rate (no position bias)
    counts = torch.zeros(8)
    for _ in range(200):
        counts += torch.bincount(dropped_positions(800, 0.25) // 100, minlength=8)
    assert (counts / (200 * 100) - 0.25).abs().max() < 0.02
    assert dropped_positions(1000, 0.0).numel() == 0


def test_dropped_positions_draw_again_when_a_draw_falls_short():
    torch.manual_seed(3)
    pos = dropped_positions(5000, 0.5, draws=100)  # about 25 rounds of 100 gaps
    assert bool((pos[1:] > pos[:-1]).all()) and int(pos[-1]) < 5000
    assert abs(pos.numel() / 5000 - 0.5) < 0.03 and int(pos[-1]) > 4900


def test_fused_layer_keeps_a_third_of_peft_activation_bytes():
    """Per adapted bf16 layer with dropout: peft keeps fp32 input, mask and dropped input; we keep bf16 x once."""

    def saved_bytes(custom: bool) -> int:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(64, 96)).to(torch.bfloat16)
        cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1, target_modules=["0"])
        if custom:
            cfg._register_custom_module({torch.nn.Linear: FusedLoraLinear})
        net = get_peft_model(net, cfg).train()
        x = torch.randn(16, 64, dtype=torch.bfloat16, requires_grad=True)
        seen = {}

        def pack(t):
            if not isinstance(t, torch.nn.Parameter):
                seen[(t.data_ptr(), t.dtype, tuple(t.shape))] = t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            net(x).float().sum().backward()
        assert isinstance(net.base_model.model[0], FusedLoraLinear) == custom
        return sum(seen.values())

    assert saved_bytes(True) <= saved_bytes(False) / 3


def test_dora_and_merged_adapters_take_peft_path(chatml_tok):
    fused, plain = _models(chatml_tok, torch.float32, method="dora")
    ids = torch.randint(5, 60, (2, 10))
    assert torch.allclose(fused(input_ids=ids).logits, plain(input_ids=ids).logits, atol=1e-6)
    fused.merge_adapter()
    assert torch.allclose(fused(input_ids=ids).logits, plain(input_ids=ids).logits, atol=1e-5)


def test_saved_adapter_loads_in_plain_peft(chatml_tok, tmp_path):
    fused, _ = _models(chatml_tok, torch.float32)
    fused.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "adapter_config.json").read_text())
    assert "custom" not in json.dumps(cfg).lower()
    loaded = PeftModel.from_pretrained(tiny.llama(chatml_tok), tmp_path)
    assert not any(isinstance(m, FusedLoraLinear) for m in loaded.modules())
    ids = torch.randint(5, 60, (2, 10))
    assert torch.equal(fused.eval()(input_ids=ids).logits, loaded.eval()(input_ids=ids).logits)
