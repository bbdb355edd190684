"""The progress bar: step, loss, a task metric beside its baseline, and speed (rich), or nothing with `quiet`.

`rich` is imported when an enabled bar is made, so `import rnnlab` does not load it; `say` prints to
stderr either way.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rnnlab.text import format_number

#: significant digits of the loss and the metric on the bar.
DIGITS = 4


class ProgressBar:
    """`update(step, row)` after each logged step; `close()` at the end. Prints nothing when disabled.

    Args:
        total: the step the run ends at.
        start: the step it starts from (a resumed run's).
        enabled: draw the bar; False prints nothing but `say`'s lines.
        description: the bar's label.
        file: where the bar and `say` write (stderr by default).
        baseline: the task's memoryless scores (`Task.baseline()`), shown beside the loss and the metric.
        quiet: `say` prints nothing either.
    """

    def __init__(
        self,
        total: int,
        start: int = 0,
        enabled: bool = True,
        description: str = "train",
        file: TextIO | None = None,
        baseline: dict[str, float] | None = None,
        quiet: bool = False,
    ) -> None:
        self.enabled, self.start, self.t0 = enabled and not quiet, start, time.perf_counter()
        self.quiet = quiet
        self.baseline = baseline or {}
        self.file = file
        self.bar: Any = None
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = Console(file=file or sys.stderr)
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.task = self.bar.add_task(description, total=total, completed=start, stats="")
        self.bar.start()

    def update(self, step: int, row: dict[str, Any], metric: str | None = None) -> None:
        if self.bar is None:
            return
        text = stats(row, metric, self.rate(step), self.baseline)
        self.bar.update(self.task, completed=step, stats=text)

    def rate(self, step: int) -> float:
        """Steps per second since this bar was made."""
        return (step - self.start) / max(time.perf_counter() - self.t0, 1e-9)

    def say(self, message: str) -> None:
        """A line above the bar (or on stderr without one): verdicts, rollbacks, early stopping."""
        if self.quiet:
            return
        if self.bar is not None:
            self.console.print(message, highlight=False, soft_wrap=True, markup=False)
        else:
            print(message, file=self.file or sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def stats(
    row: dict[str, Any], metric: str | None, rate: float, baseline: dict[str, float] | None = None
) -> str:
    """The bar's text: "loss 0.1235 (baseline 0.1667)  mse 0.1235 (baseline 0.1667)  12.3 steps/s"."""
    baseline = baseline or {}

    def shown(name: str) -> str:
        text = f"{name} {format_number(row.get(name), DIGITS)}"
        if name in baseline:
            text += f" (baseline {format_number(baseline[name], DIGITS)})"
        return text

    text = shown("loss")
    if metric and metric in row:
        text += f"  {shown(metric)}"
    return f"{text}  {rate:.1f} steps/s"
