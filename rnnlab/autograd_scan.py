"""The reference scan: any cell's own `step` under autograd, one step at a time.

This is the path of every cell without a fast path (LayerNorm cells, IndRNN, your own) and the obvious
implementation that the fast paths are tested against (`execution="reference"`). Masked steps keep the
previous state and output zeros; an observer gets every step's states and gates after the forward and,
through tensor hooks, every ∂L/∂state_t once the scan's backward is done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from rnnlab import bptt
from rnnlab.cells import Cell


def scan(
    cell: Cell,
    params: dict[str, Tensor],
    x: Tensor,
    state: tuple[Tensor, ...],
    mask: Tensor | None = None,
    observer: bptt.Observer | None = None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run `cell` over x (T, B, I) from `state`; returns the outputs (T, B, H) and the final state."""
    px = cell.project(params, x)  # (T, B, G*H): every step's input projection in one matmul
    watch = _AutogradWatch(observer, px.shape[0], state) if observer is not None else None
    if watch is not None and px.requires_grad:
        px = _AfterBackward.apply(watch.flush, px)
    outputs, states, gates = [], [], []
    for t in range(px.shape[0]):
        new, g = cell.step(params, px[t], state)
        if watch is not None:
            watch.hook(t, new)  # before masking: ∂L/∂(new state) is zero at masked steps
        if mask is not None:
            m = mask[t]
            outputs.append(torch.where(m, new[0], 0.0))
            new = tuple(torch.where(m, n, s) for n, s in zip(new, state, strict=True))
        else:
            outputs.append(new[0])
        state = tuple(new)
        if watch is not None:
            states.append(state)
            gates.append(g)
    if observer is not None:
        observer.forward(
            tuple(torch.stack([s[i].detach() for s in states]) for i in range(len(state))),
            {k: torch.stack([g[k].detach() for g in gates]) for k in gates[0]},
            mask,
        )
    return torch.stack(outputs), state


class _AutogradWatch:
    """Collects `∂L/∂state_t` with tensor hooks; `flush` hands them over once the scan's backward is done."""

    def __init__(self, observer: bptt.Observer, T: int, state: tuple[Tensor, ...]) -> None:
        self.observer, self.zeros = observer, torch.zeros_like(state[0])
        self.grads: list[list[Tensor | None]] = [[None] * T for _ in state]

    def hook(self, t: int, state: tuple[Tensor, ...]) -> None:
        for i, tensor in enumerate(state):
            if tensor.requires_grad:
                tensor.register_hook(self._recorder(i, t))

    def _recorder(self, i: int, t: int) -> Callable[[Tensor], None]:
        def record(grad: Tensor) -> None:
            self.grads[i][t] = grad

        return record

    def flush(self, _: Tensor) -> None:
        """Called after every step's gradient exists; a state the loss never reached gets zeros."""
        self.observer.backward(
            tuple(torch.stack([self.zeros if g is None else g for g in field]) for field in self.grads)
        )


class _AfterBackward(torch.autograd.Function):
    """Identity on px; its backward runs after every step of the scan has back-propagated (px feeds all)."""

    @staticmethod
    def forward(ctx: Any, callback: Callable[[Tensor], None], px: Tensor) -> Tensor:
        ctx.callback = callback
        return px.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor]:
        ctx.callback(grad)
        return None, grad
