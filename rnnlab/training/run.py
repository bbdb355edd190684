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
from typing import TYPE_CHECKING, Any

from rnnlab.errors import RunFolderError
from rnnlab.training import config as cfg
from rnnlab.training import record

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter


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
        """Append one JSON object as a line of `name` (non-finite numbers become null)."""
        with open(self.path / name, "a") as f:
            f.write(json.dumps(_finite(row)) + "\n")

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
        """Log the finite numbers of `values` to TensorBoard as `prefix/name`."""
        for name, value in values.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                self.tensorboard.add_scalar(f"{prefix}/{name}", value, step)

    def log(self, row: Mapping[str, Any]) -> None:
        """A metrics row: to metrics.jsonl and, under train/ or val/, to TensorBoard."""
        self.append("metrics.jsonl", row)
        values = {k: v for k, v in row.items() if k not in ("step", "split", "epoch", "batch")}
        self.scalars(str(row.get("split", "train")), values, int(row["step"]))

    def write_text(self, name: str, text: str) -> None:
        """Replace `name` atomically (temporary file, rename): a crash leaves the old file or the new."""
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
        """loss.png: the training loss per step and the validation loss, from metrics.jsonl."""
        from matplotlib.figure import Figure  # no pyplot: draws with Agg and leaves the user's backend alone

        rows = self.read("metrics.jsonl")
        fig = Figure(figsize=(6, 4))
        ax = fig.subplots()
        for split, style in (("train", "-"), ("val", "o-")):
            pts = [
                (r["step"], r["loss"]) for r in rows if r.get("split") == split and r.get("loss") is not None
            ]
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=f"{split} loss", markersize=3)
        positive = all(r["loss"] > 0 for r in rows if r.get("loss") is not None)
        if rows and positive:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(self.path.name)
        ax.legend()
        fig.tight_layout()
        out = self.path / "loss.png"
        fig.savefig(out, dpi=100)
        return out

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _finite(x: Any) -> Any:
    """JSON has no NaN or Inf: they become null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Mapping):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x
