"""Mixed precision: `precision = "bf16"` or `"fp16"` runs the forward under torch's autocast.

    rnnlab train --task adding --precision bf16          # CPU or CUDA
    rnnlab train --task adding --precision fp16          # CUDA, with a GradScaler

Under autocast torch's fused recurrent kernels (cuDNN, oneDNN's LSTM) and the linear layers compute in the
lower precision; rnnlab's hand-written kernels and the per-step reference path run in float32 inside it
(`Recurrent` turns autocast off around them, `numerics.full_precision`): they are the path that watches
the gradient through time, whose tiny values are what a 16-bit float cannot hold. Weights, gradients and
the optimiser stay float32; validation and test are scored in float32.

fp16 has too little range for gradients, so its loss is scaled (`torch.amp.GradScaler`): the gradients are
unscaled before the norm is taken and clipped, and a step whose scaled gradient overflowed is skipped by the
scaler (and its scale halved), which is routine, not divergence: the loop records it as a `scaler_skip`
event and the non-finite guard does not count it. A NaN loss is still the guard's. The scaler's state is in
every checkpoint, so a resumed fp16 run continues exactly. bf16 has float32's range and needs no scaler.
fp16 on the CPU is refused: oneDNN has no fp16 LSTM there, and bf16 is the CPU's 16-bit format.

Diagnostics under fp16 observe the scaled loss's gradients: the profile's ratios, γ and the horizon are
unchanged, the absolute norms are multiplied by the scale at that step.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from rnnlab.errors import ConfigError

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """The run's precision on `device`: `autocast()` for the forward, and for fp16 the GradScaler."""

    def __init__(self, name: str, device: torch.device) -> None:
        if name not in DTYPES:
            raise ConfigError(f"precision: one of {', '.join(DTYPES)}, got {name!r}")
        if name == "fp16" and device.type != "cuda":
            raise ConfigError(
                "precision: fp16 needs CUDA (oneDNN has no fp16 LSTM on the CPU); on the CPU use bf16"
            )
        self.name, self.device = name, device
        self.dtype = DTYPES[name]
        self.scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """torch's autocast to the run's 16-bit dtype, or nothing (full precision)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """The gradients at their true size (before their norm is taken and clipped)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The update (the scaler's: skipped if the scaled gradient overflowed), then the scale's update."""
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    @property
    def scale(self) -> float | None:
        return None if self.scaler is None else float(self.scaler.get_scale())

    def overflowed(self, loss: float, norm: float) -> bool:
        """Whether a step's non-finite gradient is the loss scale's overflow (fp16, finite loss): `step`
        skips it and lowers the scale, and the step is not the guard's business."""
        import math

        return self.scaler is not None and math.isfinite(loss) and not math.isfinite(norm)

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


__all__ = ["DTYPES", "Precision"]
