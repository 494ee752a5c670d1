"""Linear layers packed for oneDNN (`model.packed`): the decode copy computes what torch's own linear layers do."""

import pytest
import torch

import tiny
from tunesmith.model.decode import decode
from tunesmith.model.packed import PackedLinear, can_pack, pack_linears


def linears(model) -> int:
    return sum(type(m) is torch.nn.Linear for m in model.modules())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_packed_model_gives_the_logits_and_answers_of_the_plain_one(chatml_tok, dtype):
    plain = tiny.llama(chatml_tok, seed=2, hidden=64).to(dtype).eval()
    with torch.no_grad():
        plain.get_input_embeddings().weight.mul_(4.0)  # spread-out logits: no argmax ties
    packed = tiny.llama(chatml_tok, seed=2, hidden=64).to(dtype).eval()
    packed.load_state_dict(plain.state_dict())
    n = linears(plain)
    assert can_pack(plain.lm_head.weight)
    assert pack_linears(packed) == n and linears(packed) == 0
    assert sum(isinstance(m, PackedLinear) for m in packed.modules()) == n
    ids = torch.randint(3, len(chatml_tok), (3, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = plain(input_ids=ids).logits.float(), packed(input_ids=ids).logits.float()
    tol = 1e-5 if dtype == torch.float32 else 5e-2
    assert (want - got).abs().max() <= tol * (1 + want.abs().max())
    if dtype == torch.float32:
        prompts = [row.tolist()[: 5 + 3 * i] for i, row in enumerate(ids)]
        args = dict(stop_ids=[], pad_id=chatml_tok.pad_token_id, max_new_tokens=8)
        assert decode(packed, prompts, **args) == decode(plain, prompts, **args)


def test_packing_leaves_what_it_cannot_pack(chatml_tok):
    model = tiny.llama(chatml_tok, seed=2).eval()
    assert not can_pack(torch.zeros(3, 4, dtype=torch.float16))
    assert not can_pack(torch.zeros(3, dtype=torch.float32))
    assert pack_linears(torch.nn.Sequential(torch.nn.ReLU())) == 0
    assert pack_linears(model) > 0 and pack_linears(model) == 0  # packed already: nothing left
    assert not any(isinstance(p, torch.Tensor) and p.is_mkldnn for p in model.parameters())  # nothing to train/save
