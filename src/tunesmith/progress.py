"""One progress display for training: step, loss, tokens/s and ETA."""

from __future__ import annotations

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

FILE_WIDTH = 160  # columns of rich output written to a file or pipe (rich's default there is 80: tables wrap)


def file_wide(console: Console) -> Console:
    """`console`, 160 columns wide when it writes to a file or pipe and no COLUMNS is set."""
    import os

    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = FILE_WIDTH
    return console


def quiet_libraries(verbose: bool = False) -> None:
    """Keep other libraries' chatter out of the user's output (the CLI and the Python API alike): transformers'
    weight-loading bars and notices, bitsandbytes/kernels notices, peft's FutureWarning about transformers'
    own deprecated `is_gradient_checkpointing`. With `verbose`, only the bars go."""
    import logging
    import os
    import warnings

    if not verbose:
        for noisy in ("transformers", "peft", "httpx", "httpx2", "huggingface_hub", "bitsandbytes", "kernels"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        for chatty in ("mlflow", "alembic"):  # trackers: their set-up notices, not their warnings
            logging.getLogger(chatty).setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    if not verbose:
        hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


class TrainProgress:
    """A rich progress bar fed with the loop's step records (a no-op on non-main ranks). Where stderr is not a
    terminal (a log file, CI), a plain log line every `every_s` seconds instead: step, loss, tokens/s, ETA."""

    def __init__(self, total: int, start: int = 0, enabled: bool = True, every_s: float = 30.0):
        import logging
        import time

        self.enabled, self.total, self._start = enabled, total, start
        self._clock, self._started, self._every, self._said = time.perf_counter, time.perf_counter(), every_s, 0.0
        self._log = logging.getLogger("tunesmith")
        self._bar: Progress | None = None
        if not enabled or not Console(stderr=True).is_terminal:
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

    def update(self, record: dict, total: int | None = None) -> None:
        """Show a step's record; `total`: the run's length where it changed (a budget re-planned it)."""
        if not self.enabled:
            return
        self.total = total or self.total
        if self._bar is not None:
            self._bar.update(
                self._task,
                completed=record["step"],
                total=total,
                loss=f"{record['loss']:.4f}",
                tps=f"{record['tokens_per_s']:.0f}",
            )
            return
        seconds = self._clock() - self._started
        if seconds - self._said >= self._every or record["step"] >= self.total:
            self._said = seconds
            done = max(record["step"] - self._start, 1)
            left = (self.total - record["step"]) * seconds / done
            self._log.info(
                "train: step %d/%d, loss %.4f, %.0f tokens/s, %.0fs so far, about %.0fs left",
                record["step"],
                self.total,
                record["loss"],
                record["tokens_per_s"],
                seconds,
                left,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class SearchTable:
    """The learning-rate search as one live table: a row per trial (lr, steps, metric, seconds, status)."""

    def __init__(self, metric: str, enabled: bool = True):
        self.metric, self.enabled = metric, enabled
        self.rows: dict[int, tuple] = {}
        self._live: Live | None = None

    def _table(self):
        from rich.table import Table

        table = Table(title="learning-rate search (successive halving)")
        for name in ("trial", "lr", "steps", self.metric, "seconds", "status"):
            table.add_column(name, justify="right" if name not in ("status",) else "left")
        for k in sorted(self.rows):
            lr, steps, value, seconds, status = self.rows[k]
            table.add_row(
                str(k),
                f"{lr:.0e}",
                "-" if steps is None else str(steps),
                "-" if value is None else f"{value:.4f}",
                "-" if seconds is None else f"{seconds:.0f}",
                status,
            )
        return table

    def update(self, trial: int, lr: float, steps, value, seconds, status: str) -> None:
        old = self.rows.get(trial)
        if old is not None:  # keep the last known metric and time while a trial trains on
            value = old[2] if value is None else value
            seconds = old[3] if seconds is None else seconds
        self.rows[trial] = (lr, steps, value, seconds, status)
        if self._live is not None:
            self._live.update(self._table())

    def __enter__(self) -> SearchTable:
        self._console = file_wide(Console(stderr=True))
        if self.enabled and self._console.is_terminal:  # a file gets the finished table once, at the end
            self._live = Live(self._table(), console=self._console, refresh_per_second=2, transient=False)
            self._live.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.stop()
            self._live = None
        elif self.enabled and self.rows:
            self._console.print(self._table())


class RowProgress:
    """Progress of a long pass over rows (generating answers, scoring references): rows done, tokens/s (`unit`
    says which tokens) and ETA. A rich bar on a terminal; elsewhere (a log file, CI) a plain log line every
    `every_s` seconds and at the end."""

    def __init__(
        self, title: str, total: int, *, enabled: bool = True, every_s: float = 30.0, unit: str = "generated tokens"
    ):
        import logging
        import time

        self.title, self.total, self.rows, self.tokens, self.unit = title, total, 0, 0, unit
        self._clock, self._started, self._every, self._said = time.perf_counter, time.perf_counter(), every_s, 0.0
        self._log = logging.getLogger("tunesmith")
        console = Console(stderr=True)
        self._bar: Progress | None = None
        self.enabled = enabled and total > 0
        if self.enabled and console.is_terminal:
            self._bar = Progress(
                TextColumn(f"[bold]{title}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[tps]} tok/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self._task = self._bar.add_task(title, total=total, tps="-")
            self._bar.start()

    def line(self) -> str:
        """What the log line says: rows done, tokens/s, and the time left at the rate so far."""
        seconds = max(self._clock() - self._started, 1e-9)
        left = (self.total - self.rows) * seconds / max(self.rows, 1)
        return (
            f"{self.title}: {self.rows}/{self.total} rows, {self.tokens / seconds:.0f} {self.unit}/s, "
            f"{seconds:.0f}s so far, about {left:.0f}s left"
        )

    def advance(self, rows: int, tokens: int) -> None:
        self.rows, self.tokens = self.rows + rows, self.tokens + tokens
        if not self.enabled:
            return
        seconds = max(self._clock() - self._started, 1e-9)
        if self._bar is not None:
            self._bar.update(self._task, completed=self.rows, tps=f"{self.tokens / seconds:.0f}")
        elif seconds - self._said >= self._every and self.rows < self.total:
            self._said = seconds
            self._log.info("%s", self.line())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        if self.enabled and self.rows:
            self._log.info("%s", self.line().replace(", about 0s left", ""))
