"""metrics.jsonl (one JSON object per logged step), plus TensorBoard when it is installed."""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger("tunesmith")


class MetricsWriter:
    """Append-only step metrics. On resume, lines past the resumed step are dropped so the curve continues."""

    def __init__(self, path: Path, *, resume_step: int = 0, enabled: bool = True, log_every: int = 1):
        self.path, self.enabled, self.log_every = path, enabled, log_every
        self._tb = None
        if not enabled:
            return
        kept = [r for r in read_metrics(path) if r.get("step", 0) <= resume_step] if resume_step else []
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(path.parent / "tensorboard"))
        except ImportError:
            log.debug("tensorboard not installed: metrics go to %s only", path)

    def __call__(self, record: dict) -> None:
        if not self.enabled or (record["step"] % self.log_every and "eval_loss" not in record):
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: Path) -> list[dict]:
    """The logged records of a run (an absent file is an empty list)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
