"""Terminal output of a run: rich progress bars and one summary line per epoch, mirrored to train.log."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RunLog:
    """Prints to the terminal and appends the same plain lines to ``train.log``."""

    def __init__(self, path: Path | None, console: Console | None = None, enabled: bool = True) -> None:
        self.path = path
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.enabled = enabled

    def info(self, text: str) -> None:
        if not self.enabled:
            return
        self.console.print(text, markup=False)
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")

    def epoch_line(self, row: dict[str, float], metric_key: str) -> None:
        parts = [f"epoch {int(row['epoch'])}"]
        for k, v in row.items():
            # per-class figures ("val/iou/cat") stay in results.csv; the line shows the summary figures
            if k.startswith(("train/", "val/")) and k.count("/") == 1 and isinstance(v, float):
                parts.append(f"{k} {v:.4f}")
        parts += [f"lr {row['lr']:.3g}", f"{row['img_per_s']:.0f} img/s", f"{row['time_s']:.1f}s"]
        self.info("  ".join(parts))


class EpochProgress:
    """One transient progress bar per epoch with loss and images/s."""

    def __init__(self, enabled: bool = True, console: Console | None = None) -> None:
        # Without a terminal (logs, CI, pipes) a transient bar leaves only blank lines: the epoch lines suffice.
        self.enabled = enabled and (console or Console()).is_terminal
        self.progress = None
        if self.enabled:
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
            )  # fmt: skip

    def start(self, description: str, total: int):
        if not self.enabled:
            return None
        self.progress.start()
        return self.progress.add_task(description, total=total, info="")

    def advance(self, bar, completed: int, info: str) -> None:
        if bar is not None:
            self.progress.update(bar, completed=completed, info=info)

    def stop(self, bar) -> None:
        if bar is not None:
            self.progress.remove_task(bar)
            self.progress.stop()


class _LiveProgress:
    """A context that starts and stops its rich ``progress`` (None when there is no terminal)."""

    progress = None

    def __enter__(self):
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


class FileProgress(_LiveProgress):
    """A progress bar over the tiles of the image being enhanced; call it as ``progress(done, total)``.

    Large images take minutes on a CPU, so the bar moves per tile rather than per file. It shows
    only on a terminal.
    """

    def __init__(self, console: Console | None = None) -> None:
        console = console or Console()
        self.progress = None
        if console.is_terminal:
            self.progress = Progress(TextColumn("tiles"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                     TimeRemainingColumn(), console=console, transient=True)  # fmt: skip
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.progress is None:
            return
        if self.bar is None or done == 0:
            if self.bar is not None:
                self.progress.remove_task(self.bar)
            self.bar = self.progress.add_task("tiles", total=total)
        self.progress.update(self.bar, completed=done, total=total)


class PredictProgress(_LiveProgress):
    """Files done, errors and images/s while ``predict`` streams; on stderr, only on a terminal.

    The number of files is unknown while a folder is still being walked (``total=None``): a spinner
    with the counts then; with a known total, a bar. Use as a context manager, call ``update(error)``
    once per file.

    Rich would send ``print``/stdout writes through the stderr console while the bar is live: that
    happens only with ``redirect_stdout=True`` (for a stdout that is the same terminal, so JSON lines
    scroll above the bar instead of being overdrawn); piped stdout is never touched.
    """

    def __init__(self, console: Console | None = None, total: int | None = None, enabled: bool = True,
                 description: str = "predict", redirect_stdout: bool = False) -> None:
        console = console or Console(stderr=True)
        self.progress = None
        self.done = self.errors = 0
        self._start = time.perf_counter()
        self._last = 0.0
        if enabled and console.is_terminal:
            columns = [SpinnerColumn(), TextColumn("{task.description}")]
            if total is not None:
                columns += [BarColumn(), MofNCompleteColumn()]
            columns += [TextColumn("{task.fields[info]}"), TimeElapsedColumn()]
            self.progress = Progress(*columns, console=console, transient=True,
                                     redirect_stdout=redirect_stdout, redirect_stderr=False)
            self.bar = self.progress.add_task(description, total=total, info=self.info())

    def info(self) -> str:
        rate = self.done / max(time.perf_counter() - self._start, 1e-9)
        return f"{self.done} files  {self.errors} errors  {rate:.1f} img/s"

    def __enter__(self) -> PredictProgress:
        self._start = time.perf_counter()
        return super().__enter__()

    def update(self, error: bool = False) -> None:
        self.done += 1
        self.errors += bool(error)
        now = time.perf_counter()
        if self.progress is not None and now - self._last > 0.1:  # the text, not the bar, is the costly part
            self._last = now
            self.progress.update(self.bar, completed=self.done, info=self.info())
