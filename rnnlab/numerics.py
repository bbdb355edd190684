"""Denormal floats: why a vanishing gradient makes the CPU slow, and the switch that stops it.

A gradient that vanishes through time shrinks by a factor every step until it falls below the smallest
normal float (1.2e-38 in float32, 2.2e-308 in float64) into the denormal range, where x86 CPUs compute each
multiply on a slow path: the backward of an LSTM whose gradient vanishes runs about 10× slower (measured
here, BENCHMARKS.md). Flushing denormals to zero costs nothing the loss can see (those contributions are
below 1e-38 of the rest) and restores the speed; TensorFlow does it in its CPU threads, PyTorch leaves it
to the user.

`flush_denormals()` switches it on for a block and restores the caller's setting afterwards, so code around
rnnlab is never changed behind its back; `rnnlab.train`, `rnnlab.evaluate`, `rnnlab.watch`,
`rnnlab.time_profile` and `rnnlab.jacobian_products` use it. Inside, a norm below the normal range reads 0.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

#: a float32 denormal: multiplied by 1 it stays itself unless denormals are flushed (then it reads 0).
_DENORMAL = 1e-39


def flushing_denormals() -> bool:
    """Whether the CPU flushes denormal floats to zero now (torch has a setter but no getter: this asks
    the hardware, by multiplying a denormal by one)."""
    return bool((torch.tensor([_DENORMAL], dtype=torch.float32) * 1.0).item() == 0.0)


@contextlib.contextmanager
def flush_denormals(enabled: bool = True) -> Iterator[bool]:
    """Flush denormal floats to zero on the CPU inside the block (when `enabled`), then restore the
    caller's setting. Yields whether flushing is on inside. A no-op on CPUs without the switch.

    Example:
        >>> with rnnlab.flush_denormals():
        ...     loss.backward()              # a vanishing gradient no longer takes the slow path
    """
    before = flushing_denormals()
    if not enabled or before:
        yield before
        return
    supported = torch.set_flush_denormal(True)
    try:
        yield supported
    finally:
        if supported:
            torch.set_flush_denormal(before)


def full_precision(x: torch.Tensor) -> contextlib.AbstractContextManager[Any]:
    """Autocast off for the block when it is on for `x`'s device: rnnlab's own recurrent kernels compute
    in the weights' precision (float32) inside a mixed-precision forward (`training/precision.py`)."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()
