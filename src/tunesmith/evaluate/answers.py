"""Generated answers kept in a run folder (`answers.jsonl`): one per (model, prompt, decoding settings), so the
before/after figures of `tunesmith train`, its comparison report and a later `tunesmith eval` on the same data
all read the same answer, generated once; and, the same way, a model's loss on a set of reference rows. Keys are
digests; the file is plain JSON lines (data, never code)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from tunesmith.data.types import Message
from tunesmith.generation import LabelSet, generate_answers
from tunesmith.model.inference import inference_dtype
from tunesmith.render import Rendered, render_prompt
from tunesmith.runfolder import RunFolder

log = logging.getLogger("tunesmith")


def base_identity(model_name: str, dtype: str) -> str:
    """Who answers for the base model: its name and the precision it runs in."""
    return f"base:{model_name}:{dtype}"


def model_dtype(model) -> str:
    """The precision a model computes in (that of its first floating-point weight)."""
    for param in model.parameters():
        if param.is_floating_point():
            return str(param.dtype).removeprefix("torch.")
    return "none"


def weights_identity(run_dir: str | Path, method: str) -> str | None:
    """Who answers for a trained run: a digest of its final weights files (None before they are written)."""
    folder = RunFolder(run_dir).deliverable(method)
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return f"weights:{digest.hexdigest()[:32]}"


class AnswerCache:
    """Answers by key, read from and appended to `path` (None: in memory only). A damaged line is skipped."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self.store: dict[str, str] = {}
        self.generated = 0  # answers the last call generated (the rest were kept ones)
        self._cut = False  # the file ends in a half-written line (a killed writer): start on a new line
        if self.path is not None and self.path.is_file():
            text = self.path.read_text(encoding="utf-8", errors="replace")
            self._cut = bool(text) and not text.endswith("\n")
            for n, line in enumerate(text.splitlines(), 1):
                try:
                    row = json.loads(line)
                    self.store[str(row["key"])] = str(row["answer"])
                except (ValueError, KeyError, TypeError):
                    log.warning("%s:%d: not an answer record, skipped", self.path, n)

    @staticmethod
    def key(
        identity: str, prompt: Sequence[int], max_new_tokens: int, labels: LabelSet | None, precision: str = ""
    ) -> str:
        """The answer's key: who answers, in which precision it decodes, the prompt and the decoding settings."""
        label_part = None if labels is None else [list(labels.labels), labels.prefix, labels.end_of_turn]
        parts = [identity, list(prompt), max_new_tokens, label_part, "greedy", precision]
        blob = json.dumps(parts, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def answers(
        self,
        identity: str | None,
        model,
        tokenizer,
        conversations: list[list[Message]],
        *,
        system_prompt: str | None,
        max_new_tokens: int,
        batch_size: int,
        labels: LabelSet | None = None,
        progress: str | None = None,
    ) -> list[str]:
        """Greedy answers to `conversations`, generating only those not kept yet (everything when `identity`
        is None: an unnamed model is never cached). `progress`: a title to show progress under."""

        def generate(convs: list[list[Message]]) -> list[str]:
            return generate_answers(
                model,
                tokenizer,
                convs,
                system_prompt=system_prompt,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                labels=labels,
                progress=progress,
            )

        if identity is None:
            self.generated = len(conversations)
            return generate(conversations)
        precision = str(inference_dtype(model)).removeprefix("torch.")
        prompts = [render_prompt(c, tokenizer, system_prompt=system_prompt) for c in conversations]
        keys = [self.key(identity, p, max_new_tokens, labels, precision) for p in prompts]
        missing = sorted({k: i for i, k in enumerate(keys) if k not in self.store}.values())
        self.generated = len(missing)
        if missing:
            fresh = generate([conversations[i] for i in missing])
            new = {keys[i]: text for i, text in zip(missing, fresh)}
            self.store.update(new)
            self._append(new)
        if len(missing) < len(keys):
            log.info("reused %d kept answers (%s)", len(keys) - len(missing), self.path)
        return [self.store[k] for k in keys]

    def stats(self, identity: str | None, model, rows: Sequence[Rendered], batch_size: int, compute) -> dict:
        """`compute()` (a model's token statistics on `rows`, in batches of `batch_size`), or the result kept for
        the same model, precision, rows and batching (never kept for an unnamed model)."""
        if identity is None:
            return compute()
        parts = [identity, "token_stats", model_dtype(model), batch_size, [[r.input_ids, r.labels] for r in rows]]
        key = hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()
        if key in self.store:
            try:
                kept = json.loads(self.store[key])
                log.info("reused the kept loss on %d rows (%s)", len(rows), self.path)
                return dict(kept)
            except (ValueError, TypeError):
                pass  # not a loss record: computed again below
        result = compute()
        self.store[key] = json.dumps(result)
        self._append({key: self.store[key]})
        return result

    def _append(self, new: dict[str, str]) -> None:
        if self.path is None:
            return
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                if self._cut:
                    fh.write("\n")
                    self._cut = False
                for k, text in new.items():
                    fh.write(json.dumps({"key": k, "answer": text}, ensure_ascii=False) + "\n")
        except OSError as e:  # a cache that cannot be written costs time later, never the result
            log.warning("could not keep the answers in %s: %s", self.path, e)
