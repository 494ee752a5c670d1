"""The selection metric an auto run chooses its settings by: label accuracy (label-constrained greedy answers,
scored in one teacher-forced pass), exact match through `eval.answer_regex`, else held-out loss."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

from tunesmith.data.loader import selection_key
from tunesmith.data.types import Conversation
from tunesmith.evaluate import metrics as m
from tunesmith.evaluate.task import Task, infer_task, score, task_for
from tunesmith.generation import candidate_ids, generate_answers, left_pad
from tunesmith.model.decode import last_positions
from tunesmith.model.load import device_of
from tunesmith.pack import collate_padded
from tunesmith.render import Rendered, render_prompt
from tunesmith.training.loss import mean_loss

log = logging.getLogger("tunesmith")
MIN_ROWS = 20  # fewer selection rows cannot tell settings apart: held-out loss instead
MIN_PER_LABEL = 2
GENERATED_ROWS = 64  # exact match needs generation: scored on at most this many rows
T = TypeVar("T")


@dataclass
class Selector:
    """`selector(model)` is the selection metric on the selection split; `task` is set for label tasks.

    `measure(model, n)` scores the first `n` rows, which are in label round-robin order (every label once
    before any twice), so a prefix is itself a stratified subset; `rows` is how many are scored (`resize`)."""

    metric: str  # "accuracy" | "exact_match" | "eval_loss"
    higher_is_better: bool
    rows: int
    measure: Callable[[torch.nn.Module, int], float]
    task: Task | None = None
    total: int = 0  # rows of the split (the most `rows` may be)
    least: int = MIN_ROWS  # the fewest rows a subset may have (one per label for a label task)

    def __post_init__(self) -> None:
        self.total = self.total or self.rows

    @property
    def ceiling(self) -> float | None:
        """The best value the metric can take: 1.0 for every higher-is-better one here (accuracy, exact match,
        field accuracy, set F1, pass@1 are fractions); a loss has none."""
        return 1.0 if self.higher_is_better else None

    @property
    def tiebreak(self) -> float | None:
        """The gold answers' mean token loss of the last call, where the metric has one: it orders settings
        whose accuracy ties (common early on, when few answers have changed yet). Lower is better."""
        return getattr(self.measure, "loss", None)

    def resize(self, rows: int) -> None:
        """Score the first `rows` rows (between `least` and all of them) from now on."""
        self.rows = max(min(self.least, self.total), min(int(rows), self.total))

    def __call__(self, model: torch.nn.Module) -> float:
        was_training = model.training
        try:
            with torch.no_grad():
                return float(self.measure(model, self.rows))
        finally:
            model.train(was_training)

    def better(self, a: float, b: float | None) -> bool:
        """Whether `a` beats `b` (None: nothing yet)."""
        return b is None or (a > b if self.higher_is_better else a < b)


def label_task(
    train: Sequence[Conversation], held: Sequence[Conversation], answer_regex: str | None, kind: str = "auto"
) -> Task | None:
    """The label task the training answers form, if they do (labels from train and the held-out rows); never
    when `kind` (`eval.task`) names another kind."""
    refs = [c.reference() or "" for c in held if not c.is_text]
    extra = [c.reference() or "" for c in train if not c.is_text]
    if not refs or not extra or kind not in ("auto", "label"):
        return None
    if kind == "auto" and any(c.extra.get("tests") for c in held):
        return None  # rows with tests are code to run, not labels
    task = infer_task(refs, answer_regex=answer_regex, extra_references=extra, kind=kind)
    return task if task.kind == "label" else None


def make_selector(
    convs: Sequence[Conversation],
    rows: Sequence[Rendered],
    train: Sequence[Conversation],
    tokenizer,
    *,
    system_prompt: str | None,
    answer_regex: str | None,
    batch_size: int = 16,
    max_new_tokens: int = 64,
    spec=None,
) -> Selector:
    """The best selection metric these selection rows support (a warning says when it falls back to loss).

    `spec` (the config's `eval` section) names the task kind: json and codes tasks choose by their primary
    metric on generated answers; code tasks by held-out loss (running every answer's tests at every
    selection point costs more than the search can spend)."""
    pad = tokenizer.pad_token_id
    key = {c.origin: "" if c.is_text else selection_key(c, answer_regex) for c in convs}
    rows = interleave(list(rows), lambda r: key.get(r.origin, ""))
    loss = Selector(
        "eval_loss", False, len(rows), lambda model, n: mean_loss(model, _batches(rows[:n], pad, batch_size))
    )
    answered = [c for c in convs if not c.is_text and c.reference() is not None]
    kind = spec.task if spec is not None else "auto"
    task = label_task(train, answered, answer_regex, kind)
    answered = interleave(answered, lambda c: key[c.origin])
    if task is None and spec is not None and len(answered) >= MIN_ROWS:
        refs = [c.reference() or "" for c in answered]
        extra = [c.reference() or "" for c in train if not c.is_text]
        whole = task_for(spec, refs, extra_references=extra, rows_extra=[c.extra for c in answered])
        if whole.kind in ("json", "codes"):
            return Selector(
                whole.primary,
                True,
                min(len(answered), GENERATED_ROWS),
                Generated(whole, answered, tokenizer, system_prompt, max_new_tokens, batch_size, loss.measure),
            )
    if task is not None:
        few = len(answered) < MIN_ROWS or len(answered) < MIN_PER_LABEL * len(task.labels)
        if few:
            log.warning(
                "the selection split has %d rows for %d labels (fewer than %d, or %d per label): too few to "
                "decide by accuracy, so settings are chosen by held-out loss",
                len(answered),
                len(task.labels),
                MIN_ROWS,
                MIN_PER_LABEL,
            )
            return loss
        scorer = ConstrainedAccuracy(task, answered, tokenizer, system_prompt, batch_size * 2)
        return Selector("accuracy", True, len(answered), scorer, task, least=max(MIN_ROWS, len(task.labels)))
    if answer_regex is not None and len(answered) >= MIN_ROWS:
        exact = Task("text", answer_regex, bleu=False)  # primary: exact match of the regex's part
        by_exact = Generated(exact, answered, tokenizer, system_prompt, max_new_tokens, batch_size, loss.measure)
        return Selector("exact_match", True, min(len(answered), GENERATED_ROWS), by_exact)
    if answer_regex is not None:
        log.warning(
            "the selection split has %d rows (< %d): settings are chosen by held-out loss", len(answered), MIN_ROWS
        )
    return loss


class Generated:
    """The task's primary metric on greedy answers to the first `n` rows (at most GENERATED_ROWS), and, as the
    tiebreak (`loss`), the held-out loss of as many rows: early in a search every setting may score 0 on a
    generated metric (no answer right yet), and the loss still tells them apart."""

    def __init__(self, task: Task, convs, tokenizer, system_prompt, max_new_tokens: int, batch_size: int, loss):
        self.task, self.convs, self.tokenizer = task, list(convs), tokenizer
        self.system_prompt, self.max_new_tokens, self.batch_size = system_prompt, max_new_tokens, batch_size
        self._loss = loss
        self.loss: float | None = None

    def __call__(self, model, n: int) -> float:
        sample = self.convs[: min(n, GENERATED_ROWS)]
        answers = generate_answers(
            model,
            self.tokenizer,
            [list(c.prompt_messages()) for c in sample],
            system_prompt=self.system_prompt,
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
        )
        self.loss = float(self._loss(model, len(sample)))
        refs = [c.reference() or "" for c in sample]
        if self.task.primary == "exact_match":  # the one metric needed: not the text metrics around it
            return m.exact_match(answers, refs, self.task.answer_regex)
        return score(self.task, answers, refs, [])["metrics"][self.task.primary]["value"]


def interleave(items: list[T], key: Callable[[T], str]) -> list[T]:
    """`items` taken label by label in turn (each label's rows in their own order), so that every prefix is a
    stratified subset; rows without a label ('') follow in their order."""
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    loose = groups.pop("", [])
    out = []
    for depth in range(max((len(g) for g in groups.values()), default=0)):
        out += [g[depth] for g in groups.values() if depth < len(g)]
    return out + loose


def _batches(rows: Sequence[Rendered], pad: int, size: int) -> list:
    return [collate_padded(list(rows[i : i + size]), pad) for i in range(0, len(rows), size)]


class ConstrainedAccuracy:
    """Accuracy of greedy answers held to the label set, without decoding: greedy decoding restricted to the
    label trie reproduces the gold label exactly when, at each of its tokens, the gold token scores highest
    among the tokens the trie allows after the gold prefix. One forward pass over prompt + gold answer tells."""

    def __init__(self, task: Task, convs: Sequence[Conversation], tokenizer, system_prompt: str | None, batch: int):
        cands = candidate_ids(tokenizer, task.labels, task.label_prefix, end_of_turn=task.answer_regex is None)
        self.children: dict[tuple[int, ...], list[int]] = {}
        for c in cands:
            for j in range(len(c)):
                nxt = self.children.setdefault(tuple(c[:j]), [])
                if c[j] not in nxt:
                    nxt.append(c[j])
        index = {label: i for i, label in enumerate(task.labels)}
        self.rows: list[tuple[list[int], list[int]]] = []  # (prompt ids, gold answer ids)
        for conv in convs:
            gold = task.gold(conv.reference() or "")
            prompt = render_prompt(list(conv.prompt_messages()), tokenizer, system_prompt=system_prompt)
            self.rows.append((prompt, cands[index[gold]] if gold in index else []))
        self.pad, self.batch = tokenizer.pad_token_id, batch
        self.loss: float | None = None  # the gold answers' mean token loss in the last call

    def __call__(self, model, n: int | None = None) -> float:
        model.eval()
        device, correct, nll, tokens = device_of(model), 0, 0.0, 0
        rows = self.rows[: len(self.rows) if n is None else n]
        rows = sorted(rows, key=lambda r: len(r[0]) + len(r[1]))  # batched by length: little padding
        for start in range(0, len(rows), self.batch):
            chunk = [r for r in rows[start : start + self.batch] if r[1]]
            if not chunk:
                continue
            width = max(len(gold) for _, gold in chunk)
            ids, mask = (t.to(device) for t in left_pad([p + g for p, g in chunk], self.pad))
            positions = (mask.cumsum(1) - 1).clamp(min=0)
            logits = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=False,
                logits_to_keep=last_positions(ids.shape[1], width + 1, device),
            ).logits.float()
            for row, (_, gold) in enumerate(chunk):
                scores = logits[row, width - len(gold) : width]
                correct += self._right(scores, gold)
                target = torch.tensor(gold, device=scores.device)
                nll += float(torch.nn.functional.cross_entropy(scores, target, reduction="sum"))
                tokens += len(gold)
        self.loss = nll / max(tokens, 1)
        return correct / max(len(rows), 1)

    def _right(self, logits: torch.Tensor, gold: list[int]) -> bool:
        """logits[j] predicts gold[j]; right when gold[j] wins among the allowed tokens at every branch."""
        for j, token in enumerate(gold):
            allowed = self.children.get(tuple(gold[:j]), [token])
            if len(allowed) > 1 and allowed[int(torch.argmax(logits[j, allowed]))] != token:
                return False
        return True
