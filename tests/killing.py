"""Killing a process outright (SIGKILL: no clean-up of its own) once it has reached a given point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def kill_when(script: str, args: list[str], reached: Path, what: str, timeout_s: float = 120) -> None:
    """Run `python -c script *args` and SIGKILL it as soon as the file `reached` exists (`what` names that
    point in the failure message); asserts it died of the signal."""
    proc = subprocess.Popen([sys.executable, "-c", script, *args])
    try:
        deadline = time.monotonic() + timeout_s
        while not reached.exists():
            assert proc.poll() is None and time.monotonic() < deadline, f"the process never reached {what}"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
