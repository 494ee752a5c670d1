"""Label-constrained decoding: every answer is one of the label set's answers, even from an untrained model,
batched or one row at a time, streamed or not; and the label set's file."""

import json
import random
import re
import string

import pytest
import torch

import tiny
from tunesmith.data.types import Message
from tunesmith.errors import RunError
from tunesmith.generation import (
    LabelSet,
    LabelTrie,
    candidate_ids,
    generate_answers,
    generate_batch,
    generate_tokens,
    stream_answer,
)
from tunesmith.render import render_prompt, stop_token_ids

QUESTIONS = [
    "Hello",
    "My order VC-123456 has not arrived yet, where is it?",
    "Please reset my password, I am locked out.",
    "x",
    "What is the capital of France?",
]


@pytest.fixture(scope="module")
def untrained(chatml_tok):
    return tiny.llama(chatml_tok, seed=1)


def convs(questions=QUESTIONS):
    return [[Message("user", q)] for q in questions]


def raw_prompts(tok):
    """Plain-text prompts of different lengths and endings: the random model's choices differ between them
    (after a chat template's shared ending, they would not)."""
    texts = [*QUESTIONS, "The quick brown fox", "category:", "Hello! How can I help"]
    return [tok(t, add_special_tokens=False).input_ids for t in texts]


def random_label_set(rng: random.Random) -> LabelSet:
    """Words from the tokenizer's corpus, random letters, non-ASCII text, and labels that prefix one another."""
    pool = ["billing", "bill", "shipping", "ship", "account", "account status", "refund", "Paris", "café", "日本"]
    letters = ["".join(rng.choices(string.ascii_lowercase + "-_", k=rng.randint(1, 9))) for _ in range(4)]
    labels = rng.sample(pool + letters, rng.randint(2, 8))
    return LabelSet(tuple(labels), rng.choice(["", "category: ", "label="]), end_of_turn=True)


def test_every_answer_is_a_label_for_random_label_sets(chatml_tok, untrained):
    # unconstrained, the untrained model answers nothing at all (eos first)
    assert generate_answers(untrained, chatml_tok, convs(), system_prompt=None, max_new_tokens=8) == [""] * 5
    rng, seen = random.Random(0), set()
    for _ in range(12):
        labels = random_label_set(rng)
        valid = {labels.prefix + label for label in labels.labels}
        # a budget of 2 tokens is raised to fit the longest label
        chat = generate_answers(untrained, chatml_tok, convs(), system_prompt=None, max_new_tokens=2, labels=labels)
        raw = generate_batch(untrained, chatml_tok, raw_prompts(chatml_tok), max_new_tokens=2, labels=labels)
        assert set(chat) <= valid and set(raw) <= valid, (labels, chat, raw)
        seen |= {a.removeprefix(labels.prefix) for a in raw}
    assert len(seen) >= 12  # not one constant answer: the choice follows the model's own preferences


@pytest.mark.parametrize("end_of_turn", [True, False])
def test_batched_equals_one_row_at_a_time_and_streamed(chatml_tok, untrained, end_of_turn):
    labels = LabelSet(("billing", "shipping", "account status", "bill", "Paris"), "", end_of_turn)
    prompts = raw_prompts(chatml_tok)
    batched = generate_batch(untrained, chatml_tok, prompts, max_new_tokens=24, labels=labels)
    alone = [generate_batch(untrained, chatml_tok, [p], max_new_tokens=24, labels=labels)[0] for p in prompts]
    trie, stops = LabelTrie.of(labels, chatml_tok), stop_token_ids(chatml_tok)
    streamed = [
        chatml_tok.decode(list(generate_tokens(untrained, p, max_new_tokens=24, stop_ids=stops, constraint=trie)))
        for p in prompts
    ]
    assert batched == alone == [s.strip() for s in streamed]
    assert len(set(batched)) >= 3 and len({len(p) for p in prompts}) > 3  # different answers, really padded
    chats = generate_answers(untrained, chatml_tok, convs(), system_prompt=None, max_new_tokens=24, labels=labels)
    one_by_one = [
        "".join(stream_answer(untrained, chatml_tok, c, system_prompt=None, max_new_tokens=24, labels=labels)).strip()
        for c in convs()
    ]
    assert chats == one_by_one


def test_without_end_of_turn_the_answer_starts_with_a_whole_label(chatml_tok, untrained):
    """The answer may go on after the label (tests/serve/test_label_answers.py shows a trained one doing so),
    but never glues more of a word onto it: 'bill' is not a way to write 'billing' or 'bills'."""
    labels = LabelSet(("billing", "shipping", "account", "bill", "ship"), "category: ", end_of_turn=False)
    answers = generate_batch(untrained, chatml_tok, raw_prompts(chatml_tok), max_new_tokens=24, labels=labels)
    for a in answers:
        label = max((x for x in labels.labels if a.startswith("category: " + x)), key=len, default=None)
        assert label is not None, a
        assert not re.match(r"\w", a[len("category: " + label) :][:1]), a
    held = LabelSet(labels.labels, labels.prefix, end_of_turn=True)
    whole = {"category: " + label for label in labels.labels}
    assert set(generate_batch(untrained, chatml_tok, raw_prompts(chatml_tok), labels=held)) <= whole


def test_a_label_is_not_glued_to_more_of_its_word():
    trie = LabelTrie([[1, 2], [1, 2, 3], [5, 6]], [0], end_of_turn=False, glued=[True, True, False], boundary=[7, 8])
    assert sorted(trie.allowed([1, 2])) == [0, 3, 7, 8]  # stop, the longer label, or a boundary token
    assert trie.allowed([1, 2, 7]) is None and trie.allowed([5, 6]) is None  # after it (or no word end): free


def test_the_trie_follows_labels_that_prefix_one_another():
    trie = LabelTrie([[1, 2], [1, 2, 3], [4]], stop_ids=[0, 9], end_of_turn=True)
    assert sorted(trie.allowed([])) == [1, 4]
    assert trie.allowed([1]) == [2]
    assert sorted(trie.allowed([1, 2])) == [0, 3, 9]  # end here (stop) or go on to the longer label
    assert sorted(trie.allowed([1, 2, 3])) == [0, 9] and sorted(trie.allowed([4])) == [0, 9]
    assert trie.allowed([1, 2, 0]) is None  # ended
    free = LabelTrie([[1, 2], [1, 2, 3]], stop_ids=[0], end_of_turn=False)
    assert free.allowed([1]) == [2] and free.allowed([1, 2]) is None and free.allowed([1, 2, 7, 8]) is None


def test_boundary_tokens_start_with_no_word_character(chatml_tok):
    from tunesmith.generation import boundary_tokens

    ids = boundary_tokens(chatml_tok)
    texts = {chatml_tok.decode([i]) for i in ids}
    assert "\n" in texts and any(t.startswith(" ") and len(t) > 1 for t in texts)
    assert not any(re.match(r"\w", t) for t in texts) and boundary_tokens(chatml_tok) is ids  # worked out once


def test_label_paths_are_the_whole_answer_tokenized(chatml_tok):
    labels = LabelSet(("billing", "account status"), "category: ")
    trie = LabelTrie.of(labels, chatml_tok)
    for path in candidate_ids(chatml_tok, labels.labels, labels.prefix, end_of_turn=False):
        assert path == chatml_tok("category: " + chatml_tok.decode(path)[len("category: ") :]).input_ids
        node = 0
        for token in path:
            node = trie.children[node][token]
        assert trie.complete[node]


def test_sampling_stays_within_the_labels(chatml_tok, untrained):
    labels = LabelSet(("billing", "shipping", "account"), "", end_of_turn=True)
    prompts = [render_prompt(c, chatml_tok, system_prompt=None) for c in convs()] * 4
    torch.manual_seed(0)
    answers = generate_batch(untrained, chatml_tok, prompts, max_new_tokens=8, temperature=1.5, labels=labels)
    assert set(answers) <= set(labels.labels) and len(set(answers)) > 1


def test_label_set_file(tmp_path):
    path = tmp_path / "labels.json"
    assert LabelSet.from_file(path) is None
    path.write_text(
        json.dumps({"labels": ["a", "b"], "prefix": "category: ", "answer_regex": "x", "end_of_turn": False})
    )
    assert LabelSet.from_file(path) == LabelSet(("a", "b"), "category: ", end_of_turn=False)
    path.write_text(json.dumps({"labels": ["a"], "answer_regex": None}))
    assert LabelSet.from_file(path) == LabelSet(("a",), "", end_of_turn=True)
    for bad, where in [
        ("{not json", "cannot be read"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"labels": []}), "field 'labels'"),
        (json.dumps({"labels": ["a", 3]}), "field 'labels'"),
        (json.dumps({"labels": ["a"], "prefix": 1}), "field 'prefix'"),
        (json.dumps({"labels": ["a"], "end_of_turn": "yes"}), "field 'end_of_turn'"),
    ]:
        path.write_text(bad)
        with pytest.raises(RunError, match=where) as err:
            LabelSet.from_file(path)
        assert str(path) in str(err.value)


@pytest.mark.parametrize("temperature, top_p", [(2.2e-16, 5e-324), (1.0, 5e-324), (2.0, 1e-45), (2.2e-277, 1.0)])
def test_sampling_keeps_the_top_token_for_any_top_p(temperature, top_p):
    """Found by fuzzing the server: a top_p below float32's smallest number kept no token at all, and a tiny
    temperature overflowed the logits to inf (NaN probabilities)."""
    from tunesmith.generation import sample

    logits = torch.tensor([0.0, 3.0, 1.0])
    assert sample(logits, temperature, top_p, torch.Generator().manual_seed(0)) == 1


def test_generation_batches_grow_to_the_cache_budget_and_answer_the_same(chatml_tok, monkeypatch):
    import tunesmith.generation as generation

    model = tiny.llama(chatml_tok, seed=3, hidden=64)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(4.0)  # spread-out logits: answers that differ by prompt
    labels = LabelSet(("billing", "shipping", "account"), "category: ", end_of_turn=False)  # free text after it
    questions = [q * k for q in QUESTIONS for k in (1, 2)]
    sizes: list[int] = []
    decode = generation.decode

    def counted(model, prompts, **kw):
        sizes.append(len(prompts))
        return decode(model, prompts, **kw)

    monkeypatch.setattr(generation, "decode", counted)
    alone = [
        generate_answers(model, chatml_tok, [c], system_prompt=None, max_new_tokens=12, labels=labels)[0]
        for c in convs(questions)
    ]
    sizes.clear()
    together = generate_answers(
        model, chatml_tok, convs(questions), system_prompt=None, max_new_tokens=12, labels=labels, batch_size=4
    )
    assert together == alone and len(set(alone)) >= 3  # answers that differ row by row
    assert sizes == [10]  # 4 x 4 rows allowed, the 1 GiB budget far away: one batch
    per_token = generation.cache_bytes_per_token(generation.for_inference(model))
    longest = max(len(render_prompt(c, chatml_tok, system_prompt=None)) for c in convs(questions)) + 12
    monkeypatch.setattr(generation, "CACHE_BUDGET", 3 * per_token * longest)  # room for 3 of the longest rows
    sizes.clear()
    assert (
        generate_answers(
            model, chatml_tok, convs(questions), system_prompt=None, max_new_tokens=12, labels=labels, batch_size=4
        )
        == alone
    )
    assert sizes[0] == 3 and sum(sizes) == len(questions) and max(sizes) > 3  # shorter rows later: more per batch
