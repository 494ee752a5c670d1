"""Fused RMSNorm: swapped in only where it computes what the model computes, with names unchanged."""

import copy

import pytest
import torch

import tiny
from tunesmith.config import LoraSpec
from tunesmith.model.adapters import apply_method
from tunesmith.model.fused import FusedRMSNorm, fuse, rms_norm


def _fused_copy(model):
    other = copy.deepcopy(model)
    return other, fuse(other)


def test_llama_norms_are_swapped_and_compute_the_same(chatml_tok):
    model = tiny.llama(chatml_tok)
    fused, n = _fused_copy(model)
    assert n == 2 * 2 + 1  # two norms per block and the final norm
    assert isinstance(fused.model.norm, FusedRMSNorm) and isinstance(
        fused.model.layers[1].input_layernorm, FusedRMSNorm
    )
    assert list(fused.state_dict()) == list(model.state_dict())  # same names, same order
    ids = torch.randint(5, 60, (2, 17))
    with torch.no_grad():  # eager formulas: bit for bit
        assert torch.equal(model(input_ids=ids).logits, fused(input_ids=ids).logits)
    model.train(), fused.train()
    a, b = model(input_ids=ids).logits, fused(input_ids=ids).logits  # compiled kernels while training
    assert (a - b).abs().max() < 1e-5
    a.square().mean().backward()
    b.square().mean().backward()
    for (name, p), q in zip(model.named_parameters(), fused.parameters()):
        assert (p.grad - q.grad).abs().max() < 1e-5, name


def test_compiled_kernel_in_bf16_stays_within_rounding():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 40, 64, generator=g).bfloat16().requires_grad_()
    w = (1 + 0.1 * torch.randn(64, generator=g)).bfloat16()
    norm = FusedRMSNorm(torch.nn.Parameter(w, requires_grad=False), 1e-5)
    exact = rms_norm(x.double(), w.double(), 1e-5)
    eager = rms_norm(x, w, 1e-5)
    assert (norm(x).double() - exact).abs().max() <= 2 * (eager.double() - exact).abs().max() + 1e-6
    gy = torch.randn(1, 40, 64, generator=g).bfloat16()
    (got,) = torch.autograd.grad(norm(x), x, gy)
    (want,) = torch.autograd.grad(rms_norm(x.double(), w.double(), 1e-5), x, gy.double())
    assert (got.double() - want).abs().max() < 2e-2 * want.abs().max()


def test_lora_model_fuses_with_adapter_names_unchanged(chatml_tok):
    model = apply_method(tiny.llama(chatml_tok), "lora", LoraSpec(r=4, alpha=8, dropout=0.1))
    names = [n for n, _ in model.named_parameters()]
    assert fuse(model) == 5
    assert [n for n, _ in model.named_parameters()] == names
    layer = model.base_model.model.model.layers[1]
    assert isinstance(layer.post_attention_layernorm, FusedRMSNorm) and hasattr(layer.mlp.gate_proj, "lora_A")
    assert layer.post_attention_layernorm.training == layer.self_attn.training  # the mode is carried over


def test_other_architectures_and_lookalikes_are_left_alone(base_tok):
    assert fuse(tiny.gpt2(base_tok)) == 0  # LayerNorm: not an RMSNorm

    class OffsetRMSNorm(torch.nn.Module):  # Gemma-style (1 + weight): the same attributes, another formula
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(8))
            self.variance_epsilon = 1e-6

        def forward(self, x):
            return (1 + self.weight) * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)

    holder = torch.nn.Sequential(OffsetRMSNorm())
    assert fuse(holder) == 0 and isinstance(holder[0], OffsetRMSNorm)


@pytest.mark.parametrize("setting,expected", [(True, 5), ("auto", 0), (False, 0)])
def test_train_fuse_setting(setting, expected, chatml_tok):
    from tunesmith.config import Config
    from tunesmith.model.fused import fuse_for_training

    cfg = Config.model_validate({"data": {"train": "x"}, "train": {"fuse": setting}})
    model = tiny.llama(chatml_tok)  # ~30k parameters: `auto` leaves it eager (compiling would not pay back)
    assert fuse_for_training(model, cfg, torch.device("cpu"), steps=1000) == expected
    compiled = Config.model_validate({"data": {"train": "x"}, "train": {"fuse": True, "compile": True}})
    assert fuse_for_training(tiny.llama(chatml_tok), compiled, torch.device("cpu"), steps=1000) == 0


def test_auto_fuses_large_models_on_long_runs(monkeypatch, chatml_tok):
    from tunesmith.config import Config
    from tunesmith.model import fused

    monkeypatch.setattr(fused, "FUSE_MIN_PARAMETERS", 1000)  # the tiny model stands in for a large one
    cfg = Config.model_validate({"data": {"train": "x"}})
    assert fused.fuse_for_training(tiny.llama(chatml_tok), cfg, torch.device("cpu"), steps=99) == 0
    assert fused.fuse_for_training(tiny.llama(chatml_tok), cfg, torch.device("cpu"), steps=100) == 5


def test_fused_cross_entropy_kernel_matches_the_eager_one_and_torch():
    from tunesmith.model.fused import compiled
    from tunesmith.training.loss import fusable_cross_entropy, softmax_cross_entropy

    g = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(37, 301, generator=g)).bfloat16()
    targets = torch.randint(0, 301, (37,), generator=g)
    ref = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
    lf = logits.float().requires_grad_()
    (want,) = torch.autograd.grad(torch.nn.functional.cross_entropy(lf, targets, reduction="sum"), lf)
    for fn in (softmax_cross_entropy, fusable_cross_entropy, compiled(fusable_cross_entropy)):
        loss, grad = fn(logits, targets)
        assert float(loss) == pytest.approx(float(ref), rel=1e-6)
        assert grad.dtype == torch.bfloat16 and (grad.float() - want).abs().max() < 4e-3


def test_fused_model_loss_and_gradients_match(chatml_tok):
    from tunesmith.config import Config
    from tunesmith.model.fused import fuse_for_training
    from tunesmith.training.loss import loss_sum

    cfg = Config.model_validate({"data": {"train": "x"}, "train": {"fuse": True}})
    plain = tiny.llama(chatml_tok).train()
    fused = copy.deepcopy(plain)
    assert fuse_for_training(fused, cfg, torch.device("cpu"), steps=1) > 0
    ids = torch.randint(5, 60, (2, 13))
    labels = ids.clone()
    labels[:, :4] = -100
    batch = {"input_ids": ids, "labels": labels}
    results = []
    for model, fused_loss in ((plain, False), (fused, True)):
        loss, n = loss_sum(model, batch, fused=fused_loss)
        loss.backward()
        results.append((float(loss), [p.grad for p in model.parameters()]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    for a, b in zip(results[0][1], results[1][1]):
        assert (a - b).abs().max() < 1e-5
