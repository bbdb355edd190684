"""One writer per run folder: an exclusive OS lock on `<run>/.lock`, held for the run's whole life.

    lock = RunLock.acquire(folder)   # RunFolderError naming the folder and the holder's PID if taken
    ...                              # write the run
    lock.release()

The lock is `flock(LOCK_EX | LOCK_NB)` on the file `.lock`, which holds the PID of the run that has it. The
kernel drops the lock when that process ends, however it ends (`kill -9` included), so a dead run never
leaves a stale lock behind; the file itself stays, and the next run takes it over. It is never deleted:
a process could still hold the lock on a deleted file while a second one locks a new file of that name.
Platforms without `fcntl` (Windows) get no lock.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import IO

from rnnlab.errors import RunFolderError

try:
    import fcntl
except ImportError:  # pragma: no cover  (Windows)
    fcntl = None  # type: ignore[assignment]

#: the lock file inside a run folder.
NAME = ".lock"


class RunLock:
    """The held lock of one run folder (see the module docstring)."""

    def __init__(self, folder: Path, file: IO[str]) -> None:
        self.folder, self._file = folder, file

    @classmethod
    def acquire(cls, folder: str | Path) -> RunLock:
        """Lock `folder` (which must exist) for this process; a RunFolderError if another holds it."""
        folder = Path(folder)
        file = open(folder / NAME, "a+")  # noqa: SIM115  (closed by release())
        if fcntl is not None:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(file)
                file.close()
                raise RunFolderError(
                    f"run folder {folder} is in use by another run (PID {holder}); one run writes a folder "
                    "at a time: wait for it to end, or stop it"
                ) from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        return cls(folder, file)

    def release(self) -> None:
        """Give the lock up (closing the file releases it); a second call does nothing."""
        if not self._file.closed:
            self._file.close()


def _holder(file: IO[str]) -> str:
    """The PID written in a lock file held by another run ('unknown' if it has not written it yet)."""
    for _ in range(20):  # the holder writes its PID right after it gets the lock
        file.seek(0)
        pid = file.read().strip()
        if pid:
            return pid
        time.sleep(0.01)
    return "unknown"
