"""Ctrl-C and SIGTERM during a run: the first stops it cleanly, a second at once, never inside a write.

    interrupts = Interrupts().install()
    while ...:
        if interrupts.requested:      # the first signal: finish this step, then checkpoint and summary
            break
        with interrupts.deferred():   # a second signal in here waits until the block is done
            write the checkpoint
    interrupts.restore()

The first SIGINT or SIGTERM only sets `requested`: the loop finishes its step, writes a checkpoint and
its summary, and raises `Interrupted`. A second one raises `Interrupted(at_once=True)` where the program
is, unless it is inside `deferred()` (a checkpoint being written), where it waits for the block's end: an
exception raised in the middle of `torch.save` can abort the process. Handlers can only be installed from
the main thread; elsewhere the signals keep their own handlers and this does nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from rnnlab.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """The signals received during one run (see the module docstring)."""

    def __init__(self) -> None:
        self.signum: int | None = None  # the first signal received
        self._pending: int | None = None  # a second signal received inside deferred()
        self._deferring = 0
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """Whether a signal asked the run to stop."""
        return self.signum is not None

    @property
    def name(self) -> str | None:
        """The first signal's name, SIGINT or SIGTERM (None before one)."""
        return None if self.signum is None else signal.Signals(self.signum).name

    def join(self, signum: int) -> None:
        """Stop as if `signum` had been received: another process of a distributed run received it."""
        if self.signum is None:
            self.signum = signum

    def install(self) -> Interrupts:
        """Handle SIGINT and SIGTERM until `restore()` (from the main thread only). A signal the process
        was told to ignore (`nohup`, a background job's SIGINT) stays ignored, as Python leaves it."""
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        """Put the handlers back that were there before `install()`."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A block that a second signal does not cut short: it stops the run when the block is done."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        if not self._deferring and self._pending is not None:
            signum, self._pending = self._pending, None
            raise Interrupted(signum, at_once=True)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        elif self._deferring:
            self._pending = signum
        else:
            raise Interrupted(signum, at_once=True)
