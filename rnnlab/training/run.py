"""The run folder: everything a run writes, in one place.

    runs/sine-20250101-120000/
      config.toml          the resolved config, [task] and [model] as trained (a resume that changes it
                           keeps the old one beside it)
      metrics.jsonl        one JSON object per logged step; validation rows have "split": "val"
      events.jsonl         skipped non-finite steps, rollbacks, early stopping
      *.superseded.jsonl   rows logged after the checkpoint a resumed run continued from (then redone)
      checkpoints/         step-NNNNNN.pt (the last K) and best.pt
      tensorboard/         event files with the same scalars
      summary.json         the task and model, final and best metrics, steps, wall time, steps per second
      loss.png             the loss curve

Other parts of rnnlab add their own files with `append` (JSON lines) and `scalars` (TensorBoard). Files
that are rewritten rather than appended to are replaced atomically (`write_text`).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rnnlab.errors import RunFolderError
from rnnlab.training import config as cfg
from rnnlab.training import record

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter


#: the most points loss.png draws of one curve (longer runs are thinned evenly).
PLOT_POINTS = 2000


def default_folder(task_name: str) -> Path:
    """A new, empty runs/<task>-<time> (-2, -3, ... for runs started in the same second), made here."""
    base = Path("runs") / f"{task_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in itertools.count(1):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir(parents=True)  # atomic: of two runs asking at once, one gets it
            return path
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def resume_folder(resume: str | Path) -> Path:
    """The run folder that `resume` names: the folder itself, or the run of a checkpoint file in it."""
    resume = Path(resume)
    folder = resume.parent.parent if resume.is_file() else resume  # <run>/checkpoints/step-N.pt
    if not (folder / "config.toml").is_file():
        raise RunFolderError(f"--resume: no run in {folder} (config.toml is missing)")
    return folder


def _claim(path: Path) -> bool:
    """Make the folder `path` for a new run; False when it exists and is not empty (or is a file).

    mkdir without exist_ok is atomic: of two runs started on one folder at once, one gets it."""
    try:
        path.mkdir(parents=True)
        return True
    except FileExistsError:
        return path.is_dir() and not any(path.iterdir())


class RunDir:
    """A run folder, opened fresh (it must not hold a run already) or to resume (it must)."""

    def __init__(self, path: str | Path, *, resume: bool = False) -> None:
        self._open: dict[str, IO[str]] = {}  # JSON-lines files being appended to
        self.path = Path(path)
        if resume:
            resume_folder(self.path)  # a run must be there
        elif not _claim(self.path):
            raise RunFolderError(
                f"run folder {self.path} already exists and is not empty; continue it with "
                f"--resume {self.path} (resume=...) or choose another folder"
            )
        self.checkpoints = self.path / "checkpoints"
        self._tb: SummaryWriter | None = None

    @property
    def tensorboard(self) -> SummaryWriter:
        """The TensorBoard writer of tensorboard/, made (and tensorboard imported) at the first use."""
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.path / "tensorboard"))
        return self._tb

    def append(self, name: str, row: Mapping[str, Any]) -> None:
        """Append one JSON object as a line of `name` (non-finite numbers become null). The file stays open
        for the run; each line reaches the OS at once, so a killed process loses none."""
        f = self._open.get(name)
        if f is None:
            f = self._open[name] = open(self.path / name, "a")  # noqa: SIM115  (closed by close())
        f.write(json.dumps(_finite(row)) + "\n")
        f.flush()

    def read(self, name: str) -> list[dict[str, Any]]:
        """The JSON lines of `name` ([] when there is none)."""
        file = self.path / name
        if not file.is_file():
            return []
        return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]

    def event(self, event: str, step: int, **details: Any) -> None:
        """A line in events.jsonl: a skipped step, a rollback, early stopping."""
        self.append("events.jsonl", {"event": event, "step": step, **details})

    def scalars(self, prefix: str, values: Mapping[str, Any], step: int) -> None:
        """Log the finite numbers of `values` to TensorBoard as `prefix/name`, in one event (one record
        for all of them instead of one per scalar: the writer's per-call cost dominates small runs)."""
        from torch.utils.tensorboard.summary import scalar

        tags = [
            scalar(f"{prefix}/{name}", float(value)).value[0]
            for name, value in values.items()
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ]
        if tags:
            writer = self.tensorboard
            summary = type(scalar("", 0.0))(value=tags)
            writer._get_file_writer().add_summary(summary, step)

    def log(self, row: Mapping[str, Any]) -> None:
        """A metrics row: to metrics.jsonl and, under train/ or val/, to TensorBoard."""
        self.append("metrics.jsonl", row)
        values = {k: v for k, v in row.items() if k not in ("step", "split", "epoch", "batch", "time_s")}
        self.scalars(str(row.get("split", "train")), values, int(row["step"]))

    def write_text(self, name: str, text: str) -> None:
        """Replace `name` atomically (temporary file, rename): a crash leaves the old file or the new."""
        if name in self._open:  # appends must go to the new file, not the replaced one
            self._open.pop(name).close()
        tmp = self.path / f".{name}.tmp-{os.getpid()}"
        tmp.write_text(text)
        os.replace(tmp, self.path / name)

    def write_json(self, name: str, obj: Any) -> None:
        self.write_text(name, json.dumps(_finite(obj), indent=2) + "\n")

    def write_config(
        self, config: cfg.TrainConfig, step: int = 0, recorded: record.Sections | None = None
    ) -> None:
        """Save the resolved config, with [task] and [model] as `recorded` describes what was trained (see
        record.py); a different config.toml already there is kept as config.step-N.toml."""
        file, text = self.path / "config.toml", record.config_text(config, recorded)
        if file.is_file() and file.read_text() != text:
            self.write_text(f"config.step-{step:06d}.toml", file.read_text())
        self.write_text("config.toml", text)

    def truncate(self, name: str, step: int) -> list[dict[str, Any]]:
        """On resume from `step`: the JSON lines of `name` logged after it get redone, so they move to
        <name>.superseded.jsonl (metrics.superseded.jsonl, ...). Returns the rows kept."""
        rows = self.read(name)
        kept = [r for r in rows if r.get("step", 0) <= step]
        if len(kept) < len(rows):
            for r in rows:
                if r.get("step", 0) > step:
                    self.append(name.replace(".jsonl", ".superseded.jsonl"), r)
            self.write_text(name, "".join(json.dumps(r) + "\n" for r in kept))
        return kept

    def plot_loss(self) -> Path:
        """loss.png: the training loss per step and the validation loss, from metrics.jsonl.

        Drawn in ~50 ms: no pyplot (Agg, the user's backend left alone), fixed margins instead of
        tight_layout, plain tick labels instead of mathtext, at most `PLOT_POINTS` points a curve."""
        from matplotlib.figure import Figure
        from matplotlib.ticker import LogFormatter, LogLocator

        rows = self.read("metrics.jsonl")
        fig = Figure(figsize=(6, 4))
        fig.subplots_adjust(left=0.15, right=0.97, top=0.92, bottom=0.12)
        ax = fig.subplots()
        for split, style in (("train", "-"), ("val", "o-")):
            pts = [
                (r["step"], r["loss"]) for r in rows if r.get("split") == split and r.get("loss") is not None
            ]
            pts = pts[:: max(1, len(pts) // PLOT_POINTS)]
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=f"{split} loss", markersize=3)
        positive = all(r["loss"] > 0 for r in rows if r.get("loss") is not None)
        if rows and positive:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(LogFormatter())
            ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))  # not all eight: each tick is an artist
            ax.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(2, 0.5)))
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(self.path.name)
        ax.legend()
        out = self.path / "loss.png"
        fig.savefig(out, dpi=100)
        return out

    def close(self) -> None:
        self._close_files()
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def _close_files(self) -> None:
        for f in self._open.values():
            f.close()
        self._open.clear()

    def __del__(self) -> None:  # a RunDir dropped without close(): its files still close cleanly
        self._close_files()


def _finite(x: Any) -> Any:
    """JSON has no NaN or Inf: they become null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Mapping):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x
