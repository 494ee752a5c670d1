"""Log-likelihood ranking and held-out token statistics are exact: they equal unbatched, unpadded sums."""

import pytest
import torch

import tiny
from tunesmith.data.types import Conversation, Message
from tunesmith.errors import Origin
from tunesmith.evaluate.likelihood import candidate_ids, rank_labels, token_stats
from tunesmith.evaluate.systems import System, pick_shots
from tunesmith.evaluate.task import infer_task
from tunesmith.pack import collate_padded
from tunesmith.render import IGNORE, Rendered, render
from tunesmith.training.loss import mean_loss


def logprob(model, prompt, cand):
    ids = torch.tensor([prompt + cand])
    with torch.no_grad():
        logits = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
    return sum(float(logits[len(prompt) - 1 + j, t]) for j, t in enumerate(cand))


@pytest.mark.parametrize("kind,batch_rows", [("llama", 4), ("llama", 32), ("gpt2", 32)])
def test_rank_labels_equals_unbatched_log_likelihood(kind, batch_rows, chatml_tok, base_tok):
    tok = chatml_tok if kind == "llama" else base_tok
    model = tiny.llama(tok) if kind == "llama" else tiny.gpt2(tok)
    prompts = [
        tok("Hello! How can", add_special_tokens=False).input_ids,
        tok("My order VC-123456 has not arrived yet, where", add_special_tokens=False).input_ids,
        [5],
    ]
    cands = candidate_ids(tok, ["billing", "shipping", "account status"], "category: ", end_of_turn=True)
    assert all(c[-1] == tok.eos_token_id for c in cands)
    got = rank_labels(model, prompts, cands, tok.pad_token_id or 0, batch_rows=batch_rows)
    want = [[logprob(model, p, c) for c in cands] for p in prompts]
    assert [x for row in got for x in row] == pytest.approx([x for row in want for x in row], abs=1e-4)


def test_token_stats_match_training_loss(chatml_tok):
    model = tiny.llama(chatml_tok)
    convs = [
        Conversation(Origin("t", i), (Message("user", q), Message("assistant", a)))
        for i, (q, a) in enumerate(
            [
                ("Hello!", "How can I help you today?"),
                ("Where is it?", "Paris."),
                ("Reset my password", "category: account"),
            ]
        )
    ]
    rows = [render(c, chatml_tok, max_length=64) for c in convs]
    stats = token_stats(model, rows, chatml_tok.pad_token_id, batch_size=2)
    assert stats["eval_loss"] == pytest.approx(
        mean_loss(model, [collate_padded(rows, chatml_tok.pad_token_id)]), abs=1e-5
    )
    assert stats["tokens"] == sum(r.n_trained for r in rows) and 0 <= stats["token_accuracy"] <= 1


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_token_stats_with_a_shared_few_shot_prefix_equal_each_row_alone(kind, chatml_tok, base_tok):
    """Few-shot rows share their long untrained head: computed once and copied, the sums are those of every row
    scored alone, unpadded (and a trained token inside the shared part is never skipped)."""
    from tunesmith.model.decode import MIN_SHARED
    from tunesmith.model.score import _untrained_prefix

    tok = chatml_tok if kind == "llama" else base_tok
    model = tiny.llama(tok) if kind == "llama" else tiny.gpt2(tok)
    shots = [Message("user", "Where is my parcel, it is late?"), Message("assistant", "category: shipping")] * 3
    asks = [("I was charged twice", "category: billing"), ("Reset my password please", "category: account")]
    asks += [("Hi", "category: other"), ("The app crashes when I open settings on my phone", "category: technical")]
    convs = [
        Conversation(Origin("t", i), (Message("user", q), Message("assistant", a))) for i, (q, a) in enumerate(asks)
    ]
    system = System("base_few_shot", "3-shot", "", model, tok, "Answer with a category.", shots=shots)
    rows = [render(system.conversation(c), tok, max_length=512, system_prompt="Answer with a category.") for c in convs]
    assert _untrained_prefix(rows) >= MIN_SHARED  # the shared path is the one under test
    stats = token_stats(model, rows, tok.pad_token_id or 0, batch_size=3)
    alone = [mean_loss(model, [collate_padded([r], tok.pad_token_id or 0)]) for r in rows]
    weights = [r.n_trained for r in rows]
    assert stats["tokens"] == sum(weights)
    assert stats["eval_loss"] == pytest.approx(sum(a * w for a, w in zip(alone, weights)) / sum(weights), abs=1e-5)
    first_trained = min(next(i for i, x in enumerate(r.labels) if x != IGNORE) for r in rows)
    assert _untrained_prefix(rows) < first_trained  # nothing trained inside the shared head
    trained = [Rendered(r.input_ids, [IGNORE] * 3 + r.input_ids[3:], r.origin) for r in rows]
    assert _untrained_prefix(trained) <= 2  # a trained token stops the shared head before it


def test_base_system_runs_with_the_adapter_disabled(chatml_tok):
    from peft import LoraConfig, get_peft_model

    base = tiny.llama(chatml_tok)
    x = torch.tensor([[1, 5, 9, 20]])
    with torch.no_grad():
        plain = base(input_ids=x).logits.clone()
    peft = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)).eval()
    system = System("base_zero_shot", "base", "", peft, chatml_tok, base_of_adapter=True)
    with torch.no_grad():
        assert not torch.allclose(peft(input_ids=x).logits, plain, atol=1e-4)
        with system.active():
            assert torch.allclose(peft(input_ids=x).logits, plain, atol=1e-6)


def test_few_shot_turns_cover_labels_and_are_not_trained(chatml_tok):
    pool = [
        Conversation(Origin("train", i), (Message("user", f"q{i}"), Message("assistant", f"category: {lab}")))
        for i, lab in enumerate(["a"] * 6 + ["b"] * 3 + ["c"])
    ]
    task = infer_task([c.reference() for c in pool], answer_regex=r"category:\s*(\w+)")
    shots = pick_shots(pool, 3, seed=0, task=task)
    assert sorted(m.content for m in shots if m.role == "assistant") == ["category: a", "category: b", "category: c"]
    assert pick_shots(pool, 3, seed=0, task=task) == shots and all(not m.trained for m in shots)
    system = System("few", "few", "", None, chatml_tok, "Classify.", shots)
    test = Conversation(Origin("test", 1), (Message("user", "q?"), Message("assistant", "category: a")))
    rendered = render(system.conversation(test), chatml_tok, max_length=256, system_prompt="Classify.")
    trained = chatml_tok.decode([t for t in rendered.labels if t >= 0])
    assert trained.startswith("category: a") and trained.count("category") == 1
    assert [m.role for m in system.prompt(test)] == ["user", "assistant"] * 3 + ["user"]
