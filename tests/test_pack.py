"""Batching: seeded plans, padding that is never trained, and packing in which samples never see each other."""

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tiny
from tunesmith.config import TrainSpec
from tunesmith.errors import ConfigError, Origin
from tunesmith.pack import batch_tokens, collate_packed, collate_padded, epoch_batches, plan_batches
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


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 300), min_size=1, max_size=400),
    tokens=st.integers(1, 4096),
    grouped=st.booleans(),
    seed=st.integers(0, 5),
)
def test_token_batches_cover_every_row_once_within_the_limit(lengths, tokens, grouped, seed):
    plan = plan_batches(lengths, 8, seed=seed, epoch=0, group_by_length=grouped, tokens=tokens)
    assert sorted(i for b in plan for i in b) == list(range(len(lengths)))
    for b in plan:  # rows x longest row within the limit, or a row too long to share a batch alone
        assert len(b) * max(lengths[i] for i in b) <= tokens or len(b) == 1
    assert plan == plan_batches(lengths, 8, seed=seed, epoch=0, group_by_length=grouped, tokens=tokens)


def test_token_batches_hold_many_short_rows_and_few_long_ones():
    lengths = [20] * 200 + [200] * 200
    plan = plan_batches(lengths, 8, seed=0, epoch=0, tokens=1000)
    sizes = {lengths[b[0]]: len(b) for b in plan if len(b) > 1}
    assert sizes == {20: 50, 200: 5}


def test_auto_batch_tokens_only_for_short_rows_of_an_auto_run_with_batch_size_unset():
    rng = random.Random(0)
    short = [rng.randint(30, 70) for _ in range(1500)]
    long = [rng.randint(150, 400) for _ in range(1500)]
    assert batch_tokens(TrainSpec(), short) is None  # the default counts rows
    auto = batch_tokens(TrainSpec(batch_tokens="auto"), short)
    assert auto is not None and auto == 8 * 256  # batch_size rows of 256 tokens
    rows = len(short) / len(epoch_batches(short, TrainSpec(batch_tokens="auto"), 0))
    assert 30 <= rows <= 50  # ~2048 / 50
    assert batch_tokens(TrainSpec(batch_tokens="auto"), long) is None  # long rows: batch_size rows already fill a step
    assert (
        batch_tokens(TrainSpec(batch_size=8, batch_tokens="auto"), short) is None
    )  # a batch size the user set means rows
    explicit = TrainSpec(lr=1e-3, max_steps=10, batch_tokens="auto")
    assert batch_tokens(explicit, short) is None  # explicit run: as before
    assert batch_tokens(TrainSpec(batch_tokens="auto"), short[:200]) is None  # too few rows: 16+ batches an epoch
    assert batch_tokens(TrainSpec(batch_tokens=512, lr=1e-3, max_steps=5), short) == 512
    assert batch_tokens(TrainSpec(batch_tokens=None), short) is None


@pytest.mark.parametrize("bad", [0, -5, True, "lots"])
def test_batch_tokens_rejects_what_is_not_a_positive_count(bad, tmp_path):
    from tunesmith.config import load_config

    with pytest.raises(ConfigError, match="batch_tokens"):
        load_config({"data": {"train": "x.jsonl"}, "output_dir": str(tmp_path), "train": {"batch_tokens": bad}})


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
