"""One sequence of a `Recurrent` stack's call: what the Jacobian analysis linearises around.

The analysis needs, for every layer and direction, the states s_0 … s_L of one sequence and what the
step Jacobians are built from: the gate activations (closed forms, linearisation.py) or each step's
projected input px_t (autograd). A forward pre-hook records what the layer was called with (`capture`,
`select`); inside `rnnlab.watch` the states and gates of that sequence come from the observed steps
themselves, and `replay` runs it again with each cell's own `project` and `step` where they are needed
(cells without a closed form, and `rnnlab.jacobian_products`), in eval semantics (no dropout between
layers) and in the dtype asked for. Nothing here touches autograd, the parameters or the RNG.

`select` also reads the input for NaN/Inf at the valid steps (a data problem, not the model's) and, unless
a sequence is asked for, takes the longest finite one. For the reverse direction, time is in processing
order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from rnnlab.cells import Cell
from rnnlab.diagnostics import linearisation
from rnnlab.layers import Recurrent


@dataclass
class LayerCall:
    """One sequence of a layer's input: x (L, I) in time order and the initial state, each field (N·D, H).

    `nonfinite_input` is (sample, step) of the first NaN/Inf among the valid steps of the whole batch (in
    time order: the earliest step, then the lowest sample), and `nonfinite_samples` how many sequences
    hold one; (None, 0) for a finite input."""

    x: Tensor
    state0: tuple[Tensor, ...]
    sample: int
    nonfinite_input: tuple[int, int] | None = None
    nonfinite_samples: int = 0


@dataclass
class Trajectory:
    """One layer and direction along one sequence: states (L + 1, n) with s_0 the initial one, and what
    its step Jacobians are built from: gates {name: (L, H)} and/or px (L, G·H).

    A state is flattened as its fields side by side (h, then c for LSTMs): n = H · fields.
    """

    cell: Cell
    params: dict[str, Tensor]
    states: Tensor
    px: Tensor | None = None
    gates: dict[str, Tensor] | None = field(default=None)

    def step_function(self) -> Callable[[Tensor, Tensor], Tensor]:
        """f(s (B, n), px (B, G·H)) -> s' (B, n): the cell's step on flattened states."""
        return linearisation._step_function(self.cell, self.params)

    def linearisation(self) -> linearisation.Linearisation:
        return linearisation.linearise(self.cell, self.params, self.states, self.gates, self.px)

    def nonfinite(self) -> str | None:
        """Why the trajectory cannot be linearised (a NaN/Inf in a weight or a state), or None."""
        bad = [n for n, p in self.params.items() if not bool(torch.isfinite(p).all())]
        if bad:
            return f"{', '.join(bad)} not finite"
        finite = torch.isfinite(self.states).all(1)
        for g in (self.gates or {}).values():
            finite[1:] &= torch.isfinite(g).all(1)
        if not bool(finite.all()):
            first = int(torch.nonzero(~finite)[0])
            return (
                "the initial state is not finite"
                if first == 0
                else f"the state is not finite from step {first - 1}"
            )
        return None


def select(layer: Recurrent, args: tuple[Any, ...], kwargs: dict[str, Any], sample: int | None) -> LayerCall:
    """The sequence `sample` of a call `layer(*args, **kwargs)`, detached; by default the longest with a
    finite input (the longest of all when none is finite)."""
    x, state, lengths, _, _ = layer.inputs(*args, **kwargs)  # (T, B, I), each state (L*D, B, H)
    T, B = x.shape[:2]
    if sample is not None and not 0 <= sample < B:
        raise ValueError(f"sample must index one of the {B} sequences, got {sample}")
    where, count = None, 0
    if lengths is None and bool(torch.isfinite(x.sum())):  # one pass: finite unless a value is not
        finite = torch.ones(T, B, dtype=torch.bool, device=x.device)
    else:
        finite = torch.isfinite(x).all(2)  # (T, B)
        if lengths is not None:
            finite |= torch.arange(T, device=x.device)[:, None] >= lengths  # padding may hold anything
    if not bool(finite.all()):
        bad = ~finite
        step = int(torch.nonzero(bad.any(1))[0])
        where, count = (int(torch.nonzero(bad[step])[0]), step), int(bad.any(0).sum())
    if sample is None:
        length = torch.full((B,), T, device=x.device) if lengths is None else lengths
        if where is not None and bool(finite.all(0).any()):  # one with NaN/Inf only when all have one
            length = torch.where(finite.all(0), length, -1)
        sample = int(torch.argmax(length.cpu()))
    steps = T if lengths is None else int(lengths[sample])
    state0 = tuple(s[:, sample].detach() for s in state)
    return LayerCall(x[:steps, sample].detach().clone(), state0, sample, where, count)


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
        out[unit.suffix] = Trajectory(unit.cell, params, flat, px=px)
        h = flat[1:, : layer.hidden_size]  # (L, H), processing order
        outputs.append(h if unit.direction == 0 else h.flip(0))
    return out
