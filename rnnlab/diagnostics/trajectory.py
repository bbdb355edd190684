"""One sequence replayed through a `Recurrent` stack by hand: what the Jacobian analysis linearises around.

The analysis needs, for every layer and direction, the states s_0 … s_L of one sequence and every step's
projected input px_t. A forward pre-hook records what the layer was called with (`capture`); `replay`
runs that one sequence again with each cell's own `project` and `step`, in eval semantics (no dropout
between layers) and in the dtype asked for. Nothing here touches autograd, the parameters or the RNG.

For the reverse direction the replay runs on the sequence reversed, so time is in processing order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rnnlab.cells import Cell
from rnnlab.layers import Recurrent


@dataclass
class LayerCall:
    """One sequence of a layer's input: x (L, I) in time order and the initial state, each field (N·D, H)."""

    x: Tensor
    state0: tuple[Tensor, ...]
    sample: int


@dataclass
class Trajectory:
    """One layer and direction along one sequence: px (L, G·H), states (L + 1, n) with s_0 the initial one.

    A state is flattened as its fields side by side (h, then c for LSTMs): n = H · fields.
    """

    cell: Cell
    params: dict[str, Tensor]
    px: Tensor
    states: Tensor

    def step_function(self) -> Callable[[Tensor, Tensor], Tensor]:
        """f(s (B, n), px (B, G·H)) -> s' (B, n): the cell's step on flattened states."""
        cell, params, H = self.cell, self.params, self.cell.hidden_size

        def f(s: Tensor, px: Tensor) -> Tensor:
            new, _ = cell.step(params, px, tuple(s.split(H, dim=-1)))
            return torch.cat(tuple(new), dim=-1)

        return f


def select(layer: Recurrent, args: tuple[Any, ...], kwargs: dict[str, Any], sample: int | None) -> LayerCall:
    """The sequence `sample` (default: the longest) of a call `layer(*args, **kwargs)`, detached."""
    x, state, lengths, _, _ = layer.inputs(*args, **kwargs)  # (T, B, I), each state (L*D, B, H)
    T, B = x.shape[:2]
    if sample is None:
        sample = 0 if lengths is None else int(torch.argmax(lengths.cpu()))
    if not 0 <= sample < B:
        raise ValueError(f"sample must index one of the {B} sequences, got {sample}")
    steps = T if lengths is None else int(lengths[sample])
    state0 = tuple(s[:, sample].detach() for s in state)
    return LayerCall(x[:steps, sample].detach().clone(), state0, sample)


def capture(layer: Recurrent, sink: Callable[[Recurrent, tuple, dict], None]) -> Any:
    """A forward pre-hook passing every call's (layer, args, kwargs) to `sink`; returns its handle."""

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        sink(layer, args, kwargs)

    return layer.register_forward_pre_hook(hook, with_kwargs=True)


@torch.no_grad()
def replay(layer: Recurrent, call: LayerCall, dtype: torch.dtype = torch.float64) -> dict[str, Trajectory]:
    """Every layer and direction's trajectory along the sequence of `call`, computed in `dtype`, keyed by
    torch's suffix ("l0", "l0_reverse", ...)."""
    x = call.x.to(dtype)
    out: dict[str, Trajectory] = {}
    outputs: list[Tensor] = []
    for k, unit in enumerate(layer.units()):
        if unit.direction == 0 and unit.layer > 0:
            x, outputs = torch.cat(outputs, -1), []
        params = {n: p.detach().to(dtype) for n, p in unit.params.items()}
        px = unit.cell.project(params, x if unit.direction == 0 else x.flip(0))  # (L, G·H)
        state = tuple(s[k : k + 1].to(dtype) for s in call.state0)  # each (1, H)
        states = [torch.cat(state, -1)]
        for t in range(px.shape[0]):
            state, _ = unit.cell.step(params, px[t : t + 1], state)
            states.append(torch.cat(tuple(state), -1))
        flat = torch.cat(states)  # (L + 1, n)
        out[unit.suffix] = Trajectory(unit.cell, params, px, flat)
        h = flat[1:, : layer.hidden_size]  # (L, H), processing order
        outputs.append(h if unit.direction == 0 else h.flip(0))
    return out
