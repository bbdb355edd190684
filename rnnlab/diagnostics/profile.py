"""`rnnlab.time_profile`: ‖∂L/∂x_t‖ at every time step, for any model, on any kernel.

The black-box view of gradient flow through time: how much the loss depends on each input step. It needs
nothing from the model but a differentiable map from a sequence to an output, so it works on
`torch.nn.LSTM`'s fused kernel and on a user's own model. A vanishing gradient shows as a profile that
falls towards the first steps of a many-to-one task; an exploding one as a profile that rises there.
Cost: one forward and one backward pass; the parameters' `.grad` and the RNG stream are left as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from rnnlab.numerics import flush_denormals


def time_profile(
    model: Callable[[Tensor], Any],
    inputs: Tensor,
    loss_fn: Callable[[Any], Tensor],
    *,
    batch_first: bool = False,
    flush_denormal: bool = True,
) -> Tensor:
    """‖∂L/∂x_t‖ over batch and features for every time step t, L = loss_fn(model(inputs)).

    Args:
        model: anything that maps `inputs` to an output (a module, or a lambda passing lengths).
        inputs: floating-point tensor shaped as the model takes it, time on dim 0, or dim 1 with `batch_first`
            (an unbatched (T, features) input has time on dim 0).
        loss_fn: the output to a scalar loss, e.g. `lambda out: F.cross_entropy(out, y)`.
        batch_first: whether `inputs` is (B, T, ...).
        flush_denormal: flush denormal floats to zero during the pass (`rnnlab.flush_denormals`): a
            vanishing gradient is then fast and reads 0 below 1.2e-38; the caller's setting is restored.

    Returns:
        A float tensor of shape (T,) on the inputs' device.

    Example:
        >>> lstm = torch.nn.LSTM(3, 16)
        >>> rnnlab.time_profile(lambda x: lstm(x)[0][-1], torch.randn(50, 8, 3), lambda h: h.pow(2).sum())
    """
    if not isinstance(inputs, Tensor) or not inputs.is_floating_point():
        raise ValueError("inputs must be a floating-point tensor (embed token ids first and profile that)")
    time_dim = 1 if batch_first and inputs.dim() > 2 else 0
    if inputs.dim() <= time_dim:
        raise ValueError(f"inputs of shape {tuple(inputs.shape)} have no time dimension {time_dim}")
    x = inputs.detach().requires_grad_(True)
    devices = [inputs.device] if inputs.device.type == "cuda" else []
    with torch.enable_grad(), torch.random.fork_rng(devices=devices), flush_denormals(flush_denormal):
        loss = loss_fn(model(x))
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ValueError("loss_fn must return a scalar tensor")
        (grad,) = torch.autograd.grad(loss, x, allow_unused=True)
    if grad is None:
        return torch.zeros(inputs.shape[time_dim], dtype=inputs.dtype, device=inputs.device)
    dims = [d for d in range(grad.dim()) if d != time_dim]
    return torch.linalg.vector_norm(grad, dim=dims) if dims else grad.abs()
