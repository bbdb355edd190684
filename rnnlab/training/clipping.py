"""Gradient clipping: none, by value, by global norm, or adaptive.

Exploding gradients (Pascanu, Mikolov & Bengio 2013) are rare, huge steps; rescaling the gradient when its
global norm ‖g‖ exceeds a threshold keeps the direction and bounds the step. Their suggested threshold
follows the norm's recent average, which `adaptive` implements:

    threshold_t = multiple × m_{t-1} / (1 - β^(t-1)),   m_t = β m_{t-1} + (1 - β) ‖g_t‖      (m_0 = 0)

a bias-corrected running mean of the pre-clip norms before step t (no clipping at the first step).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rnnlab.training.config import ClipConfig


def grads(params: Iterable[nn.Parameter]) -> list[Tensor]:
    return [p.grad for p in params if p.grad is not None]


def global_norm(params: Iterable[nn.Parameter]) -> float:
    """‖g‖₂ over all gradients, NaN or Inf only when a gradient holds one.

    Each gradient's norm in one fused pass in its dtype (`torch._foreach_norm`), combined in float64 by
    `math.hypot` (which never overflows on finite inputs): two tensor ops a step. Only a per-gradient norm
    that is not finite is redone in float64, to tell a float32 overflow of the squares (norms past ~1e19,
    which an exploding RNN reaches) from a gradient that really holds NaN or Inf. So one number also
    answers "is it finite?".
    """
    gs = grads(params)  # .grad is never part of a graph: nothing to detach
    if not gs:
        return 0.0
    norm = math.hypot(*torch.stack(torch._foreach_norm(gs)).tolist())
    if math.isfinite(norm):
        return norm
    return math.hypot(*(float(torch.linalg.vector_norm(g, dtype=torch.float64)) for g in gs))


@dataclass
class Clipped:
    """What one clipping step measured and did."""

    norm: float  # global norm before clipping
    norm_clipped: float  # global norm after clipping
    clipped: bool
    threshold: float | None  # the global-norm threshold in force (None for value clipping and none)


class Clipper:
    """Clips gradients in place as `config.mode` says; `adaptive` keeps its running mean as state."""

    def __init__(self, config: ClipConfig) -> None:
        self.config = config
        self.mean = 0.0  # m_t, the biased running mean of the pre-clip norm
        self.count = 0  # steps seen

    def threshold(self) -> float | None:
        """The global-norm threshold for the next step (None when the mode has none)."""
        c = self.config
        if c.mode == "norm":
            return c.max_norm
        if c.mode == "adaptive":
            if self.count == 0:
                return math.inf
            return c.multiple * self.mean / (1 - c.beta**self.count)
        return None

    def __call__(self, params: Iterable[nn.Parameter], norm: Tensor | float) -> Clipped:
        """Clip the gradients of `params`, whose global norm before clipping is `norm`."""
        params = list(params)
        norm = float(norm)
        threshold = self.threshold()
        clipped, after = False, norm
        if self.config.mode == "value":
            bound = self.config.max_value
            clipped = any(bool((g.abs() > bound).any()) for g in grads(params))
            torch.nn.utils.clip_grad_value_(params, bound)
            after = float(global_norm(params)) if clipped else norm
        elif threshold is not None and norm > threshold:
            clipped = True
            scale = threshold / (norm + 1e-6)  # as torch.nn.utils.clip_grad_norm_
            for g in grads(params):
                g.mul_(scale)
            after = norm * scale  # no second pass over the gradients
        if self.config.mode == "adaptive":
            self.observe(norm)
        return Clipped(norm, after, clipped, threshold)

    def observe(self, norm: float) -> None:
        """Add one pre-clip norm to the running mean (adaptive mode)."""
        self.mean = self.config.beta * self.mean + (1 - self.config.beta) * norm
        self.count += 1

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.count = float(state["mean"]), int(state["count"])
