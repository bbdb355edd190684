"""The run folder: everything a run writes, in one place.

    runs/sine-20250101-120000/
      config.toml          the resolved config, [task] and [model] as trained (a resume that changes it
                           keeps the old one beside it)
      metrics.jsonl        one JSON object per logged step; validation rows have "split": "val"
      events.jsonl         skipped non-finite steps, rollbacks, early stopping
      *.superseded.jsonl   rows logged after the checkpoint a resumed run continued from (then redone)
      checkpoints/         step-NNNNNN.pt (the last K) and best.pt
      tensorboard/         event files with the same scalars (events.py)
      summary.json         the task and model, final and best metrics, steps, wall time, steps per second
      loss.png             the loss curve
      .lock                the lock of the run writing the folder (lock.py)

Other parts of rnnlab add their own files with `append` (JSON lines) and `scalars`/`image` (TensorBoard);
both wait in memory and reach their files together, at most `FLUSH_S` apart, at every `flush` and at
`close`. Files that are rewritten rather than appended to are replaced atomically (`write_text`).

Opening a folder takes its lock (one writer at a time) and tidies what a run cut off at any instant left:
the temporary files of a write it did not finish are removed, and a torn last line of a JSON-lines file (a
power loss mid-write) is dropped, with a note in `notes`. A new run may take over a folder in which a run
started and completed no step (config.toml and checkpoint 0 at most): it is restarted in place.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rnnlab.errors import RunFolderError
from rnnlab.training import config as cfg
from rnnlab.training import record
from rnnlab.training.events import EventFile
from rnnlab.training.lock import NAME as LOCK_NAME
from rnnlab.training.lock import RunLock

if TYPE_CHECKING:
    import numpy as np


#: the longest rows and TensorBoard values wait in memory before they reach their files (see `append`).
FLUSH_S = 2.0

#: the columns of a metrics row that TensorBoard does not get (where the step is, not how it went).
NOT_SCALARS = frozenset({"step", "split", "epoch", "batch", "time_s"})

#: the most points loss.png draws of one curve (longer runs are thinned evenly).
PLOT_POINTS = 2000

#: the name of a temporary file of an atomic write (`write_text`, `checkpoint.save`): .<name>.tmp-<pid>.
TEMPORARY = re.compile(r"\..+\.tmp-\d+")


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


def write_atomically(path: Path, text: str) -> None:
    """Write `path` through a temporary file beside it (.<name>.tmp-<pid>) renamed over it: a crash
    leaves the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


#: files that mark a folder as rnnlab's output, which `--overwrite` may delete: a run, a comparison.
OUTPUT_MARKS = ("config.toml", "summary.json", "metrics.jsonl", "compare.json")


def make_room(path: str | Path, overwrite: bool, files: Sequence[str] = ()) -> Path:
    """Make sure `path` is free for a new output: nothing there, or, with `overwrite`, a file (left for the
    new one to replace) or a folder rnnlab wrote, removed (a run no process is writing, a comparison, or a
    folder holding nothing but the `files` the caller writes into it). Anything else is never deleted: a
    RunFolderError says why (it exists without --overwrite; it is not rnnlab's output; a run is writing
    it, with its PID)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return path
    if not overwrite:
        raise RunFolderError(f"{path} exists; give another name, or replace it with --overwrite")
    if not path.is_dir():
        return path  # a file: the new one replaces it atomically when it is written (`write_atomically`)
    children = list(path.iterdir())
    runs = [path] if any((path / m).exists() for m in OUTPUT_MARKS[:3]) else []
    runs += [c for c in children if c.is_dir() and any((c / m).exists() for m in OUTPUT_MARKS[:3])]
    own = bool(files) and all(c.is_file() and c.name in files for c in children)
    if children and not runs and not own and not (path / "compare.json").exists():
        raise RunFolderError(
            f"{path} is not a folder rnnlab wrote (no {', '.join(OUTPUT_MARKS)}); it is left as it is: "
            "give another --out"
        )
    for run in runs:  # refused, with the holder's PID, while another process writes one of them
        RunLock.acquire(run).release()
    shutil.rmtree(path)
    return path


def resume_folder(resume: str | Path, said: str = "--resume: ") -> Path:
    """The run folder that `resume` names: the folder itself, or the run of a checkpoint file in it; its
    error begins with `said` (what named the folder)."""
    resume = Path(resume)
    folder = resume.parent.parent if resume.is_file() else resume  # <run>/checkpoints/step-N.pt
    if not (folder / "config.toml").is_file():
        what = "it does not exist" if not folder.exists() else "config.toml is missing"
        again = f"; it holds no step, so start it again with --out {folder}" if unstarted(folder) else ""
        raise RunFolderError(f"{said}no run in {folder} ({what}){again}")
    return folder


def unstarted(folder: Path) -> list[Path] | None:
    """What a run that completed no step left in `folder` (its config.toml, checkpoint 0, temporary files
    and lock, each at most), or None if the folder holds anything more (or is not a folder)."""
    if not folder.is_dir():
        return None
    left: list[Path] = []
    for p in folder.iterdir():
        if p.name == "checkpoints" and p.is_dir():
            inside = list(p.iterdir())
            if any(q.name != "step-000000.pt" and not TEMPORARY.fullmatch(q.name) for q in inside):
                return None
            left += [*inside, p]
        elif p.name in ("config.toml", LOCK_NAME) or TEMPORARY.fullmatch(p.name):
            left.append(p)
        else:
            return None
    return left


class RunDir:
    """A run folder, opened fresh (it must not hold a run already) or to resume (it must), and locked for
    this process until `close()` (a RunFolderError naming the holder's PID if another run has it)."""

    def __init__(self, path: str | Path, *, resume: bool = False) -> None:
        self._open: dict[str, IO[str]] = {}  # JSON-lines files being appended to
        self._pending: dict[str, list[dict[str, Any]]] = {}  # their rows not yet written (append)
        self._flushed = time.monotonic()
        self._tb: EventFile | None = None  # tensorboard/'s event file, made at the first value logged
        self._lock: RunLock | None = None
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.notes: list[str] = []  # what opening the folder tidied up, for the run to say
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(
                f"run folder {self.path} is a file, not a folder; choose another out (--out)"
            )
        if resume:
            resume_folder(self.path)  # a run must be there
        elif self.path.is_dir() and unstarted(self.path) is None and not (self.path / LOCK_NAME).is_file():
            raise self._taken()  # someone's folder, not a run's: refused before a lock file is made in it
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = RunLock.acquire(self.path)
        try:
            if not resume:
                self._restart_in_place()
            self._tidy()
        except BaseException:
            self.close()
            raise

    def _taken(self) -> RunFolderError:
        return RunFolderError(
            f"run folder {self.path} already exists and is not empty; continue it with "
            f"--resume {self.path} (resume=...) or choose another folder"
        )

    def _restart_in_place(self) -> None:
        """Clear what a run that completed no step left here (see `unstarted`), or refuse the folder."""
        left = unstarted(self.path)
        if left is None:
            raise self._taken()
        if any(p.name == "config.toml" for p in left):
            self.notes.append(f"{self.path} holds a run that completed no step: it is started again in place")
        for p in left:
            if p.name == LOCK_NAME:
                continue
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)

    def _tidy(self) -> None:
        """Remove the temporary files of writes a killed run did not finish (no other run can be writing:
        this one holds the lock), and drop the torn last line of any JSON-lines file."""
        for folder in (self.path, self.checkpoints):
            if folder.is_dir():
                for p in folder.iterdir():
                    if TEMPORARY.fullmatch(p.name) and p.is_file():
                        p.unlink()
        for file in sorted(self.path.glob("*.jsonl")):
            text = file.read_text(errors="replace")
            lines = text.splitlines(keepends=True)
            while lines and not lines[-1].strip():
                lines.pop()
            if not lines:
                continue
            try:
                json.loads(lines[-1])
            except json.JSONDecodeError:
                self.write_text(file.name, "".join(lines[:-1]))
                self.notes.append(
                    f"{file}: dropped its torn last line ({len(lines[-1].encode())} bytes), cut off by a run "
                    "that stopped while writing it"
                )
                continue
            if not text.endswith("\n"):  # whole, but the next row must start on a line of its own
                self.write_text(file.name, text + "\n")

    @property
    def tensorboard(self) -> EventFile:
        """The event file of tensorboard/ (events.py: written in this thread, buffered a few seconds)."""
        if self._tb is None:
            self._tb = EventFile(self.path / "tensorboard", flush_s=math.inf)  # flushed with the rows
        return self._tb

    def append(self, name: str, row: Mapping[str, Any]) -> None:
        """Append one JSON object as a line of `name` (non-finite numbers become null).

        Rows wait in memory and reach the file together, at most `FLUSH_S` seconds apart and at every
        `flush` (the loop flushes before each checkpoint, `close` at the end): serialising 100 rows at once
        costs a fraction of serialising them one per training step, between forward and backward passes
        that have pushed the code out of the caches. A process killed outright loses at most the last
        `FLUSH_S` seconds of rows, all of them logged after its last checkpoint, which a resume redoes."""
        self._pending.setdefault(name, []).append(dict(row))
        if time.monotonic() - self._flushed >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Every row appended so far into its file, and the TensorBoard values into theirs (to the OS)."""
        while self._pending:  # each file's rows taken before they are written: a failed write is not redone
            name, rows = self._pending.popitem()
            f = self._open.get(name)
            if f is None:
                f = self._open[name] = open(self.path / name, "a")  # noqa: SIM115  (closed by close())
            f.write("".join(json.dumps(_finite(row)) + "\n" for row in rows))
            f.flush()
        if self._tb is not None:
            self._tb.flush()
        self._flushed = time.monotonic()

    def read(self, name: str) -> list[dict[str, Any]]:
        """The JSON lines of `name` ([] when there is none); a line that is not JSON is a RunFolderError
        naming the file and the line (opening the folder has dropped a torn last one)."""
        if name in self._pending:
            self.flush()
        file = self.path / name
        if not file.is_file():
            return []
        rows = []
        for n, line in enumerate(file.read_text(errors="replace").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise RunFolderError(
                        f"{file}, line {n}: not a JSON object ({e}); the file is damaged"
                    ) from None
        return rows

    def event(self, event: str, step: int, **details: Any) -> None:
        """A line in events.jsonl: a skipped step, a rollback, early stopping."""
        self.append("events.jsonl", {"event": event, "step": step, **details})

    def scalars(
        self, prefix: str, values: Mapping[str, Any], step: int, leave_out: frozenset[str] = frozenset()
    ) -> None:
        """Log the finite numbers of `values` (but those in `leave_out`) to TensorBoard as `prefix/name`,
        in one event."""
        self.tensorboard.scalars(prefix, values, step, leave_out)

    def image(self, tag: str, pixels: np.ndarray, step: int) -> None:
        """An (H, W, 3) uint8 image to TensorBoard's Images tab as `tag`."""
        from torch.utils.tensorboard.summary import image

        self.tensorboard.summary(image(tag, pixels, dataformats="HWC"), step)

    def log(self, row: Mapping[str, Any]) -> None:
        """A metrics row: to metrics.jsonl and, under train/ or val/, to TensorBoard."""
        self.append("metrics.jsonl", row)
        self.scalars(str(row.get("split", "train")), row, int(row["step"]), NOT_SCALARS)

    def write_text(self, name: str, text: str) -> None:
        """Replace `name` atomically (temporary file, rename): a crash leaves the old file or the new."""
        if name in self._pending:  # rows appended before the file is replaced belong to the old one
            self.flush()
        if name in self._open:  # appends must go to the new file, not the replaced one
            self._open.pop(name).close()
        write_atomically(self.path / name, text)

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

    def plot_loss(self, baseline: float | None = None) -> Path:
        """loss.png: the training loss per step and the validation loss, from metrics.jsonl, and the
        task's memoryless baseline as a dashed line (when given).

        The y axis is logarithmic when the loss falls by orders of magnitude, and a diverged run's spike is
        cut off with a note (`diagnostics.plots.scale_falling`, as the report draws its curves). Drawn in
        ~50 ms: no pyplot (Agg, the user's backend left alone), fixed margins instead of
        tight_layout, plain tick labels instead of mathtext, at most `PLOT_POINTS` points a curve."""
        import numpy as np
        from matplotlib.figure import Figure
        from matplotlib.ticker import LogFormatter, LogLocator

        from rnnlab.diagnostics.plots import scale_falling

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
        if baseline is not None:
            ax.axhline(baseline, color="0.4", linestyle="--", linewidth=1, label="baseline (no memory)")
        losses = np.array([r["loss"] for r in rows if r.get("loss") is not None], dtype=float)
        scale_falling(ax, [losses, np.array([] if baseline is None else [baseline])])  # a spike: cut off
        if ax.get_yscale() == "log":
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
        """Close the files and the TensorBoard event file, and give the folder's lock up."""
        self._close_files()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _close_files(self) -> None:
        if getattr(self, "_pending", None):
            self.flush()
        for f in self._open.values():
            f.close()
        self._open.clear()
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __del__(self) -> None:  # a RunDir dropped without close(): its files close, its lock goes
        self._close_files()
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()


class ShadowRunDir(RunDir):
    """The run folder as the ranks of a distributed run other than 0 see it: rank 0 writes it and holds its
    lock; these write nothing, keep the rows they log in memory (`read` gives them back, for the run's
    history) and read the checkpoints rank 0 writes (`distributed.py`)."""

    def __init__(self, path: str | Path) -> None:  # no lock, no tidying: the folder is rank 0's
        self._open, self._tb, self._lock, self._pending = {}, None, None, {}
        self._flushed = time.monotonic()
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.notes = []
        self._rows: dict[str, list[dict[str, Any]]] = {}

    def append(self, name: str, row: Mapping[str, Any]) -> None:
        self._rows.setdefault(name, []).append(dict(row))

    def read(self, name: str) -> list[dict[str, Any]]:
        return list(self._rows.get(name, []))

    def scalars(
        self, prefix: str, values: Mapping[str, Any], step: int, leave_out: frozenset[str] = frozenset()
    ) -> None:
        pass

    def image(self, tag: str, pixels: np.ndarray, step: int) -> None:
        pass

    def write_text(self, name: str, text: str) -> None:
        pass

    def write_config(
        self, config: cfg.TrainConfig, step: int = 0, recorded: record.Sections | None = None
    ) -> None:
        pass

    def truncate(self, name: str, step: int) -> list[dict[str, Any]]:
        return self.read(name)

    def plot_loss(self, baseline: float | None = None) -> Path:
        return self.path / "loss.png"


def _finite(x: Any) -> Any:
    """JSON has no NaN or Inf: they become null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Mapping):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x
