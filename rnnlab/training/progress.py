"""The progress bar: step, loss, a task metric and speed (rich), or nothing with `quiet`."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class ProgressBar:
    """`update(step, row)` after each logged step; `close()` at the end. Prints nothing when disabled."""

    def __init__(self, total: int, start: int = 0, enabled: bool = True, description: str = "train") -> None:
        self.enabled, self.start, self.t0 = enabled, start, time.perf_counter()
        self.console = Console(file=sys.stderr)
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled,
        )
        self.task = self.bar.add_task(description, total=total, completed=start, stats="")
        if enabled:
            self.bar.start()

    def update(self, step: int, row: dict[str, Any], metric: str | None = None) -> None:
        if not self.enabled:
            return
        rate = (step - self.start) / max(time.perf_counter() - self.t0, 1e-9)
        stats = f"loss {format_value(row.get('loss'))}"
        if metric and metric in row:
            stats += f"  {metric} {format_value(row[metric])}"
        self.bar.update(self.task, completed=step, stats=f"{stats}  {rate:.1f} steps/s")

    def say(self, message: str) -> None:
        """A line above the bar (or on stderr without one): rollbacks, early stopping."""
        self.console.print(message, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self.enabled:
            self.bar.stop()


def format_value(x: Any) -> str:
    """A logged value for people: floats to 4 significant digits."""
    return f"{x:.4g}" if isinstance(x, float) else str(x)
