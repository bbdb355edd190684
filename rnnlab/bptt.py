"""The lean unrolled path: a forward scan without autograd and a hand-written backward through time.

Per-step autograd costs a fixed ~0.4 ms per step on CPU in graph bookkeeping alone. `scan` instead runs the
whole recurrence inside one `torch.autograd.Function`. The forward writes every step's gates and states into
preallocated (T, B, ·) buffers; the backward first turns them into local derivatives for all steps at once
(a few vectorised ops), so that the walk back through time is only what the recurrence forces:

    t = T-1 … 0:   dh_t = dy_t + dh_t^(from t+1)                # total ∂L/∂h_t (and ∂L/∂c_t for LSTMs)
                   dgates_t = dh_t ⊙ K_t   (K_t: precomputed local derivatives)
                   dh_{t-1}^(from t) = dgates_t W_hh (+ the paths that bypass W_hh)
    dW_hh = Σ_t dgates_tᵀ h_{t-1}                                # one matmul after the loop

Every `∂L/∂h_t` exists anyway and is handed to an observer for free. The input projection `W_ih x + b` of
all steps happens outside, in one matmul under ordinary autograd. Kernels exist for torch's three cells;
other cells take the per-step autograd scan in `layers.py`.

Masks: with variable lengths, `mask[t]` (B, 1) is true while step t is inside the sequence. A masked step
keeps the previous state and outputs zeros, so the final state is the state at each sequence's own end; in
the backward the local derivatives are zeroed there and the state's gradient passes straight through.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


class Observer(Protocol):
    """Receives every step of one (layer, direction): what a probe needs, at no extra cost.

    `forward` gets the states after every step as a tuple of (T, B, H) tensors (h, then c for LSTMs),
    the gate activations by name as (T, B, H) tensors (unspecified at masked steps), and the bool mask
    (T, B, 1) or None. `backward`
    gets the total gradients `∂L/∂h_t` (and `∂L/∂c_t`) as (T, B, H) tensors, zero at masked steps. Time
    runs in processing order: for the reverse direction index 0 is each sequence's last step. The
    tensors are the kernel's own buffers: read them, don't modify them.
    """

    def forward(self, states: tuple[Tensor, ...], gates: dict[str, Tensor], mask: Tensor | None) -> None: ...

    def backward(self, grads: tuple[Tensor, ...]) -> None: ...


class Kernel:
    """Forward and backward through time of one cell type (see the module docstring).

    `forward` returns (outputs (T, B, H), final state, tensors saved for backward, states after each step,
    gates); `backward` gets those saved tensors and returns (∂px, ∂W_hh, ∂b_hh, ∂state_0, the total
    state gradients for an observer).
    """

    def forward(self, px: Tensor, weight: Tensor, bias: Tensor | None, state: tuple[Tensor, ...], keep: Any):
        raise NotImplementedError

    def backward(self, saved: Any, weight: Tensor, d_out: Tensor | None, dstate: list[Tensor], keep: Any):
        raise NotImplementedError


#: elements of the largest (k, B, G*H) block of local derivatives computed at once in a backward: small
#: enough to stay in cache while the loop walks through it, large enough to vectorise well.
CHUNK_ELEMENTS = 1 << 18


def _chunks(T: int, per_step: int) -> list[tuple[int, int]]:
    """Time blocks [lo, hi) from the end backwards, each about CHUNK_ELEMENTS elements."""
    k = max(1, CHUNK_ELEMENTS // per_step)
    return [(max(0, hi - k), hi) for hi in range(T, 0, -k)]


def _state_buffer(first: Tensor, T: int) -> Tensor:
    """(T + 1, B, H) buffer holding the initial state at 0: [t] is the state before step t, [t + 1] after."""
    buf = first.new_empty(T + 1, *first.shape)
    buf[0] = first
    return buf


class RNNKernel(Kernel):
    """`h_t = f(px_t + W_hh h_{t-1})` with the recurrent bias folded into px."""

    def __init__(self, nonlinearity: str) -> None:
        self.tanh = nonlinearity == "tanh"

    def forward(self, px, weight, bias, state, keep):
        px = px if bias is None else px + bias
        T, B, H = px.shape
        wt = weight.t()
        states = _state_buffer(state[0], T)
        out = states[1:] if keep is None else torch.empty_like(px)
        h = state[0]
        for t in range(T):
            h_new = torch.addmm(px[t], h, wt, out=out[t])
            if self.tanh:
                h_new.tanh_()
            else:
                h_new.relu_()
            if keep is not None:
                h = torch.where(keep.mask[t], h_new, h, out=states[t + 1])
                out[t].masked_fill_(keep.padded_mask[t], 0.0)
            else:
                h = h_new
        return out, (h,), (states,), (states[1:],), {"h": states[1:]}

    def backward(self, saved, weight, d_out, dstate, keep):
        (states,) = saved  # at valid steps the state is f(pre); elsewhere its derivative is masked out
        T = states.shape[0] - 1
        dpre = torch.empty_like(states[1:])
        dh = dstate[0]
        seen = []
        for lo, hi in _chunks(T, dpre[0].numel()):
            h = states[lo + 1 : hi + 1]
            local = 1 - h * h if self.tanh else (h > 0).to(h.dtype)  # f'(pre)
            if keep is not None:
                local.masked_fill_(keep.padded_mask[lo:hi], 0.0)
            for t in range(hi - 1, lo - 1, -1):
                if d_out is not None:
                    dh = dh + d_out[t]
                seen.append(dh)
                dp = torch.mul(dh, local[t - lo], out=dpre[t])
                dh = dp @ weight if keep is None else torch.addmm(dh * keep.padded[t], dp, weight)
        d_weight = _flat(dpre).t() @ _flat(states[:-1])
        return dpre, d_weight, dpre.sum((0, 1)), [dh], _observed([seen], keep)


class LSTMKernel(Kernel):
    """torch's LSTM (gates i, f, g, o) with the recurrent bias folded into px."""

    def forward(self, px, weight, bias, state, keep):
        px = px if bias is None else px + bias
        T, B, G = px.shape
        H = G // 4
        wt = weight.t()
        gates, tanh_c = torch.empty_like(px), px.new_empty(T, B, H)
        h_states, c_states = _state_buffer(state[0], T), _state_buffer(state[1], T)
        out = h_states[1:] if keep is None else px.new_empty(T, B, H)
        c_new = c_states[1:] if keep is None else px.new_empty(T, B, H)
        h, c = state
        for t in range(T):
            a = torch.addmm(px[t], h, wt, out=gates[t])
            a[:, : 2 * H].sigmoid_()
            a[:, 2 * H : 3 * H].tanh_()
            a[:, 3 * H :].sigmoid_()
            c_t = torch.mul(a[:, :H], a[:, 2 * H : 3 * H], out=c_new[t]).addcmul_(a[:, H : 2 * H], c)
            h_t = torch.mul(a[:, 3 * H :], torch.tanh(c_t, out=tanh_c[t]), out=out[t])
            if keep is not None:
                h = torch.where(keep.mask[t], h_t, h, out=h_states[t + 1])
                c = torch.where(keep.mask[t], c_t, c, out=c_states[t + 1])
                out[t].masked_fill_(keep.padded_mask[t], 0.0)
            else:
                h, c = h_t, c_t
        i, f, g, o = gates.chunk(4, 2)
        observed = {"i": i, "f": f, "g": g, "o": o, "tanh_c": tanh_c}
        return out, (h, c), (gates, tanh_c, c_states, h_states), (h_states[1:], c_states[1:]), observed

    def backward(self, saved, weight, d_out, dstate, keep):
        gates, tanh_c, c_states, h_states = saved
        T, B, G = gates.shape
        dgates = torch.empty_like(gates)
        dh, dc = dstate
        seen_h, seen_c = [], []
        for lo, hi in _chunks(T, B * G):
            i, f, g, o = gates[lo:hi].chunk(4, 2)
            tc = tanh_c[lo:hi]
            # dgates_t = (dc_t, dc_t, dc_t, dh_t) ⊙ local_t;  dc_t += dh_t ⊙ h_to_c_t;  dc_{t-1} = dc_t ⊙ f_t
            local = torch.cat(
                (g * (i - i * i), c_states[lo:hi] * (f - f * f), i * (1 - g * g), tc * (o - o * o)), 2
            )
            h_to_c = o * (1 - tc * tc)
            c_to_c = f
            if keep is not None:
                padded = keep.padded_mask[lo:hi]
                local.masked_fill_(padded, 0.0)
                h_to_c.masked_fill_(padded, 0.0)
                c_to_c = f.masked_fill(padded, 1.0)
            for t in range(hi - 1, lo - 1, -1):
                k = t - lo
                if d_out is not None:
                    dh = dh + d_out[t]
                dc = torch.addcmul(dc, dh, h_to_c[k])
                seen_h.append(dh)
                seen_c.append(dc)
                dg = torch.mul(torch.cat((dc, dc, dc, dh), 1), local[k], out=dgates[t])
                dc = dc * c_to_c[k]
                dh = dg @ weight if keep is None else torch.addmm(dh * keep.padded[t], dg, weight)
        d_weight = _flat(dgates).t() @ _flat(h_states[:-1])
        return dgates, d_weight, dgates.sum((0, 1)), [dh, dc], _observed([seen_h, seen_c], keep)


class GRUKernel(Kernel):
    """torch's GRU (gates r, z, n): `n = tanh(px_n + r ⊙ (W_hn h + b_hn))`, so b_hh stays inside."""

    def forward(self, px, weight, bias, state, keep):
        T, B, G = px.shape
        H = G // 3
        wt = weight.t()
        hh, rz, n = torch.empty_like(px), px.new_empty(T, B, 2 * H), px.new_empty(T, B, H)
        states = _state_buffer(state[0], T)
        out = states[1:] if keep is None else px.new_empty(T, B, H)
        h = state[0]
        for t in range(T):
            a = torch.addmm(bias, h, wt, out=hh[t]) if bias is not None else torch.mm(h, wt, out=hh[t])
            gate = torch.add(px[t, :, : 2 * H], a[:, : 2 * H], out=rz[t]).sigmoid_()
            n_t = torch.addcmul(px[t, :, 2 * H :], gate[:, :H], a[:, 2 * H :], out=n[t]).tanh_()
            h_t = torch.addcmul(n_t, gate[:, H:], h - n_t, out=out[t])
            if keep is not None:
                h = torch.where(keep.mask[t], h_t, h, out=states[t + 1])
                out[t].masked_fill_(keep.padded_mask[t], 0.0)
            else:
                h = h_t
        r, z = rz.chunk(2, 2)
        return out, (h,), (rz, n, hh, states), (states[1:],), {"r": r, "z": z, "n": n}

    def backward(self, saved, weight, d_out, dstate, keep):
        rz, n_all, hh, states = saved
        T, B, H = n_all.shape
        dhh, dn = torch.empty_like(hh), torch.empty_like(n_all)  # ∂(W_hh h + b_hh), ∂(n's pre-activation)
        dh = dstate[0]
        seen = []
        for lo, hi in _chunks(T, B * 3 * H):
            r, z = rz[lo:hi].chunk(2, 2)
            n, hn = n_all[lo:hi], hh[lo:hi, :, 2 * H :]
            to_n = (1 - z) * (1 - n * n)  # dn_pre = dh ⊙ to_n
            to_rz = torch.cat((to_n * hn * (r - r * r), (states[lo:hi] - n) * (z - z * z)), 2)  # (dr, dz)_pre
            direct = z  # dh_{t-1} gets dh_t ⊙ z_t without passing W_hh
            if keep is not None:
                padded = keep.padded_mask[lo:hi]
                to_n.masked_fill_(padded, 0.0)
                to_rz.masked_fill_(padded, 0.0)
                direct = z.masked_fill(padded, 1.0)
            for t in range(hi - 1, lo - 1, -1):
                k = t - lo
                if d_out is not None:
                    dh = dh + d_out[t]
                seen.append(dh)
                d = dhh[t]
                torch.mul(torch.cat((dh, dh), 1), to_rz[k], out=d[:, : 2 * H])
                torch.mul(torch.mul(dh, to_n[k], out=dn[t]), r[k], out=d[:, 2 * H :])
                dh = torch.addmm(dh * direct[k], d, weight)
        d_weight = _flat(dhh).t() @ _flat(states[:-1])
        dpx = torch.cat((dhh[..., : 2 * H], dn), 2)
        return dpx, d_weight, dhh.sum((0, 1)), [dh], _observed([seen], keep)


class _Keep:
    """A mask in the forms the kernels use: bool (T, B, 1) true at valid / at padded steps, and 1.0 at padded
    steps. Padded steps are masked with fills, not products, so NaN or Inf in the padding cannot leak."""

    def __init__(self, mask: Tensor, dtype: torch.dtype) -> None:
        self.mask = mask
        self.padded_mask = ~mask
        self.padded = self.padded_mask.to(dtype)


def _flat(x: Tensor) -> Tensor:
    return x.reshape(-1, x.shape[-1])


def _observed(per_field: list[list[Tensor]], keep: _Keep | None) -> tuple[Tensor, ...]:
    """Stack the per-step gradients collected backwards in time, zeroed at masked steps."""
    stacked = [torch.stack(field[::-1]) for field in per_field]
    return tuple(s if keep is None else s.masked_fill_(keep.padded_mask, 0.0) for s in stacked)


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
        keep = _Keep(mask, px.dtype) if mask is not None else None
        out, final, saved, states, gates = kernel.forward(px, weight_hh, bias_hh, tuple(state0), keep)
        if observer is not None:
            observer.forward(states, gates, mask)
        ctx.kernel, ctx.observer, ctx.keep = kernel, observer, keep
        ctx.has_bias = bias_hh is not None
        ctx.save_for_backward(weight_hh, *saved)  # version-checked: in-place edits of outputs are caught
        return (out, *(s.clone() for s in final))

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, *d_final):
        weight_hh, *saved = ctx.saved_tensors
        keep = ctx.keep
        like = saved[-1][0]  # every kernel saves its (T + 1, B, H) buffer of h states last
        dstate = [torch.zeros_like(like) if d is None else d for d in d_final]
        if d_out is not None:
            d_out = d_out.contiguous()  # e.g. out.sum() hands back an expanded tensor: slow to index per step
            if keep is not None:
                d_out = d_out.masked_fill(keep.padded_mask, 0.0)  # outputs past the end are constant zeros
        dpx, d_weight, d_bias, dstate0, observed = ctx.kernel.backward(saved, weight_hh, d_out, dstate, keep)
        if ctx.observer is not None:
            ctx.observer.backward(observed)
        return (None, None, dpx, d_weight, d_bias if ctx.has_bias else None, None, *dstate0)


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
