"""The lean unrolled path: a forward scan without autograd and a hand-written backward through time.

Per-step autograd costs a fixed ~0.4 ms per step on CPU in graph bookkeeping alone. `scan` instead runs
the whole recurrence inside one `torch.autograd.Function`: the forward keeps only what the backward needs
(gate activations and states), and the backward walks the time axis once,

    t = T-1 … 0:   dh_t = dy_t + (dh_{t+1} through the recurrence)      # total ∂L/∂h_t
                   dgates_t = step_backward(dh_t, dc_t, saved_t)
    dW_hh = Σ_t dgates_t^T h_{t-1}                                       # one matmul after the loop

so every `∂L/∂h_t` (and `∂L/∂c_t`) exists anyway and is handed to an observer for free. The input
projection `W_ih x + b` of all steps happens outside, in one matmul under ordinary autograd.

A kernel describes one cell type: `forward_step` (new state, tensors kept for backward) and
`backward_step` (gradients of the input projection and of the recurrent projection `W_hh h + b_hh`, the
part of each state's gradient that bypasses `W_hh`, and the total `∂L/∂c_t` where there is a c).
Kernels exist for torch's three cells; other cells use the per-step autograd scan in `layers.py`.

Masks: with variable lengths, `mask[t]` (B, 1) is 1 while step t is inside the sequence. A masked step
keeps the previous state and outputs zeros, so the final state is the state at each sequence's own end.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


class Observer(Protocol):
    """Receives every step of one (layer, direction): what a probe needs, at no extra cost.

    `forward` gets the states after every step as a tuple of (T, B, H) tensors (h, then c for LSTMs),
    the gate activations by name as (T, B, H) tensors, and the bool mask (T, B, 1) or None. `backward`
    gets the total gradients `∂L/∂h_t` (and `∂L/∂c_t`) as (T, B, H) tensors, zero at masked steps. Time
    runs in processing order: for the reverse direction index 0 is each sequence's last step.
    """

    def forward(self, states: tuple[Tensor, ...], gates: dict[str, Tensor], mask: Tensor | None) -> None: ...

    def backward(self, grads: tuple[Tensor, ...]) -> None: ...


class Kernel:
    """Hand-derived forward and backward of one step of a cell type (see the module docstring)."""

    gate_names: tuple[str, ...] = ()
    fold_recurrent_bias = True  # b_hh can be added to the input projection (not for GRU's n gate)

    def forward_step(self, px: Tensor, state: tuple[Tensor, ...], weight_hh: Tensor, bias_hh: Tensor | None):
        raise NotImplementedError

    def backward_step(self, dstate: list[Tensor], saved: tuple[Tensor, ...], weight_hh: Tensor):
        raise NotImplementedError

    def gates(self, saved: tuple[Tensor, ...]) -> dict[str, Tensor]:
        raise NotImplementedError


class RNNKernel(Kernel):
    def __init__(self, nonlinearity: str) -> None:
        self.tanh = nonlinearity == "tanh"

    def forward_step(self, px, state, weight_hh, bias_hh):
        pre = torch.addmm(px, state[0], weight_hh.t())
        h = pre.tanh_() if self.tanh else pre.relu_()
        return (h,), (h,)

    def backward_step(self, dstate, saved, weight_hh):
        (h,) = saved
        dpre = dstate[0] * (1 - h * h) if self.tanh else dstate[0] * (h > 0)
        return dpre, dpre, [None], ()

    def gates(self, saved):
        return {"h": saved[0]}


class LSTMKernel(Kernel):
    gate_names = ("i", "f", "g", "o")

    def forward_step(self, px, state, weight_hh, bias_hh):
        h, c = state
        gates = torch.addmm(px, h, weight_hh.t())  # (B, 4H)
        H = h.shape[1]
        gates[:, : 2 * H].sigmoid_()
        gates[:, 2 * H : 3 * H].tanh_()
        gates[:, 3 * H :].sigmoid_()
        i, f, g, o = gates.chunk(4, 1)
        c_new = torch.addcmul(i * g, f, c)
        tanh_c = torch.tanh(c_new)
        return (o * tanh_c, c_new), (gates, c, tanh_c)

    def backward_step(self, dstate, saved, weight_hh):
        dh, dc = dstate
        gates, c_prev, tanh_c = saved
        i, f, g, o = gates.chunk(4, 1)
        dc = torch.addcmul(dc, dh * o, 1 - tanh_c * tanh_c)  # ∂L/∂c_t, total
        dgates = torch.cat(
            (
                dc * g * i * (1 - i),
                dc * c_prev * f * (1 - f),
                dc * i * (1 - g * g),
                dh * tanh_c * o * (1 - o),
            ),
            1,
        )
        return dgates, dgates, [None, dc * f], (dc,)

    def gates(self, saved):
        gates, _, tanh_c = saved
        i, f, g, o = gates.chunk(4, 1)
        return {"i": i, "f": f, "g": g, "o": o, "tanh_c": tanh_c}


class GRUKernel(Kernel):
    gate_names = ("r", "z", "n")
    fold_recurrent_bias = False

    def forward_step(self, px, state, weight_hh, bias_hh):
        (h,) = state
        hh = torch.addmm(bias_hh, h, weight_hh.t()) if bias_hh is not None else h @ weight_hh.t()
        H = h.shape[1]
        rz = torch.sigmoid(px[:, : 2 * H] + hh[:, : 2 * H])
        r, z = rz.chunk(2, 1)
        hn = hh[:, 2 * H :]
        n = torch.tanh(torch.addcmul(px[:, 2 * H :], r, hn))
        h_new = torch.addcmul(n, z, h - n)
        return (h_new,), (rz, n, hn, h)

    def backward_step(self, dstate, saved, weight_hh):
        (dh,) = dstate
        rz, n, hn, h_prev = saved
        r, z = rz.chunk(2, 1)
        dn = dh * (1 - z) * (1 - n * n)
        dr = dn * hn * r * (1 - r)
        dz = dh * (h_prev - n) * z * (1 - z)
        dpx = torch.cat((dr, dz, dn), 1)
        dhh = torch.cat((dr, dz, dn * r), 1)
        return dpx, dhh, [dh * z], ()

    def gates(self, saved):
        r, z = saved[0].chunk(2, 1)
        return {"r": r, "z": z, "n": saved[1]}


def kernel_for(cell: Any) -> Kernel | None:
    """The hand-written kernel for a cell of torch's three types, or None for any other cell."""
    from rnnlab.cells import GRUCell, LSTMCell, RNNCell

    if type(cell) is LSTMCell:
        return LSTMKernel()
    if type(cell) is GRUCell:
        return GRUKernel()
    if type(cell) is RNNCell:
        return RNNKernel(cell.nonlinearity)
    return None


class _Scan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kernel, observer, px, weight_hh, bias_hh, mask, *state0):
        T = px.shape[0]
        if kernel.fold_recurrent_bias and bias_hh is not None:
            px = px + bias_hh
        keep = mask.to(px.dtype) if mask is not None else None
        state = tuple(state0)
        prev_h: list[Tensor] = []
        saved: list[tuple[Tensor, ...]] = []
        outputs: list[Tensor] = []
        states: list[tuple[Tensor, ...]] = []
        for t in range(T):
            new, kept = kernel.forward_step(px[t], state, weight_hh, bias_hh)
            prev_h.append(state[0])
            saved.append(kept)
            if mask is not None and keep is not None:
                m = mask[t]
                outputs.append(new[0] * keep[t])
                new = tuple(torch.where(m, n, s) for n, s in zip(new, state, strict=True))
            else:
                outputs.append(new[0])
            state = new
            if observer is not None:
                states.append(state)
        if observer is not None:
            stacked = tuple(torch.stack(s) for s in zip(*states, strict=True))
            gates = {k: torch.stack([kernel.gates(s)[k] for s in saved]) for k in kernel.gates(saved[0])}
            observer.forward(stacked, gates, mask)
        ctx.kernel, ctx.observer, ctx.saved, ctx.prev_h = kernel, observer, saved, prev_h
        ctx.has_bias = bias_hh is not None
        ctx.save_for_backward(weight_hh, keep)
        return (torch.stack(outputs), *(s.clone() for s in state))

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, *d_final):
        weight_hh, keep = ctx.saved_tensors
        kernel, saved, prev_h = ctx.kernel, ctx.saved, ctx.prev_h
        T = len(saved)
        dstate = [torch.zeros_like(prev_h[0]) if d is None else d for d in d_final]
        if d_out is None:
            d_out = torch.zeros((T, *prev_h[0].shape), dtype=prev_h[0].dtype, device=prev_h[0].device)
        dpx: list[Tensor] = [d_out] * T  # placeholders, each overwritten below
        dhh: list[Tensor] = [d_out] * T
        observed: list[tuple[Tensor, ...]] = []
        for t in range(T - 1, -1, -1):
            if keep is not None:
                m = keep[t]
                bypass = [d * (1 - m) for d in dstate]  # masked step: the state passed straight through
                dnew = [(dstate[0] + d_out[t]) * m, *(d * m for d in dstate[1:])]
            else:
                dnew = [dstate[0] + d_out[t], *dstate[1:]]
            dpx_t, dhh_t, direct, dc_total = kernel.backward_step(dnew, saved[t], weight_hh)
            dh_prev = dhh_t @ weight_hh if direct[0] is None else torch.addmm(direct[0], dhh_t, weight_hh)
            dstate = [dh_prev, *direct[1:]]
            if keep is not None:
                dstate = [d + b for d, b in zip(dstate, bypass, strict=True)]
            dpx[t], dhh[t] = dpx_t, dhh_t
            if ctx.observer is not None:
                observed.append((dnew[0], *dc_total))
        dhh_all = torch.stack(dhh)  # (T, B, G*H)
        flat = dhh_all.reshape(-1, dhh_all.shape[-1])
        d_weight = flat.t() @ torch.stack(prev_h).reshape(flat.shape[0], -1)
        dpx_all = dhh_all if dpx[0] is dhh[0] else torch.stack(dpx)
        d_bias = None
        if ctx.has_bias:
            d_bias = (dpx_all if kernel.fold_recurrent_bias else dhh_all).sum((0, 1))
        if ctx.observer is not None:
            ctx.observer.backward(tuple(torch.stack(g[::-1]) for g in zip(*observed, strict=True)))
        return (None, None, dpx_all, d_weight, d_bias, None, *dstate)


def scan(
    kernel: Kernel,
    px: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None,
    state: tuple[Tensor, ...],
    mask: Tensor | None = None,
    observer: Observer | None = None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run the recurrence over px (T, B, G*H) from `state`; returns outputs (T, B, H) and the final state."""
    out, *final = _Scan.apply(kernel, observer, px, weight_hh, bias_hh, mask, *state)
    return out, tuple(final)
