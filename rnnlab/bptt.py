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
all steps is one matmul at the start, and the input gradients are two after the loop. Kernels exist for
torch's three cells; `rnnlab.fused.fast_paths` says which cells may take them, and every other cell runs
the per-step autograd scan (`autograd_scan.py`).

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

    `forward(pre, w_hh, b_hh, state, masks)` gets the input projections `pre` (T, B, G*H), a buffer it may
    overwrite, and returns (outputs (T, B, H), final state, tensors saved for backward, states after each
    step, gates). `backward` gets those saved tensors and returns (∂pre, ∂W_hh, ∂b_hh, ∂state_0, the total
    state gradients for an observer).
    """

    #: b_hh can join b_ih in the input projection (not for GRU, whose n gate multiplies W_hn h + b_hn by r).
    fold_recurrent_bias = True

    def forward(
        self, pre: Tensor, weight: Tensor, bias: Tensor | None, state: tuple[Tensor, ...], masks: Any
    ):
        raise NotImplementedError

    def backward(self, saved: Any, weight: Tensor, d_out: Tensor | None, dstate: list[Tensor], masks: Any):
        raise NotImplementedError

    def scan(
        self,
        x: Tensor,
        params: dict[str, Tensor],
        state: tuple[Tensor, ...],
        mask: Tensor | None,
        observer: Observer | None,
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One layer in one autograd node, `_Scan`, which takes torch's four parameters; a kernel for a cell
        with other parameters (the LayerNorm cells, `bptt_cells.py`) brings a Function of its own."""
        out, *final = _Scan.apply(
            self,
            observer,
            x,
            params["weight_ih"],
            params.get("bias_ih"),
            params["weight_hh"],
            params.get("bias_hh"),
            mask,
            *state,
        )
        return out, tuple(final)


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


def _steps(x: Tensor, lo: int = 0, hi: int | None = None) -> tuple[Tensor, ...]:
    """Per-step views of a (T, ...) tensor's last-dim slice [lo:hi], made once: the loop only indexes."""
    return x[..., lo:hi].unbind(0)


class RNNKernel(Kernel):
    """`h_t = f(pre_t + W_hh h_{t-1})`, the recurrent bias folded into pre."""

    def __init__(self, nonlinearity: str) -> None:
        self.tanh = nonlinearity == "tanh"

    def recurrent(self, weight: Tensor) -> Tensor:
        """What `recur` multiplies h_{t-1} by: W_hhᵀ (a view, made once per forward)."""
        return weight.t()

    @staticmethod
    def recur(pre_t: Tensor, h: Tensor, recurrent: Tensor) -> None:
        """pre_t += W_hh h_{t-1}, in place."""
        pre_t.addmm_(h, recurrent)

    def forward(self, pre, weight, bias, state, masks):
        T = pre.shape[0]
        recurrent = self.recurrent(weight)
        states = _state_buffer(state[0], T)
        out = pre  # activated in place: pre_t becomes h_t
        h_after = _steps(states[1:])
        h = state[0]
        for t, h_new in enumerate(out.unbind(0)):
            self.recur(h_new, h, recurrent)
            if self.tanh:
                h_new.tanh_()
            else:
                h_new.relu_()
            h = _masked_update(masks, t, h_new, h, h_after)
        if masks is None:
            states[1:] = out  # one copy: the outputs are never saved, so they stay the caller's to modify
        return out, (h,), (states,), (states[1:],), {"h": states[1:]}

    def backward(self, saved, weight, d_out, dstate, masks):
        (states,) = saved  # at valid steps the state is f(pre); elsewhere its derivative is masked out
        T = states.shape[0] - 1
        dpre = torch.empty_like(states[1:])
        d_out_t, dpre_t = _next_d_out(d_out), dpre.unbind(0)
        dh = dstate[0] + d_out_t[T - 1]
        seen = []
        for lo, hi in _chunks(T, dpre[0].numel()):
            h = states[lo + 1 : hi + 1]
            local = 1 - h * h if self.tanh else (h > 0).to(h.dtype)  # f'(pre)
            if masks is not None:
                local.masked_fill_(masks.padded_mask[lo:hi], 0.0)
            local_t = local.unbind(0)
            for t in range(hi - 1, lo - 1, -1):
                seen.append(dh)
                dp = torch.mul(dh, local_t[t - lo], out=dpre_t[t])
                dh = torch.addmm(_carry(d_out_t[t - 1], dh, masks, t), dp, weight)
        d_weight = _weight_grad(dpre, states[:-1])
        return dpre, d_weight, dpre.sum((0, 1)), [dh], _observed([seen], masks)


class LSTMKernel(Kernel):
    """torch's LSTM (gates i, f, g, o), the recurrent bias folded into pre."""

    def forward(self, pre, weight, bias, state, masks):
        T, B, G = pre.shape
        H = G // 4
        wt = weight.t()
        gates = pre  # activated in place
        tanh_c, out = pre.new_empty(T, B, H), pre.new_empty(T, B, H)
        h_states, c_states = _state_buffer(state[0], T), _state_buffer(state[1], T)
        c_new = c_states[1:] if masks is None else pre.new_empty(T, B, H)
        steps, i_, f_ = gates.unbind(0), _steps(gates, 0, H), _steps(gates, H, 2 * H)
        if_, g_, o_ = _steps(gates, 0, 2 * H), _steps(gates, 2 * H, 3 * H), _steps(gates, 3 * H)
        c_new_t, tanh_c_t, out_t = c_new.unbind(0), tanh_c.unbind(0), out.unbind(0)
        h_after, c_after = h_states[1:].unbind(0), c_states[1:].unbind(0)
        h, c = state
        for t in range(T):
            steps[t].addmm_(h, wt)
            if_[t].sigmoid_()
            g_[t].tanh_()
            o_[t].sigmoid_()
            c_t = torch.mul(i_[t], g_[t], out=c_new_t[t]).addcmul_(f_[t], c)
            h_t = torch.mul(o_[t], torch.tanh(c_t, out=tanh_c_t[t]), out=out_t[t])
            c = c_t if masks is None else torch.where(masks.mask[t], c_t, c, out=c_after[t])
            h = _masked_update(masks, t, h_t, h, h_after)
        if masks is None:
            h_states[1:] = out
        i, f, g, o = gates.chunk(4, 2)
        observed = {"i": i, "f": f, "g": g, "o": o, "tanh_c": tanh_c}
        return out, (h, c), (gates, tanh_c, c_states, h_states), (h_states[1:], c_states[1:]), observed

    def backward(self, saved, weight, d_out, dstate, masks):
        gates, tanh_c, c_states, h_states = saved
        T, B, G = gates.shape
        dgates = torch.empty_like(gates)
        dgates_t, d_out_t = dgates.unbind(0), _next_d_out(d_out)
        dh, dc = dstate[0] + d_out_t[T - 1], dstate[1]
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
            if masks is not None:
                padded = masks.padded_mask[lo:hi]
                local.masked_fill_(padded, 0.0)
                h_to_c.masked_fill_(padded, 0.0)
                c_to_c = f.masked_fill(padded, 1.0)
            local_t, h_to_c_t, c_to_c_t = local.unbind(0), h_to_c.unbind(0), c_to_c.unbind(0)
            for t in range(hi - 1, lo - 1, -1):
                k = t - lo
                dc = torch.addcmul(dc, dh, h_to_c_t[k])
                seen_h.append(dh)
                seen_c.append(dc)
                dg = torch.mul(torch.cat((dc, dc, dc, dh), 1), local_t[k], out=dgates_t[t])
                dc = dc * c_to_c_t[k]
                dh = torch.addmm(_carry(d_out_t[t - 1], dh, masks, t), dg, weight)
        d_weight = _weight_grad(dgates, h_states[:-1])
        return dgates, d_weight, dgates.sum((0, 1)), [dh, dc], _observed([seen_h, seen_c], masks)


class GRUKernel(Kernel):
    """torch's GRU (gates r, z, n): `n = tanh(pre_n + r ⊙ (W_hn h + b_hn))`, so b_hh stays inside."""

    fold_recurrent_bias = False

    def forward(self, pre, weight, bias, state, masks):
        T, B, G = pre.shape
        H = G // 3
        wt = weight.t()
        hh = pre.new_empty(T, B, G)  # W_hh h_{t-1} + b_hh, every step
        if bias is not None:
            hh.copy_(bias.expand_as(hh))
        else:
            hh.zero_()
        rz, n = pre[..., : 2 * H], pre[..., 2 * H :]  # activated in place
        states, out = _state_buffer(state[0], T), pre.new_empty(T, B, H)
        hh_t, hh_rz, hh_n = hh.unbind(0), _steps(hh, 0, 2 * H), _steps(hh, 2 * H)
        rz_t, r_t, z_t, n_t = (
            _steps(pre, 0, 2 * H),
            _steps(pre, 0, H),
            _steps(pre, H, 2 * H),
            _steps(pre, 2 * H),
        )
        out_t, h_after = out.unbind(0), states[1:].unbind(0)
        h = state[0]
        for t in range(T):
            hh_t[t].addmm_(h, wt)
            rz_t[t].add_(hh_rz[t]).sigmoid_()
            n_new = n_t[t].addcmul_(r_t[t], hh_n[t]).tanh_()
            h_t = torch.addcmul(n_new, z_t[t], h - n_new, out=out_t[t])
            h = _masked_update(masks, t, h_t, h, h_after)
        if masks is None:
            states[1:] = out
        r, z = rz.chunk(2, 2)
        return out, (h,), (pre, hh, states), (states[1:],), {"r": r, "z": z, "n": n}

    def backward(self, saved, weight, d_out, dstate, masks):
        gates, hh, states = saved
        T, B, G = gates.shape
        H = G // 3
        dhh, dn = torch.empty_like(hh), gates.new_empty(T, B, H)  # ∂(W_hh h + b_hh), ∂(n's pre-activation)
        dhh_t, drz_t, dhn_t, dn_t = dhh.unbind(0), _steps(dhh, 0, 2 * H), _steps(dhh, 2 * H), dn.unbind(0)
        d_out_t = _next_d_out(d_out)
        dh = dstate[0] + d_out_t[T - 1]
        seen = []
        for lo, hi in _chunks(T, B * G):
            r, z, n = gates[lo:hi].chunk(3, 2)
            hn = hh[lo:hi, :, 2 * H :]
            to_n = (1 - z) * (1 - n * n)  # dn_pre = dh ⊙ to_n
            to_rz = torch.cat((to_n * hn * (r - r * r), (states[lo:hi] - n) * (z - z * z)), 2)  # (dr, dz)_pre
            direct = z  # dh_{t-1} gets dh_t ⊙ z_t without passing W_hh
            if masks is not None:
                padded = masks.padded_mask[lo:hi]
                to_n.masked_fill_(padded, 0.0)
                to_rz.masked_fill_(padded, 0.0)
                direct = z.masked_fill(padded, 1.0)
            to_n_t, to_rz_t, r_t, direct_t = to_n.unbind(0), to_rz.unbind(0), r.unbind(0), direct.unbind(0)
            for t in range(hi - 1, lo - 1, -1):
                k = t - lo
                seen.append(dh)
                torch.mul(torch.cat((dh, dh), 1), to_rz_t[k], out=drz_t[t])
                torch.mul(torch.mul(dh, to_n_t[k], out=dn_t[t]), r_t[k], out=dhn_t[t])
                dh = torch.addmm(torch.addcmul(d_out_t[t - 1], dh, direct_t[k]), dhh_t[t], weight)
        d_weight = _weight_grad(dhh, states[:-1])
        dpre = torch.cat((dhh[..., : 2 * H], dn), 2)
        return dpre, d_weight, dhh.sum((0, 1)), [dh], _observed([seen], masks)


class _Masks:
    """A mask in the forms the kernels use: bool (T, B, 1) true at valid / at padded steps, and 1.0 at padded
    steps. Padded steps are masked with fills, not products, so NaN or Inf in the padding cannot leak."""

    def __init__(self, mask: Tensor, dtype: torch.dtype) -> None:
        self.mask = mask
        self.padded_mask = ~mask
        self.padded = self.padded_mask.to(dtype)


def _masked_update(
    masks: _Masks | None, t: int, h_new: Tensor, h: Tensor, h_after: tuple[Tensor, ...]
) -> Tensor:
    """The state after step t: `h_new` inside the sequence, `h` kept in its padding (written to `h_after[t]`);
    `h_new`, the step's output, is zeroed in the padding."""
    if masks is None:
        return h_new
    h = torch.where(masks.mask[t], h_new, h, out=h_after[t])
    h_new.masked_fill_(masks.padded_mask[t], 0.0)
    return h


def _next_d_out(d_out: Tensor) -> list[Tensor]:
    """∂L/∂y_t for t = 0 … T-1, and zeros at index -1 (for t = 0, whose "previous" step is the initial
    state): the loop adds ∂L/∂y_{t-1} inside the matmul that carries the gradient from step t to t-1."""
    return [*d_out.unbind(0), torch.zeros_like(d_out[0])]


def _carry(d_out_prev: Tensor, dh: Tensor, masks: _Masks | None, t: int) -> Tensor:
    """What reaches h_{t-1} besides W_hh: ∂L/∂y_{t-1}, plus dh_t itself where step t is padding."""
    return d_out_prev if masks is None else torch.addcmul(d_out_prev, dh, masks.padded[t])


def _flat(x: Tensor) -> Tensor:
    return x.reshape(-1, x.shape[-1])


def _weight_grad(d: Tensor, x: Tensor) -> Tensor:
    """The gradient of a weight applied as `x @ Wᵀ` at every step: Σ over steps and rows of dᵀ x, (G, n)
    from d (..., G) and x (..., n). Computed as (xᵀ d)ᵀ, which gives the same sums and which MKL runs
    1.1-5x faster on the CPU than dᵀ x (the most at a small n, an input of a few features)."""
    return (_flat(x).t() @ _flat(d)).t()


def _observed(per_field: list[list[Tensor]], masks: _Masks | None) -> tuple[Tensor, ...]:
    """Stack the per-step gradients collected backwards in time, zeroed at masked steps."""
    stacked = [torch.stack(field[::-1]) for field in per_field]
    return tuple(s if masks is None else s.masked_fill_(masks.padded_mask, 0.0) for s in stacked)


class _Scan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kernel, observer, x, w_ih, b_ih, w_hh, b_hh, mask, *state0):
        T, B, _ = x.shape
        fold = kernel.fold_recurrent_bias and b_hh is not None
        bias = b_ih if not fold else (b_hh if b_ih is None else b_ih + b_hh)
        x_flat = x.reshape(T * B, -1)
        pre = torch.addmm(bias, x_flat, w_ih.t()) if bias is not None else x_flat @ w_ih.t()
        masks = _Masks(mask, x.dtype) if mask is not None else None
        recurrent_bias = None if fold else b_hh  # folded: already inside pre
        out, final, saved, states, gates = kernel.forward(
            pre.view(T, B, -1), w_hh, recurrent_bias, tuple(state0), masks
        )
        if observer is not None:
            observer.forward(states, gates, mask)
        ctx.kernel, ctx.observer, ctx.masks, ctx.fold = kernel, observer, masks, fold
        ctx.save_for_backward(x, w_ih, w_hh, *saved)
        return (out, *(s.clone() for s in final))

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, *d_final):
        x, w_ih, w_hh, *saved = ctx.saved_tensors
        masks = ctx.masks
        like = saved[-1][0]  # every kernel saves its (T + 1, B, H) buffer of h states last
        dstate = [torch.zeros_like(like) if d is None else d for d in d_final]
        if d_out is None:
            d_out = like.new_zeros(len(saved[-1]) - 1, *like.shape)
        d_out = d_out.contiguous()  # e.g. out.sum() hands back an expanded tensor: slow to index per step
        if masks is not None:
            d_out = d_out.masked_fill(masks.padded_mask, 0.0)  # outputs past the end are constant zeros
        dpre, d_w_hh, d_b_hh, dstate0, observed = ctx.kernel.backward(saved, w_hh, d_out, dstate, masks)
        if ctx.observer is not None:
            ctx.observer.backward(observed)
        need = ctx.needs_input_grad
        dpre_flat = _flat(dpre)
        dx = (dpre_flat @ w_ih).view_as(x) if need[2] else None
        d_w_ih = _weight_grad(dpre_flat, x) if need[3] else None
        d_b_ih = (d_b_hh if ctx.fold else dpre_flat.sum(0)) if need[4] else None
        return (None, None, dx, d_w_ih, d_b_ih, d_w_hh, d_b_hh if need[6] else None, None, *dstate0)


def scan(
    kernel: Kernel,
    x: Tensor,
    params: dict[str, Tensor],
    state: tuple[Tensor, ...],
    mask: Tensor | None = None,
    observer: Observer | None = None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run one layer over x (T, B, I) from `state` with torch's parameter names (`weight_ih`, ...); returns
    the outputs (T, B, H) and the final state. The input projection of all steps is one matmul inside."""
    return kernel.scan(x, params, state, mask, observer)
