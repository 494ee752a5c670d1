"""The decode loop (`model.decode`) and the model it decodes with (`model.inference`): the same greedy tokens as
transformers' `generate` (batch sizes 1/3/16, with and without an adapter, rows stopping mid-batch), the same
logits with a shared prefix computed once, and a merged copy that follows the adapter's weights."""

import copy
import random

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from peft import LoraConfig, get_peft_model

import tiny
from tunesmith.generation import LabelSet, generate_ids
from tunesmith.model.decode import MIN_SHARED, decode, preallocated_cache, shared_prefix
from tunesmith.model.inference import for_inference, inference_dtype
from tunesmith.precision import decoding_in


def spread(model, scale: float = 4.0):
    """A tiny random model with spread-out logits (a random init's are nearly flat: argmax would sit on ties)."""
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(scale)
    return model


@pytest.fixture(scope="module")
def model(chatml_tok):
    return spread(tiny.llama(chatml_tok, seed=3, hidden=64))


@pytest.fixture(scope="module")
def adapted(chatml_tok):
    base = spread(tiny.llama(chatml_tok, seed=3, hidden=64))
    peft = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0))
    torch.manual_seed(5)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a trained-looking adapter: it changes the answers
    return peft.eval()


def prompts(tok, n: int, seed: int = 0) -> list[list[int]]:
    """`n` prompts of mixed lengths (1 to ~40 tokens) drawn from the tokenizer's vocabulary."""
    rng = random.Random(seed)
    vocab = len(tok)
    return [[rng.randrange(3, vocab) for _ in range(rng.randint(1, 40))] for _ in range(n)]


def stops_mid_batch(model, tok, batch: list[list[int]]) -> list[int]:
    """Stop tokens that end some rows early and not others: the tokens greedy decoding most often picks 3rd."""
    free = decode(model, batch, stop_ids=[], pad_id=tok.pad_token_id, max_new_tokens=6)
    thirds = [row[2] for row in free if len(row) > 2]
    return [max(set(thirds), key=thirds.count)] if thirds else [tok.eos_token_id]


@pytest.mark.parametrize("size", [1, 3, 16])
@pytest.mark.parametrize("which", ["plain", "adapter"])
def test_greedy_tokens_equal_transformers_generate(chatml_tok, model, adapted, size, which):
    m = model if which == "plain" else adapted
    batch = prompts(chatml_tok, size, seed=size)
    stop = stops_mid_batch(m, chatml_tok, batch)
    ref = tiny.hf_generate(m, chatml_tok, batch, 12, stop)
    ours = decode(m, batch, stop_ids=stop, pad_id=chatml_tok.pad_token_id, max_new_tokens=12)
    assert ours == ref
    if size > 1:  # some rows stopped before others: the batch shrank on the way
        assert len({len(r) for r in ours}) > 1


def test_merged_copy_answers_as_the_adapter(chatml_tok, adapted):
    batch = prompts(chatml_tok, 8, seed=7)
    merged = for_inference(adapted)
    assert merged is not adapted and not hasattr(merged, "peft_config")
    ids = torch.tensor([batch[0]])
    gap = (merged(input_ids=ids).logits - adapted(input_ids=ids).logits).abs().max()
    assert gap < 1e-4
    args = dict(stop_ids=[chatml_tok.eos_token_id], pad_id=chatml_tok.pad_token_id, max_new_tokens=10)
    assert decode(merged, batch, **args) == decode(adapted, batch, **args)
    assert for_inference(adapted) is merged  # kept while the adapter's weights are unchanged


def test_merged_copy_follows_the_adapter(chatml_tok):
    base = spread(tiny.llama(chatml_tok, seed=4, hidden=64))
    peft = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0)).eval()
    ids = torch.tensor([prompts(chatml_tok, 1, seed=2)[0]])
    first = for_inference(peft)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.add_(0.3)  # what an optimizer step does: in place
    second = for_inference(peft)
    assert second is not first
    assert (second(input_ids=ids).logits - peft(input_ids=ids).logits).abs().max() < 1e-4
    with peft.disable_adapter():
        plain = for_inference(peft)
        assert (plain(input_ids=ids).logits - peft(input_ids=ids).logits).abs().max() < 1e-5
    plain_fp32 = tiny.llama(chatml_tok, seed=4).eval()
    packed = for_inference(plain_fp32)  # plain and float32 already: a copy only to pack its linear layers
    assert packed is not plain_fp32 and for_inference(plain_fp32) is packed
    assert (packed(input_ids=ids).logits - plain_fp32(input_ids=ids).logits).abs().max() < 1e-5
    assert for_inference(packed) is packed  # nothing left to change: itself


def test_a_bf16_model_decodes_in_float32_as_the_fp32_model_does(chatml_tok, model):
    """On a CPU, generation runs a float32 copy: a bf16 model answers as its float32 weights do (bf16 decoding
    made answers depend on the batch)."""
    half = spread(tiny.llama(chatml_tok, seed=3, hidden=64)).to(torch.bfloat16)
    full = copy.deepcopy(half).float()  # the same weights, as float32
    decoded = for_inference(half)
    assert decoded is not half and next(decoded.parameters()).dtype == torch.float32
    assert next(half.parameters()).dtype == torch.bfloat16  # the caller's model is left as it was
    batch = prompts(chatml_tok, 6, seed=9)
    assert generate_ids(half, chatml_tok, batch, max_new_tokens=8) == generate_ids(
        full, chatml_tok, batch, max_new_tokens=8
    )


def test_precision_model_decodes_in_the_weights_own_dtype(chatml_tok, tmp_path):
    """eval.precision / --precision model: a bf16 model decodes in bf16 (no float32 copy), its answers kept under
    their own key; outside the block float32 again; an unknown precision is refused."""
    from tunesmith.data.types import Message
    from tunesmith.evaluate.answers import AnswerCache

    half = spread(tiny.llama(chatml_tok, seed=3, hidden=64)).to(torch.bfloat16)
    cache = AnswerCache(tmp_path / "answers.jsonl")
    convs = [[Message("user", f"ticket {i}")] for i in range(3)]
    args = dict(system_prompt=None, max_new_tokens=4, batch_size=2)
    cache.answers("m", half, chatml_tok, convs, **args)
    with decoding_in("model"):
        assert inference_dtype(half) == torch.bfloat16
        assert next(for_inference(half).parameters()).dtype == torch.bfloat16  # no float32 copy (a packed bf16 one)
        with decoding_in(None):  # None: as the enclosing block says
            assert inference_dtype(half) == torch.bfloat16
        cache.answers("m", half, chatml_tok, convs, **args)
        assert cache.generated == 3  # the float32 answers are not reused for bf16 decoding
    assert inference_dtype(half) == torch.float32
    with pytest.raises(ValueError, match="float32, model"), decoding_in("fp8"):
        pass


def test_cli_precision_defaults_to_the_runs_eval_precision(tmp_path):
    from tunesmith.cli import _precision, build_parser

    parser = build_parser()
    for verb in ("eval", "generate", "chat", "serve"):
        extra = ["--prompt", "p"] if verb == "generate" else []
        assert parser.parse_args([verb, "run", *extra, "--precision", "model"]).precision == "model"
        assert _precision(parser.parse_args([verb, str(tmp_path / "missing"), *extra])) is None  # no run: no say
    assert _precision(parser.parse_args(["check", "data.jsonl"])) is None
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("data:\n  train: train.jsonl\neval:\n  precision: model\n")
    assert _precision(parser.parse_args(["generate", str(run), "--prompt", "p"])) == "model"
    assert _precision(parser.parse_args(["generate", str(run), "--prompt", "p", "--precision", "float32"])) == "float32"


def test_shared_prefix_gives_the_same_logits(chatml_tok, model):
    rng = random.Random(1)
    head = [rng.randrange(3, len(chatml_tok)) for _ in range(MIN_SHARED + 9)]
    batch = [head + p for p in prompts(chatml_tok, 5, seed=11)]
    assert shared_prefix(batch) == len(head)
    seen: dict[bool, list[torch.Tensor]] = {True: [], False: []}

    for share in (True, False):

        def keep(logits, rows, generated, share=share):
            seen[share].append(logits.clone())
            return logits.argmax(-1).tolist()

        pad = chatml_tok.pad_token_id
        decode(model, batch, stop_ids=[], pad_id=pad, max_new_tokens=5, pick=keep, share_prefix=share)
    assert len(seen[True]) == len(seen[False]) == 5
    for a, b in zip(seen[True], seen[False]):
        assert (a - b).abs().max() <= 1e-5


def test_shared_prefix_leaves_every_prompt_a_token_of_its_own():
    assert shared_prefix([[1, 2, 3], [1, 2, 3]]) == 2
    assert shared_prefix([[1, 2, 3]]) == 0
    assert shared_prefix([[5, 2], [1, 2]]) == 0
    assert shared_prefix([[1, 2, 3, 4], [1, 2, 9]]) == 2


def test_preallocated_cache_grows_past_its_plan(chatml_tok, model):
    batch = prompts(chatml_tok, 3, seed=4)
    cache = preallocated_cache(model, 2)  # far too small: it must double, not fail or drop positions
    ids = torch.tensor([batch[0]])
    model(input_ids=ids, cache=cache, use_cache=True)
    assert cache.get_seq_length() == len(batch[0])
    full = model(input_ids=torch.tensor([batch[0] + [7]])).logits[0, -1]
    step = model(input_ids=torch.tensor([[7]]), cache=cache, use_cache=True).logits[0, -1]
    assert (full - step).abs().max() < 1e-4


def test_each_row_alone_equals_the_batch(chatml_tok, adapted):
    """Batch invariance on the tiny model: a row's greedy answer alone is its answer in a batch of 16 mixed
    lengths (fp32, left padding, finished rows dropped)."""
    batch = prompts(chatml_tok, 16, seed=21)
    args = dict(max_new_tokens=10)
    together = generate_ids(adapted, chatml_tok, batch, **args)
    alone = [generate_ids(adapted, chatml_tok, [p], **args)[0] for p in batch]
    assert together == alone


def test_label_set_holds_in_the_new_loop(chatml_tok, adapted):
    labels = LabelSet(("billing", "shipping", "account"), "category: ")
    allowed = {tuple(chatml_tok("category: " + x, add_special_tokens=False).input_ids) for x in labels.labels}
    for row in generate_ids(adapted, chatml_tok, prompts(chatml_tok, 6, seed=3), labels=labels):
        assert tuple(row) in allowed


def test_the_copy_follows_a_fused_adamw_step(chatml_tok):
    """PyTorch's fused AdamW updates weights without a new tensor version: a copy kept by version stayed the
    untrained model after training (a full fine-tune's tuned answers were its base model's)."""
    half = spread(tiny.llama(chatml_tok, seed=6, hidden=64)).to(torch.bfloat16)
    before = for_inference(half)
    optimizer = torch.optim.AdamW(half.parameters(), lr=1e-2, fused=True)
    ids = torch.tensor([prompts(chatml_tok, 1, seed=3)[0]])
    half(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    after = for_inference(half)
    assert after is not before
    gap = (after(input_ids=ids).logits - half.float()(input_ids=ids).logits).abs().max()
    assert gap < 1e-4


@pytest.mark.parametrize("which", ["plain", "adapted"])
def test_prompts_joined_together_answer_as_each_alone(chatml_tok, model, adapted, which):
    """`Batch.join_many` (serve: the prompts that arrive together, their shared system prompt computed once)
    gives each row the greedy tokens it gets decoded alone, also when it joins a batch already decoding."""
    from tunesmith.model.decode import Batch

    m = model if which == "plain" else adapted
    rng = random.Random(2)
    head = [rng.randrange(3, len(chatml_tok)) for _ in range(MIN_SHARED + 5)]
    batch = [head + p for p in prompts(chatml_tok, 6, seed=21)]
    pad = chatml_tok.pad_token_id
    alone = [decode(m, [p], stop_ids=[], pad_id=pad, max_new_tokens=6)[0] for p in batch]
    names = [None if which == "plain" else "default"] * len(batch)
    with torch.no_grad():
        together = Batch(m, pad)
        first = together.join_many(batch[:1], names[:1], 6)  # decoding before the others arrive
        out = [[int(first[0].argmax())]]
        out[0].append(int(together.step([out[0][-1]])[0].argmax()))
        logits = together.join_many(batch[1:], names[1:], 6)
        out += [[int(row.argmax())] for row in logits]
        for _ in range(5):
            for row, lg in zip(out, together.step([row[-1] for row in out])):
                row.append(int(lg.argmax()))
    assert [row[:6] for row in out] == alone  # the first row ran one step ahead of the others


@pytest.mark.parametrize("head", [0, MIN_SHARED + 3])
def test_prefill_in_passes_answers_as_one_pass_and_each_alone(chatml_tok, adapted, monkeypatch, head):
    """Prompts of mixed lengths prefilled in several passes (each left-padded to its own widest, then right-aligned
    in one cache) get the greedy tokens and, to float32 rounding, the logits of one pass, and each row's own answer
    alone; with and without a shared head."""
    from tunesmith.model import decode as module

    rng = random.Random(8)
    shared = [rng.randrange(3, len(chatml_tok)) for _ in range(head)]
    batch = [shared + p for p in prompts(chatml_tok, 12, seed=31)]
    widths = sorted((len(p) - head for p in batch), reverse=True)
    seen: dict[str, list[torch.Tensor]] = {"one": [], "many": []}

    def run(name: str) -> list[list[int]]:
        def keep(logits, rows, generated):
            seen[name].append(logits[torch.tensor(rows).argsort()].clone())  # in prompt order
            return logits.argmax(-1).tolist()

        merged = for_inference(adapted)
        return decode(merged, batch, stop_ids=[], pad_id=chatml_tok.pad_token_id, max_new_tokens=6, pick=keep)

    one = run("one")
    monkeypatch.setattr(module, "PASS_TOKENS", 64)
    monkeypatch.setattr(module, "MIN_PASS_TOKENS", 8)
    assert len(module.passes(widths)) >= 4
    many = run("many")
    assert many == one
    assert many == [generate_ids(adapted, chatml_tok, [p], max_new_tokens=6)[0] for p in batch]
    assert (seen["one"][0] - seen["many"][0]).abs().max() <= 1e-5  # the prefill's logits, every row


@given(st.lists(st.integers(1, 300), min_size=1, max_size=60), st.booleans())
def test_passes_take_every_row_once_in_order_within_the_budget(widths, longest_first):
    from tunesmith.model.decode import MIN_PASS_TOKENS, PASS_PADDING, PASS_TOKENS, passes

    if longest_first:
        widths = sorted(widths, reverse=True)
    got = passes(widths)
    assert [i for rows in got for i in rows] == list(range(len(widths)))
    for rows in got:
        tokens = len(rows) * max(widths[i] for i in rows)
        assert len(rows) == 1 or tokens <= PASS_TOKENS
        before = rows[:-1]
        if len(rows) > 1 and len(before) * max(widths[i] for i in before) >= MIN_PASS_TOKENS:
            assert tokens - sum(widths[i] for i in rows) <= PASS_PADDING * tokens


def test_progress_hears_every_row_and_token(chatml_tok, model):
    batch = prompts(chatml_tok, 9, seed=13)
    heard = [0, 0]

    def progress(rows: int, tokens: int) -> None:
        heard[0] += rows
        heard[1] += tokens

    stops = stops_mid_batch(model, chatml_tok, batch)
    out = decode(model, batch, stop_ids=stops, pad_id=chatml_tok.pad_token_id, max_new_tokens=7, progress=progress)
    assert heard == [len(batch), sum(len(row) for row in out)]
    assert any(len(row) < 7 for row in out)  # some rows stopped early


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("pass_tokens", [4096, 48])
@pytest.mark.parametrize("shared", [MIN_SHARED + 7, 0])
def test_a_shared_head_kept_once_answers_as_a_copy_per_row(chatml_tok, monkeypatch, arch, pass_tokens, shared):
    """With tunesmith's attention, the shared head's keys are kept once and every row reads them (prefill and
    steps), and the prefill is packed (the rows' tokens end to end, no padding): the logits of a copy per row in
    left-padded passes (SDPA) at every step, the same greedy tokens, and each row's own answer alone; in one prefill
    pass or several, with a shared head and without."""
    from tunesmith.model import attention
    from tunesmith.model import decode as module

    monkeypatch.setattr(module, "PASS_TOKENS", pass_tokens)
    monkeypatch.setattr(module, "MIN_PASS_TOKENS", 8)
    used, packed = [], []
    real, pack = attention.shared_head_attention, attention.PackedRows.pack
    monkeypatch.setattr(attention, "shared_head_attention", lambda *a, **kw: used.append(1) or real(*a, **kw))
    monkeypatch.setattr(attention.PackedRows, "pack", lambda self, out: packed.append(self.rows_n) or pack(self, out))
    rng = random.Random(12)
    head = [rng.randrange(3, len(chatml_tok)) for _ in range(shared)]
    batch = [head + p for p in prompts(chatml_tok, 9, seed=41)]
    build = tiny.llama if arch == "llama" else tiny.gpt2
    seen: dict[str, list[torch.Tensor]] = {}
    out = {}
    for name in ("sdpa", attention.register()):
        model = spread(build(chatml_tok, seed=7)).eval()
        model.set_attn_implementation(name)
        seen[name] = []

        def keep(logits, rows, generated, name=name):
            seen[name].append(logits[torch.tensor(rows).argsort()].clone())
            return logits.argmax(-1).tolist()

        args = dict(stop_ids=[], pad_id=chatml_tok.pad_token_id, max_new_tokens=6)
        out[name] = decode(model, batch, pick=keep, **args)
    assert used  # tunesmith's attention ran (the kept-once head read, where there is one)
    layers = spread(build(chatml_tok, seed=7)).config.num_hidden_layers
    assert sum(packed) == len(batch) * layers  # every row prefilled packed, in every layer
    own = sorted((len(p) - len(head) for p in batch), reverse=True)
    assert len(packed) == layers * len(module.passes(own))  # in the passes of rows of similar length
    assert len(packed) > layers or pass_tokens > 48  # several passes where the budget is small
    assert out[attention.NAME] == out["sdpa"]
    for a, b in zip(seen["sdpa"], seen[attention.NAME]):
        assert (a - b).abs().max() <= 1e-5
    assert out[attention.NAME] == [decode(model, [p], **args)[0] for p in batch]


def test_a_model_whose_attention_ignores_the_packed_rows_is_caught(chatml_tok):
    from tunesmith.model.decode import prefill

    model = tiny.llama(chatml_tok).eval()  # SDPA: drops the unknown keyword, and the rows would see each other

    def forward(cache, ids, mask, positions, rows, head, packed=None):
        kw = {"packed_rows": packed} if packed is not None else {}
        return model(input_ids=ids, cache=cache, attention_mask=mask, position_ids=positions, **kw).logits[0]

    with pytest.raises(RuntimeError, match="0 of 2 layers attended to the packed rows apart"), torch.no_grad():
        prefill(forward, lambda c: preallocated_cache(model, c), [[5, 6, 7], [8, 9]], 0, 0, 4, "cpu", packed=True)


def test_a_model_whose_attention_ignores_the_shared_head_is_caught(chatml_tok):
    from tunesmith.model.decode import prefill

    model = tiny.llama(chatml_tok).eval()  # SDPA: drops the unknown keyword

    def forward(cache, ids, mask, positions, rows, head):
        kw = {"shared_head": head} if head is not None else {}
        return model(
            input_ids=ids, cache=cache, attention_mask=mask, position_ids=positions, use_cache=True, **kw
        ).logits[:, -1]

    batch = [[5] * MIN_SHARED + [6, 7], [5] * MIN_SHARED + [8]]
    with pytest.raises(RuntimeError, match="0 of 2 layers attended to the shared head"), torch.no_grad():
        prefill(forward, lambda c: preallocated_cache(model, c), batch, MIN_SHARED, 0, 4, "cpu", split=True)


@pytest.mark.parametrize("which", ["mistral", "gemma2"])
def test_attention_that_is_not_plain_causal_is_decoded_as_transformers_does(chatml_tok, which):
    """A sliding window or soft-capped logits: the shared head and the packed prefill (which compute plain causal
    attention) are not used, and the decode loop gives transformers' own logits and greedy tokens (its SDPA, or its
    eager attention for Gemma2, which has no SDPA), with prompts that share a head longer than the window."""
    from tunesmith.model import attention
    from tunesmith.model.attention import plain_causal, takes_shared_head

    rng = random.Random(5)
    head = [rng.randrange(3, len(chatml_tok)) for _ in range(MIN_SHARED + 4)]
    batch = [head + p for p in prompts(chatml_tok, 5, seed=17)]
    out, seen = {}, {}
    reference = "sdpa" if which == "mistral" else "eager"
    for name in (reference, attention.register()):
        model = spread(tiny.windowed(chatml_tok, which))
        model.set_attn_implementation(name)
        assert not plain_causal(model) and not takes_shared_head(model)
        seen[name] = []

        def keep(logits, rows, generated, name=name):
            seen[name].append(logits[torch.tensor(rows).argsort()].clone())
            return logits.argmax(-1).tolist()

        out[name] = decode(model, batch, stop_ids=[], pad_id=chatml_tok.pad_token_id, max_new_tokens=5, pick=keep)
    assert out[attention.NAME] == out[reference] == tiny.hf_generate(model, chatml_tok, batch, 5, [-1])
    for a, b in zip(seen[reference], seen[attention.NAME]):
        assert (a - b).abs().max() <= 1e-5
    from tunesmith.model.decode import Batch

    with torch.no_grad():  # serve's batch, told the head every request starts with: each row as transformers has it
        served = Batch(model, chatml_tok.pad_token_id)
        got = [[int(row.argmax())] for row in served.join_many(batch, [None] * len(batch), 5, head=len(head))]
        for _ in range(4):
            for row, logits in zip(got, served.step([row[-1] for row in got])):
                row.append(int(logits.argmax()))
    assert got == out[reference]


def test_plain_causal_attention_is_told_from_windows_caps_and_sinks(chatml_tok):
    from tunesmith.model.attention import plain_causal

    assert plain_causal(tiny.llama(chatml_tok)) and plain_causal(tiny.gpt2(chatml_tok))
    assert not plain_causal(tiny.windowed(chatml_tok, "mistral"))
    assert not plain_causal(tiny.windowed(chatml_tok, "gemma2"))
    sinks = tiny.llama(chatml_tok)
    sinks.model.layers[0].self_attn.sinks = torch.nn.Parameter(torch.zeros(4))  # as gpt-oss's attention has
    assert not plain_causal(sinks)


def test_a_shared_head_refuses_attention_it_does_not_compute():
    from tunesmith.model.attention import BlockedAttention, SharedHead

    q = k = v = torch.zeros(1, 2, 1, 4)
    head = SharedHead([torch.zeros(1, 2, 3, 4)], [torch.zeros(1, 2, 3, 4)])
    module = torch.nn.Module()
    module.layer_idx = 0
    with pytest.raises(ValueError, match="without softcap"), torch.no_grad():
        BlockedAttention()(module, q, k, v, None, shared_head=head, softcap=5.0)
