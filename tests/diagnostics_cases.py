"""Constructed cases for the diagnostics tests: models whose gradient flow is known by construction."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnlab.cells import Cell, HiddenState
from rnnlab.layers import Recurrent


class LinearCell(Cell):
    """`h_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh`: every step's Jacobian is exactly W_hh."""

    def step(self, params: Any, px: Tensor, state: tuple[Tensor, ...]) -> tuple[Any, dict[str, Tensor]]:
        h = px + F.linear(state[0], params["weight_hh"], params.get("bias_hh"))
        return HiddenState(h), {"h": h}


def linear_rnn(rho: float, hidden: int = 8, inputs: int = 3, dtype: torch.dtype = torch.float64) -> Recurrent:
    """A linear RNN with W_hh = ρQ, Q orthogonal: ‖∂h_T/∂h_t‖₂ = ρ^(T−t) exactly."""
    torch.manual_seed(0)
    layer = Recurrent(LinearCell, inputs, hidden, init="orthogonal", dtype=dtype)
    with torch.no_grad():
        layer.weight_hh_l0.mul_(rho)
    return layer


def scaled(module: torch.nn.Module, factor: float) -> torch.nn.Module:
    """Every parameter multiplied by `factor` (pre-activations scaled alike)."""
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(factor)
    return module


def backward(model: Any, x: Tensor, weights: Tensor | None = None) -> Tensor:
    """Forward, a loss with fixed random weights on every output, backward; returns the loss."""
    out = model(x)
    out = out[0] if isinstance(out, tuple) else out
    w = (
        torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
        if weights is None
        else weights
    )
    loss = (out * w).sum()
    loss.backward()
    return loss
