"""A TensorBoard event file, written in the caller's thread.

    events = EventFile(run / "tensorboard")
    events.scalars("train", {"loss": 0.12, "lr": 1e-3}, step=10)   # one record, all the values
    events.summary(image_summary, step=100)                         # any tensorboard Summary proto
    events.close()

The file is what TensorBoard's own writer makes (`events.out.tfevents.<time>.<host>.<pid>.<n>`, a
`brain.Event:2` header, TFRecord framing: length, masked CRC-32C of the length, the serialized Event, masked
CRC-32C of it), so TensorBoard and its readers take it as theirs. What differs is the cost: TensorBoard's
writer hands each event to a thread of its own, which frames it with a pure-Python CRC (~20 µs a record)
while holding the interpreter lock the training step needs; with a metrics row every step that was a fifth
of a small model's step. Here the CRC is `google_crc32c`'s C code (~0.2 µs), the values wait in memory as
they were given and become records together, at most `flush_s` seconds apart (and at `flush`/`close`):
TensorBoard sees the run within seconds, a killed process loses at most the last `flush_s` of it. A run
folder flushes its event file with its JSON-lines rows (`RunDir.flush`, before every checkpoint).
"""

from __future__ import annotations

import itertools
import math
import os
import socket
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import google_crc32c

#: a new event file per writer: two in the same process and second get different names.
_SERIAL = itertools.count()


def masked_crc32c(data: bytes) -> int:
    """TFRecord's checksum: the CRC-32C of `data`, rotated right by 15 bits plus a constant."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    """`data` framed as one TFRecord."""
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


def scalar_values(prefix: str, values: Mapping[str, Any]) -> list[tuple[str, float]]:
    """The (tag, value) pairs TensorBoard gets of `values`: the finite numbers (not booleans), as
    `prefix/name`."""
    return [
        (f"{prefix}/{name}", float(value))
        for name, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ]


class EventFile:
    """One TensorBoard event file in `folder` (made at the first flush with something to write), buffered,
    see the module."""

    def __init__(self, folder: str | Path, flush_s: float = 2.0) -> None:
        self.folder, self.flush_s = Path(folder), flush_s
        self.path: Path | None = None
        self._file: IO[bytes] | None = None
        self._pending: list[tuple[Any, int, float]] = []  # (summary or scalars, step, wall time)
        self._flushed = time.monotonic()

    def scalars(
        self, prefix: str, values: Mapping[str, Any], step: int, leave_out: frozenset[str] = frozenset()
    ) -> None:
        """The finite numbers of `values` (those not named in `leave_out`) as `prefix/name` at `step`, in
        one event (none if there are none). Kept as they are until the flush, which builds the protobufs of
        all of them at once."""
        self._add((prefix, dict(values), leave_out), step)

    def summary(self, summary: Any, step: int) -> None:
        """A tensorboard `Summary` proto (scalars, an image from `torch.utils.tensorboard.summary.image`)."""
        self._add(summary, step)

    def flush(self) -> None:
        """Everything added so far into the file (and to the OS)."""
        if self._pending:
            from tensorboard.compat.proto.event_pb2 import Event
            from tensorboard.compat.proto.summary_pb2 import Summary

            if self._file is None:
                self._open()
            assert self._file is not None
            pending, self._pending = self._pending, []  # taken first: a failed write is not redone
            records = []
            for what, step, wall_time in pending:
                if isinstance(what, tuple):
                    prefix, values, leave_out = what
                    kept = {k: v for k, v in values.items() if k not in leave_out}
                    tags = [Summary.Value(tag=t, simple_value=v) for t, v in scalar_values(prefix, kept)]
                    if not tags:
                        continue
                    what = Summary(value=tags)
                event = Event(wall_time=wall_time, step=step, summary=what)
                records.append(record(event.SerializeToString()))
            self._file.write(b"".join(records))
            self._file.flush()
        self._flushed = time.monotonic()

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None

    def __del__(self) -> None:  # dropped without close(): what is pending still reaches the file
        if getattr(self, "_pending", None) or getattr(self, "_file", None) is not None:
            self.close()

    def _add(self, what: Any, step: int) -> None:
        self._pending.append((what, step, time.time()))
        if time.monotonic() - self._flushed >= self.flush_s:
            self.flush()

    def _open(self) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        self.folder.mkdir(parents=True, exist_ok=True)
        host, pid, serial = socket.gethostname(), os.getpid(), next(_SERIAL)
        name = f"events.out.tfevents.{int(time.time()):010d}.{host}.{pid}.{serial}"  # as TensorBoard names it
        self.path = self.folder / name
        self._file = open(self.path, "ab")  # noqa: SIM115  (closed by close())
        header = Event(wall_time=time.time(), file_version="brain.Event:2")
        self._file.write(record(header.SerializeToString()))
