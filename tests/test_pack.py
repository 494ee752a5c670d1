"""Batching: seeded plans, padding that is never trained, and packing in which samples never see each other."""

import torch

import tiny
from tunesmith.errors import Origin
from tunesmith.pack import collate_packed, collate_padded, plan_batches
from tunesmith.render import IGNORE, Rendered
from tunesmith.training.loss import loss_sum


def rows(lengths, vocab=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n, length in enumerate(lengths):
        ids = torch.randint(5, vocab, (length,), generator=g).tolist()
        labels = [IGNORE] * (length // 2) + ids[length // 2 :]
        out.append(Rendered(ids, labels, Origin("x", n + 1)))
    return out


def test_plan_is_seeded_complete_and_grouped():
    lengths = [5, 50, 7, 48, 6, 51, 8, 49] * 4
    a = plan_batches(lengths, 4, seed=1, epoch=0)
    assert a == plan_batches(lengths, 4, seed=1, epoch=0)
    assert a != plan_batches(lengths, 4, seed=1, epoch=1)
    assert sorted(i for b in a for i in b) == list(range(len(lengths)))
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in a]
    assert max(spread) <= 3  # short and long rows never share a batch


def test_padding_is_never_a_label_even_when_pad_is_eos():
    r = rows([3, 6])
    batch = collate_padded(r, pad_id=r[0].input_ids[-1])
    assert batch["attention_mask"].tolist()[0] == [1, 1, 1, 0, 0, 0]
    assert batch["labels"][0, 3:].tolist() == [IGNORE] * 3


def test_packed_logits_equal_unpacked(chatml_tok):
    model = tiny.llama(chatml_tok)
    r = rows([9, 17, 4, 12], vocab=len(chatml_tok))
    packed = collate_packed(r)
    with torch.no_grad():
        logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits
        start = 0
        for row in r:
            alone = model(input_ids=torch.tensor([row.input_ids]), use_cache=False).logits
            seg = logits[:, start : start + len(row.input_ids)]
            assert torch.allclose(seg, alone, atol=1e-5), (seg - alone).abs().max()
            start += len(row.input_ids)


def test_packed_loss_equals_padded_loss(chatml_tok):
    model = tiny.llama(chatml_tok)
    r = rows([9, 17, 4, 12], vocab=len(chatml_tok))
    with torch.no_grad():
        lp, np_ = loss_sum(model, collate_packed(r))
        ld, nd = loss_sum(model, collate_padded(r, chatml_tok.pad_token_id))
    assert np_ == nd and abs(float(lp) - float(ld)) < 1e-4


def test_packing_masks_each_samples_first_label():
    r = [Rendered([1, 2, 3], [1, 2, 3], Origin("x", 1)), Rendered([4, 5], [4, 5], Origin("x", 2))]
    assert collate_packed(r)["labels"].tolist() == [[IGNORE, 2, 3, IGNORE, 5]]
    assert collate_packed(r)["position_ids"].tolist() == [[0, 1, 2, 0, 1]]


def test_packing_auto_checks_the_model_keeps_samples_apart(chatml_tok, caplog):
    from types import SimpleNamespace

    from tunesmith.model.load import keeps_packed_samples_apart, resolve_packing

    assert keeps_packed_samples_apart(tiny.llama(chatml_tok).train())
    assert keeps_packed_samples_apart(tiny.gpt2(chatml_tok))

    class Leaky(torch.nn.Module):
        """Ignores position ids: every token sees all earlier tokens of the row, packed or not."""

        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(50, 8)

        def get_input_embeddings(self):
            return self.embed

        @property
        def dtype(self):
            return torch.float32

        def forward(self, input_ids, position_ids=None, use_cache=False):
            return SimpleNamespace(logits=self.embed(input_ids).cumsum(1))

    leaky = Leaky().train()
    assert not keeps_packed_samples_apart(leaky) and leaky.training
    assert resolve_packing("auto", leaky) is False and "padded batches" in caplog.text
    assert resolve_packing(True, leaky) is True and resolve_packing(False, tiny.llama(chatml_tok)) is False

    class NoPositions(Leaky):
        def forward(self, input_ids, use_cache=False):
            return SimpleNamespace(logits=self.embed(input_ids))

    assert not keeps_packed_samples_apart(NoPositions())
