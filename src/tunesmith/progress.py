"""One progress display for training: step, loss, tokens/s and ETA."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class TrainProgress:
    """A rich progress bar fed with the loop's step records (a no-op on non-main ranks)."""

    def __init__(self, total: int, start: int = 0, enabled: bool = True):
        self.enabled = enabled
        if not enabled:
            return
        self._bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[tps]} tok/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            transient=False,
        )
        self._task = self._bar.add_task("train", total=total, completed=start, loss="-", tps="-")
        self._bar.start()

    def update(self, record: dict) -> None:
        if self.enabled:
            self._bar.update(
                self._task, completed=record["step"], loss=f"{record['loss']:.4f}", tps=f"{record['tokens_per_s']:.0f}"
            )

    def close(self) -> None:
        if self.enabled:
            self._bar.stop()
