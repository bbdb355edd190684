"""Checkpoints: atomic writes, weights-only loading, the last K and the best kept.

    checkpoints/
      step-000200.pt  step-000300.pt  step-000400.pt     the last `keep`
      best.pt                                            the best validation result so far

A checkpoint is a dict of tensors and plain values (model, optimiser, scheduler, RNG states, step, position
in the data, the config as a dict), so `torch.load(weights_only=True)` reads it without unpickling any
object. It is written to a temporary file, fsynced and renamed over its name: a writer killed mid-save
leaves every earlier checkpoint whole (its temporary file is removed when the run folder is next opened).
A checkpoint never holds non-finite weights. A file that would run pickled code is refused as such, and
torch's advice to load it with `weights_only=False` is never repeated.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import random
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnlab.errors import CheckpointError

FORMAT = 1


def save(path: str | Path, payload: dict[str, Any], write: bool = True) -> Path:
    """Write `payload` to `path` atomically: temporary file, fsync, rename, fsync of the folder. A
    CheckpointError for non-finite weights, written or not (`write=False`: the check alone, for the ranks
    of a distributed run that do not write)."""
    path = Path(path)
    bad = [
        name
        for name, t in payload.get("model", {}).items()
        if t.is_floating_point() and not t.isfinite().all()
    ]
    if bad:
        raise CheckpointError(f"refusing to write {path}: non-finite weights in {', '.join(bad)}")
    if not write:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with `torch.load(weights_only=True)`; a CheckpointError naming the file if bad."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol: it is refused or reported below
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+)", str(e))  # torch names the global it would not import
        if found or _holds_code(path):
            what = f" ({found.group(1)})" if found else ""
            raise CheckpointError(
                f"refusing to load {path}: it holds pickled code{what}, which a checkpoint never does; "
                "weights-only loading runs none"
            ) from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+?)\n\n", str(e), re.S)
        why = detail.group(1).strip() if detail else "not a pickle that torch.save wrote"
        raise CheckpointError(f"cannot read checkpoint {path}: truncated or corrupt ({why})") from None
    except Exception as e:  # torch raises RuntimeError, EOFError, ... for truncated or corrupt files
        first = str(e).split(". ")[0]  # torch's first sentence; the rest is advice
        raise CheckpointError(
            f"cannot read checkpoint {path}: truncated or corrupt ({type(e).__name__}: {first})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an rnnlab checkpoint (format {FORMAT})")
    return payload


#: pickle instructions that import or call something: what weights-only loading refuses to run.
CODE = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"}


def _holds_code(path: Path) -> bool:
    """Whether `path`, a pickle that is not a torch zip archive, imports or calls something."""
    if zipfile.is_zipfile(path):
        return False  # torch names the global of an archive's pickle itself
    try:
        return any(op.name in CODE for op, _, _ in pickletools.genops(path.read_bytes()))
    except Exception:  # not a pickle at all
        return False


def alternatives(path: str | Path) -> list[Path]:
    """The other step checkpoints beside `path` that load, newest first: where a run can resume instead."""
    path = Path(path)
    found = []
    for _, other in reversed(Checkpoints(path.parent).steps()):
        if other != path:
            try:
                load(other)
            except CheckpointError:
                continue
            found.append(other)
    return found


class Checkpoints:
    """The checkpoint folder of a run: `step-NNNNNN.pt` files (the last `keep` kept) and `best.pt`.

    `write=False` (the ranks of a distributed run but 0) checks each payload and writes nothing; `before` is
    called before every save (the run's rows logged so far into their files, so that a run resumed from
    this checkpoint finds them all), `then` after it (distributed: a barrier, so that no rank reads a
    checkpoint before it is written)."""

    def __init__(
        self,
        folder: str | Path,
        keep: int = 3,
        write: bool = True,
        before: Callable[[], None] | None = None,
        then: Callable[[], None] | None = None,
    ) -> None:
        self.folder, self.keep, self.write = Path(folder), keep, write
        self.before, self.then = before or (lambda: None), then or (lambda: None)

    def steps(self) -> list[tuple[int, Path]]:
        """(step, path) of every step checkpoint, oldest first."""
        found = []
        for p in self.folder.glob("step-*.pt"):
            m = re.fullmatch(r"step-(\d+)\.pt", p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest(self) -> Path | None:
        steps = self.steps()
        return steps[-1][1] if steps else None

    @property
    def best(self) -> Path:
        return self.folder / "best.pt"

    def save(self, step: int, payload: dict[str, Any]) -> Path:
        """Write the checkpoint of `step`, then delete all but the last `keep`."""
        self.before()
        path = save(self.folder / f"step-{step:06d}.pt", payload, self.write)
        if self.write:
            for _, old in self.steps()[: -self.keep]:
                old.unlink(missing_ok=True)
        self.then()
        return path

    def save_best(self, payload: dict[str, Any]) -> Path:
        self.before()
        path = save(self.best, payload, self.write)
        self.then()
        return path


def rng_state() -> dict[str, Any]:
    """Every random generator's state as tensors and plain values (weights-only loadable)."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002
    assert isinstance(keys, np.ndarray)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(_tuples(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002


def _tuples(x: Any) -> Any:
    return tuple(_tuples(i) for i in x) if isinstance(x, list | tuple) else x
