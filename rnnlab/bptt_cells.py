"""Hand-written forward and backward through time for the cells torch does not fuse: IndRNN, the
orthogonal RNN and the LayerNorm LSTM and GRU, in the scheme of `bptt.py` (one autograd node per layer and
direction, preallocated (T, B, ·) buffers, local derivatives for cache-sized blocks of steps, every step's
state, gates and total `∂L/∂state_t` handed to an observer, masked steps that keep the state and output
zeros).

IndRNN has torch's parameter names with a vector `weight_hh`, so it runs in `bptt._Scan`; its recurrence is
elementwise, with no matmul per step, and its backward walk is one fused multiply-add per step:

    h_t = f(pre_t + u ⊙ h_{t-1}),  u = clamp(weight_hh, ±recurrent_max)
    dh_{t-1} = dy_{t-1} + dh_t ⊙ f'_t ⊙ u,   ∂pre_t = dh_t ⊙ f'_t,   ∂u = Σ_t ∂pre_t ⊙ h_{t-1}

(∂weight_hh is ∂u inside ±recurrent_max and zero outside, as torch's clamp gives.)

The orthogonal cell also runs in `bptt._Scan`, modReLU's bias b (`bias_mod`) in the slot of torch's b_hh,
unfolded since it acts inside the nonlinearity. Its recurrence is the Elman kernel's with modReLU for f:

    h_t = sign(z_t) ⊙ relu(|z_t| + b),  z_t = pre_t + W_hh h_{t-1}
    ∂h_t/∂z_t = 1[h_t ≠ 0],   ∂h_t/∂b = sign(h_t)

Both derivatives come from h_t alone, so the states are all the backward keeps: h_t ≠ 0 exactly where
z_t ≠ 0 and |z_t| + b > 0, and then sign(h_t) = sign(z_t). At z_t = 0 both are 0, as autograd gives for the
cell's `step` (torch.sign(0) = 0). W_hh is the matrix the layer's parametrization computes: the kernel
returns ∂W_hh, and autograd carries it on to the parametrization's own tensors.

The LayerNorm cells carry layer-norm parameters instead of biases, so they run in `_LayerNormScan`. With
`LN(z) = ẑ ⊙ w + b`, `ẑ = (z - mean z) / sqrt(var z + eps)` over the last dimension:

    pre_t = LN_ih(W_ih x_t)                    # all steps in one matmul and one layer norm
    gates_t = pre_t + LN_hh(W_hh h_{t-1})      # the LSTM: the recurrent shift joins the input's
    LSTM: c_t = f ⊙ c_{t-1} + i ⊙ g,  h_t = o ⊙ tanh(LN_c(c_t));   GRU: torch's GRU maths on the two LNs

Each step's layer norms are torch's own (`native_layer_norm` and its backward, one op each), their means
and reciprocal deviations kept from the forward. Two things are specific to these kernels, both measured:
- tanh(a) is computed as 2σ(2a) - 1 (the LSTM's g and tanh_c, the GRU's n): ATen's CPU tanh costs about
  five times its sigmoid, and the 2a comes free by doubling that block of the layer norm's weight and shift
  in the forward (the backward, which works with ∂a, uses the plain parameters);
- the backward finishes each block of steps before the next: the block's ∂pre goes at once through the
  input's layer norm into ∂x and ∂W_ih, and its share of ∂W_hh and of the layer-norm parameters is added,
  so no (T, B, G*H) gradient is ever allocated (on CPU the page faults of a fresh buffer that size cost
  more than the arithmetic done in it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnlab import bptt
from rnnlab.bptt import (
    _carry,
    _chunks,
    _flat,
    _masked_update,
    _Masks,
    _next_d_out,
    _observed,
    _state_buffer,
    _steps,
    _weight_grad,
)
from rnnlab.cells import Cell, LayerNormGRUCell, LayerNormLSTMCell

_layer_norm = torch.native_layer_norm  # (z, shape, w, b, eps) -> (LN(z), mean, 1/σ), each row
_layer_norm_backward = torch.ops.aten.native_layer_norm_backward.default  # -> (∂z, ∂w, ∂b), as asked


class IndRNNKernel(bptt.RNNKernel):
    """IndRNN (see the module docstring): `weight` is the vector u (H,), clamped to ±recurrent_max; the
    forward is the Elman kernel's with u ⊙ h_{t-1} for W_hh h_{t-1}."""

    def __init__(self, nonlinearity: str, recurrent_max: float) -> None:
        super().__init__(nonlinearity)
        self.recurrent_max = recurrent_max

    def recurrent(self, weight: Tensor) -> Tensor:
        return weight.clamp(-self.recurrent_max, self.recurrent_max)

    @staticmethod
    def recur(pre_t: Tensor, h: Tensor, recurrent: Tensor) -> None:
        pre_t.addcmul_(recurrent, h)

    def backward(self, saved, weight, d_out, dstate, masks):
        (states,) = saved  # at valid steps the state is f(pre); elsewhere its derivative is masked out
        T = states.shape[0] - 1
        rmax = self.recurrent_max
        u = weight.clamp(-rmax, rmax)
        d_out_t = _next_d_out(d_out)
        dh = dstate[0] + d_out_t[T - 1]
        seen = []
        for lo, hi in _chunks(T, states[0].numel()):
            carry = self._local(states[lo + 1 : hi + 1]).mul_(u)  # dh_{t-1} gets dh_t ⊙ f'_t ⊙ u ...
            if masks is not None:
                carry.masked_fill_(masks.padded_mask[lo:hi], 1.0)  # ... or all of dh_t where t is padding
            carry_t = carry.unbind(0)
            for t in range(hi - 1, lo - 1, -1):
                seen.append(dh)
                dh = torch.addcmul(d_out_t[t - 1], dh, carry_t[t - lo])
        (grads,) = _observed([seen], masks)  # zero at masked steps, so ∂pre is too
        dpre = self._local(states[1:]).mul_(grads)
        d_u = torch.einsum("tbh,tbh->h", dpre, states[:-1])
        d_weight = d_u.masked_fill((weight < -rmax) | (weight > rmax), 0.0)
        return dpre, d_weight, None, [dh], (grads,)

    def _local(self, h: Tensor) -> Tensor:
        """f'(pre) from h = f(pre), a new tensor."""
        return 1 - h * h if self.tanh else (h > 0).to(h.dtype)


class OrthogonalKernel(bptt.Kernel):
    """`OrthogonalCell` (see the module docstring): `h_t = modReLU(pre_t + W_hh h_{t-1}; b)`, `bias` being
    modReLU's b."""

    fold_recurrent_bias = False  # b is inside the nonlinearity, not a shift of pre

    def scan(self, x, params, state, mask, observer):
        return super().scan(x, {**params, "bias_hh": params["bias_mod"]}, state, mask, observer)

    def forward(self, pre, weight, bias, state, masks):
        T = pre.shape[0]
        wt = weight.t()
        states = _state_buffer(state[0], T)
        out = pre  # activated in place: pre_t becomes h_t
        sign = pre.new_empty(pre.shape[1:])  # sign(z_t), one step at a time
        h_after = _steps(states[1:])
        h = state[0]
        for t, h_new in enumerate(out.unbind(0)):
            h_new.addmm_(h, wt)
            torch.sign(h_new, out=sign)
            h_new.abs_().add_(bias).relu_().mul_(sign)  # the ops of `cells.modrelu`, so the same rounding
            h = _masked_update(masks, t, h_new, h, h_after)
        if masks is None:
            states[1:] = out  # one copy: the outputs are never saved, so they stay the caller's to modify
        return out, (h,), (states,), (states[1:],), {"h": states[1:]}

    def backward(self, saved, weight, d_out, dstate, masks):
        (states,) = saved  # at valid steps h_t = modReLU(z_t); elsewhere its derivative is masked out
        T = states.shape[0] - 1
        dpre, grads = torch.empty_like(states[1:]), torch.empty_like(states[1:])  # grads: ∂L/∂h_t, observed
        d_out_t, dpre_t, grads_t = _next_d_out(d_out), dpre.unbind(0), grads.unbind(0)
        dh = torch.add(dstate[0], d_out_t[T - 1], out=grads_t[T - 1])
        d_bias = states.new_zeros(states.shape[-1])
        for lo, hi in _chunks(T, dpre[0].numel()):
            to_bias = states[lo + 1 : hi + 1].sign()  # ∂h_t/∂b
            if masks is not None:
                to_bias.masked_fill_(masks.padded_mask[lo:hi], 0.0)
            local_t = to_bias.abs().unbind(0)  # ∂h_t/∂z_t = 1[h_t ≠ 0]
            for t in range(hi - 1, lo - 1, -1):
                dz = torch.mul(dh, local_t[t - lo], out=dpre_t[t])
                dh = torch.addmm(
                    _carry(d_out_t[t - 1], dh, masks, t), dz, weight, out=grads_t[t - 1] if t else None
                )
            # while the block is in cache: ∂b = Σ ∂h_t ⊙ sign(h_t) = Σ ∂z_t ⊙ sign(h_t)
            d_bias += to_bias.mul_(dpre[lo:hi]).sum((0, 1))
        d_weight = _weight_grad(dpre, states[:-1])
        return dpre, d_weight, d_bias, [dh], _zero_padding((grads,), masks)


class _LayerNormKernel(bptt.Kernel):
    """A kernel of a LayerNorm cell, run by `_LayerNormScan`. `forward(pre, W_hh, norms, state, masks)` gets
    the normalised input projections `pre` (T, B, G*H) and `norms`, the cell's recurrent layer-norm
    parameters by name without the `ln_` prefix (`hh_weight`, ...), and returns what `bptt.Kernel.forward`
    returns. `backward(saved, W_hh, d_out, dstate, masks, inputs)` hands each finished block's ∂pre to
    `inputs` (an `_InputGrads`) and returns (∂W_hh, the norms' gradients by name, ∂state_0, the total state
    gradients for an observer)."""

    #: the LSTM's two gate shifts add up, so `ln_hh_bias` joins `ln_ih_bias` in the input's layer norm.
    fold_recurrent_bias = True

    #: the cell class this kernel computes.
    cell_type: type[Cell]
    #: the helpers that a LayerNorm cell's `step` and `project` compute with: a subclass overriding one of
    #: them has maths of its own (`fused.fast_paths` checks only step, project and parameter_shapes).
    helpers = ("_norm", "_recurrent")

    #: gate blocks, and the one computed as tanh(a) = 2σ(2a) - 1 (ATen's CPU tanh costs about five times its
    #: sigmoid, and doubling the block's layer-norm weight and shift doubles a for free).
    gate_count: int
    tanh_block = 2

    def __init__(self, eps: float) -> None:
        self.eps = eps

    @classmethod
    def of(cls, cell: Any) -> _LayerNormKernel | None:
        """This kernel for `cell` (its `eps` honoured), or None where the cell's class overrides a helper."""
        same = all(getattr(type(cell), name) is getattr(cls.cell_type, name) for name in cls.helpers)
        return cls(cell.eps) if same else None

    def scan(self, x, params, state, mask, observer):
        out, *final = _LayerNormScan.apply(
            self,
            observer,
            x,
            params["weight_ih"],
            params["weight_hh"],
            params["ln_ih_weight"],
            params.get("ln_ih_bias"),
            params["ln_hh_weight"],
            params.get("ln_hh_bias"),
            params.get("ln_c_weight"),
            params.get("ln_c_bias"),
            mask,
            *state,
        )
        return out, tuple(final)


class LayerNormLSTMKernel(_LayerNormKernel):
    """`LayerNormLSTMCell`: gates i, f, g, o of `pre_t + LN_hh(W_hh h_{t-1})`, `h_t = o ⊙ tanh(LN_c(c_t))`."""

    cell_type = LayerNormLSTMCell
    gate_count = 4

    def forward(self, pre, weight, norms, state, masks):
        T, B, G = pre.shape
        H = G // 4
        wt, eps = weight.t(), self.eps
        w_hh, w_c, b_c = norms["hh_weight"], norms["c_weight"], norms["c_bias"]
        # g and tanh_c as 2σ(2a) - 1 (see `tanh_block`): their layer norms' affine parts doubled
        w_hh2, w_c2, b_c2 = _doubled(w_hh, 4, self.tanh_block), _doubled(w_c, 1, 0), _doubled(b_c, 1, 0)
        gates = pre  # the recurrent part is added in place, then activated in place
        zhh = pre.new_empty(T, B, G)  # W_hh h_{t-1}, every step
        tanh_c, out = pre.new_empty(T, B, H), pre.new_empty(T, B, H)
        h_states, c_states = _state_buffer(state[0], T), _state_buffer(state[1], T)
        c_new = c_states[1:] if masks is None else pre.new_empty(T, B, H)
        steps, zhh_t, i_, f_ = gates.unbind(0), zhh.unbind(0), _steps(gates, 0, H), _steps(gates, H, 2 * H)
        g_, o_ = _steps(gates, 2 * H, 3 * H), _steps(gates, 3 * H)
        c_new_t, tanh_c_t, out_t = c_new.unbind(0), tanh_c.unbind(0), out.unbind(0)
        h_after, c_after = h_states[1:].unbind(0), c_states[1:].unbind(0)
        stats: list[tuple[Tensor, ...]] = []  # per step: mean and 1/σ of W_hh h_{t-1}, then of c_t
        h, c = state
        for t in range(T):
            r, mean_hh, rstd_hh = _layer_norm(torch.mm(h, wt, out=zhh_t[t]), [G], w_hh2, None, eps)
            steps[t].add_(r).sigmoid_()
            g_[t].mul_(2).sub_(1)
            c_t = torch.mul(i_[t], g_[t], out=c_new_t[t]).addcmul_(f_[t], c)
            n2, mean_c, rstd_c = _layer_norm(c_t, [H], w_c2, b_c2, eps)
            tanh_c_now = torch.sigmoid(n2, out=tanh_c_t[t]).mul_(2).sub_(1)
            h_t = torch.mul(o_[t], tanh_c_now, out=out_t[t])
            c = c_t if masks is None else torch.where(masks.mask[t], c_t, c, out=c_after[t])
            h = _masked_update(masks, t, h_t, h, h_after)
            stats.append((mean_hh, rstd_hh, mean_c, rstd_c))
        if masks is None:
            h_states[1:] = out
        mean_hh, rstd_hh, mean_c, rstd_c = (torch.stack(s) for s in zip(*stats, strict=True))
        i, f, g, o = gates.chunk(4, 2)
        observed = {"i": i, "f": f, "g": g, "o": o, "tanh_c": tanh_c}
        saved = (gates, tanh_c, zhh, mean_hh, rstd_hh, c_new, mean_c, rstd_c, w_hh, w_c, b_c, c_states)
        return out, (h, c), (*saved, h_states), (h_states[1:], c_states[1:]), observed

    def backward(self, saved, weight, d_out, dstate, masks, inputs=None):
        gates, tanh_c, zhh, mean_hh, rstd_hh, c_new, mean_c, rstd_c, w_hh, w_c, b_c, c_states, h_states = (
            saved
        )
        T, B, G = gates.shape
        H = G // 4
        blocks = _chunks(T, B * G)
        dgates_block = gates.new_empty(blocks[0][1] - blocks[0][0], B, G)
        dn_block = gates.new_empty(dgates_block.shape[0], B, H)  # ∂L/∂LN_c(c_t)
        local_block, h_to_n_block = torch.empty_like(dgates_block), torch.empty_like(dn_block)
        grads_h, grads_c = torch.empty_like(h_states[1:]), torch.empty_like(c_states[1:])  # for an observer
        d_weight_t = weight.new_zeros(weight.shape[::-1])  # ∂W_hh transposed: (xᵀd), see bptt._weight_grad
        d_w_hh, d_w_c = torch.zeros_like(w_hh), torch.zeros_like(w_c)
        d_b_c = None if b_c is None else torch.zeros_like(b_c)
        grads_h_t, grads_c_t, d_out_t = grads_h.unbind(0), grads_c.unbind(0), _next_d_out(d_out)
        zhh_t, c_new_t = zhh.unbind(0), c_new.unbind(0)
        mean_hh_t, rstd_hh_t, mean_c_t, rstd_c_t = (s.unbind(0) for s in (mean_hh, rstd_hh, mean_c, rstd_c))
        dh, dc = torch.add(dstate[0], d_out_t[T - 1], out=grads_h_t[T - 1]), dstate[1]
        for lo, hi in blocks:
            i, f, g, o = gates[lo:hi].chunk(4, 2)
            tc = tanh_c[lo:hi]
            # dgates_t = (dc_t, dc_t, dc_t, dh_t) ⊙ local_t;  dn_t = dh_t ⊙ h_to_n_t;  dc_{t-1} = dc_t ⊙ f_t
            n = hi - lo
            local, h_to_n = local_block[:n], h_to_n_block[:n]
            li, lf, lg, lo_ = local.chunk(4, 2)  # σ' = s - s², tanh' = 1 - t², each one addcmul
            torch.mul(g, torch.addcmul(i, i, i, value=-1), out=li)
            torch.mul(c_states[lo:hi], torch.addcmul(f, f, f, value=-1), out=lf)
            torch.mul(i, torch.addcmul(_ONE, g, g, value=-1), out=lg)
            torch.mul(tc, torch.addcmul(o, o, o, value=-1), out=lo_)
            torch.mul(o, torch.addcmul(_ONE, tc, tc, value=-1), out=h_to_n)
            c_to_c = f
            if masks is not None:
                padded = masks.padded_mask[lo:hi]
                local.masked_fill_(padded, 0.0)
                h_to_n.masked_fill_(padded, 0.0)
                c_to_c = f.masked_fill(padded, 1.0)
            h_to_n_t, c_to_c_t = h_to_n.unbind(0), c_to_c.unbind(0)
            local4, dgates4 = (
                local.view(n, B, 4, H),
                dgates_block[:n].view(n, B, 4, H),
            )  # (B, gate, H) per step
            local_c_t, local_o_t = local4[:, :, :3].unbind(0), local4[:, :, 3].unbind(0)
            dgates_c_t, dgates_o_t = dgates4[:, :, :3].unbind(0), dgates4[:, :, 3].unbind(0)
            dgates_t, dn_t = dgates_block[:n].unbind(0), dn_block[:n].unbind(0)
            dzhh = []
            for t in range(hi - 1, lo - 1, -1):
                k = t - lo
                d_norm = torch.mul(dh, h_to_n_t[k], out=dn_t[k])
                dc_h = _layer_norm_backward(d_norm, c_new_t[t], [H], mean_c_t[t], rstd_c_t[t], w_c, b_c, _DZ)[
                    0
                ]
                dc = torch.add(dc_h, dc, out=grads_c_t[t])
                torch.mul(dc.unsqueeze(1), local_c_t[k], out=dgates_c_t[k])  # i, f, g
                torch.mul(dh, local_o_t[k], out=dgates_o_t[k])
                dz = _layer_norm_backward(
                    dgates_t[k], zhh_t[t], [G], mean_hh_t[t], rstd_hh_t[t], w_hh, None, _DZ
                )[0]
                dzhh.append(dz)
                dc = dc * c_to_c_t[k]
                dh = torch.addmm(
                    _carry(d_out_t[t - 1], dh, masks, t), dz, weight, out=grads_h_t[t - 1] if t else None
                )
            # the block's steps are done: their parameter gradients, and ∂pre to the input side
            d_weight_t.addmm_(_flat(h_states[lo:hi]).t(), _flat(torch.stack(dzhh[::-1])))
            hh = (
                _flat(dgates_block[:n]),
                _flat(zhh[lo:hi]),
                [G],
                _flat(mean_hh[lo:hi]),
                _flat(rstd_hh[lo:hi]),
            )
            d_w_hh.add_(_layer_norm_backward(*hh, w_hh, None, [False, True, False])[1])
            cc = (_flat(dn_block[:n]), _flat(c_new[lo:hi]), [H], _flat(mean_c[lo:hi]), _flat(rstd_c[lo:hi]))
            _, d_w, d_b = _layer_norm_backward(*cc, w_c, b_c, [False, True, b_c is not None])
            d_w_c.add_(d_w)
            if d_b_c is not None:
                d_b_c.add_(d_b)
            inputs.block(lo, hi, dgates_block[:n])
        d_norms = {"hh_weight": d_w_hh, "c_weight": d_w_c, "c_bias": d_b_c}
        return d_weight_t.t().contiguous(), d_norms, [dh, dc], _zero_padding((grads_h, grads_c), masks)


class LayerNormGRUKernel(_LayerNormKernel):
    """`LayerNormGRUCell`: torch's GRU maths on `pre_t` and `LN_hh(W_hh h_{t-1})`, whose shift stays inside
    (the n gate multiplies the recurrent part by r)."""

    cell_type = LayerNormGRUCell
    gate_count = 3
    fold_recurrent_bias = False

    def forward(self, pre, weight, norms, state, masks):
        T, B, G = pre.shape
        H = G // 3
        wt, eps, w_hh, b_hh = weight.t(), self.eps, norms["hh_weight"], norms["hh_bias"]
        w_hh2, b_hh2 = _doubled(w_hh, 3, self.tanh_block), _doubled(b_hh, 3, self.tanh_block)  # n: 2σ(2a)-1
        zhh = pre.new_empty(T, B, G)  # W_hh h_{t-1}, every step
        rz, n = pre[..., : 2 * H], pre[..., 2 * H :]  # activated in place
        states, out = _state_buffer(state[0], T), pre.new_empty(T, B, H)
        zhh_t, rz_t, r_t, z_t = zhh.unbind(0), _steps(pre, 0, 2 * H), _steps(pre, 0, H), _steps(pre, H, 2 * H)
        n_t, out_t, h_after = _steps(pre, 2 * H), out.unbind(0), states[1:].unbind(0)
        stats: list[tuple[Tensor, ...]] = []  # per step: mean and 1/σ of W_hh h_{t-1}
        h = state[0]
        for t in range(T):
            hh, mean, rstd = _layer_norm(torch.mm(h, wt, out=zhh_t[t]), [G], w_hh2, b_hh2, eps)
            hh_rz, hh_n2 = hh.split((2 * H, H), 1)
            rz_t[t].add_(hh_rz).sigmoid_()
            n_new = n_t[t].addcmul_(r_t[t], hh_n2).sigmoid_().mul_(2).sub_(1)
            h_t = torch.addcmul(n_new, z_t[t], h - n_new, out=out_t[t])
            h = _masked_update(masks, t, h_t, h, h_after)
            stats.append((mean, rstd))
        if masks is None:
            states[1:] = out
        mean, rstd = (torch.stack(s) for s in zip(*stats, strict=True))
        r, z = rz.chunk(2, 2)
        return out, (h,), (pre, zhh, mean, rstd, w_hh, b_hh, states), (states[1:],), {"r": r, "z": z, "n": n}

    def backward(self, saved, weight, d_out, dstate, masks, inputs=None):
        gates, zhh, mean, rstd, w_hh, b_hh, states = saved
        T, B, G = gates.shape
        H = G // 3
        blocks = _chunks(T, B * G)
        dhh_block = gates.new_empty(blocks[0][1] - blocks[0][0], B, G)  # ∂LN_hh(W_hh h_{t-1})
        dpre_block = torch.empty_like(dhh_block)  # ∂pre: (∂r, ∂z) as in dhh, then ∂(n's pre-activation)
        to_rz_block = gates.new_empty(dhh_block.shape[0], B, 2 * H)
        grads = torch.empty_like(states[1:])  # ∂L/∂h_t for an observer
        d_weight_t, d_w_hh = weight.new_zeros(weight.shape[::-1]), torch.zeros_like(w_hh)  # ∂W_hh transposed
        d_b_hh = None if b_hh is None else torch.zeros_like(b_hh)
        grads_t, zhh_t, mean_t, rstd_t = grads.unbind(0), zhh.unbind(0), mean.unbind(0), rstd.unbind(0)
        d_out_t = _next_d_out(d_out)
        dh = torch.add(dstate[0], d_out_t[T - 1], out=grads_t[T - 1])
        for lo, hi in blocks:
            n_steps = hi - lo
            r, z, n = gates[lo:hi].chunk(3, 2)
            hn = (zhh[lo:hi, :, 2 * H :] - mean[lo:hi]).mul_(rstd[lo:hi])  # LN_hh's n block
            hn = hn.mul_(w_hh[2 * H :]) if b_hh is None else torch.addcmul(b_hh[2 * H :], hn, w_hh[2 * H :])
            to_n = torch.addcmul(_ONE, n, n, value=-1).mul_(1 - z)  # dn_pre = dh ⊙ to_n
            to_rz = to_rz_block[: hi - lo]  # (dr, dz)_pre = dh ⊙ to_rz
            to_r, to_z = to_rz.chunk(2, 2)
            torch.mul(torch.mul(to_n, hn, out=to_r), torch.addcmul(r, r, r, value=-1), out=to_r)
            torch.mul(states[lo:hi] - n, torch.addcmul(z, z, z, value=-1), out=to_z)
            direct = z  # dh_{t-1} gets dh_t ⊙ z_t without passing W_hh
            if masks is not None:
                padded = masks.padded_mask[lo:hi]
                to_n.masked_fill_(padded, 0.0)
                to_rz.masked_fill_(padded, 0.0)
                direct = z.masked_fill(padded, 1.0)
            to_n_t, r_t, direct_t = to_n.unbind(0), r.unbind(0), direct.unbind(0)
            to_rz_t = to_rz.view(n_steps, B, 2, H).unbind(0)  # (B, gate, H) per step
            block = dhh_block[:n_steps]
            drz_t = block[..., : 2 * H].view(n_steps, B, 2, H).unbind(0)
            dhh_t, dhn_t, dn_t = block.unbind(0), _steps(block, 2 * H), _steps(dpre_block[:n_steps], 2 * H)
            dzhh = []
            for t in range(hi - 1, lo - 1, -1):
                k = t - lo
                torch.mul(dh.unsqueeze(1), to_rz_t[k], out=drz_t[k])
                torch.mul(torch.mul(dh, to_n_t[k], out=dn_t[k]), r_t[k], out=dhn_t[k])
                dz = _layer_norm_backward(dhh_t[k], zhh_t[t], [G], mean_t[t], rstd_t[t], w_hh, b_hh, _DZ)[0]
                dzhh.append(dz)
                dh = torch.addmm(
                    torch.addcmul(d_out_t[t - 1], dh, direct_t[k]),
                    dz,
                    weight,
                    out=grads_t[t - 1] if t else None,
                )
            # the block's steps are done: their parameter gradients, and ∂pre to the input side
            d_weight_t.addmm_(_flat(states[lo:hi]).t(), _flat(torch.stack(dzhh[::-1])))
            hh = (_flat(block), _flat(zhh[lo:hi]), [G], _flat(mean[lo:hi]), _flat(rstd[lo:hi]), w_hh, b_hh)
            _, d_w, d_b = _layer_norm_backward(*hh, [False, True, b_hh is not None])
            d_w_hh.add_(d_w)
            if d_b_hh is not None:
                d_b_hh.add_(d_b)
            dpre = dpre_block[:n_steps]
            dpre[..., : 2 * H] = block[..., : 2 * H]
            inputs.block(lo, hi, dpre)
        d_weight = d_weight_t.t().contiguous()
        return d_weight, {"hh_weight": d_w_hh, "hh_bias": d_b_hh}, [dh], _zero_padding((grads,), masks)


def _doubled(w: Tensor | None, blocks: int, block: int) -> Tensor | None:
    """A layer norm's weight or shift, split into `blocks` blocks, with block `block` doubled: the layer norm
    then gives 2a there, and tanh(a) is computed as 2σ(2a) - 1. Only the forward uses it: the gradients with
    respect to a and to the layer norm's input are those of the plain layer norm."""
    if w is None:
        return None
    size = w.shape[0] // blocks
    return torch.cat((w[: block * size], 2 * w[block * size : (block + 1) * size], w[(block + 1) * size :]))


_ONE = torch.tensor(1.0)  # broadcast as addcmul's input: 1 - t² in one op (any dtype: a 0-dim tensor)

#: the output mask of a layer-norm backward that wants only ∂input.
_DZ = [True, False, False]


def _zero_padding(grads: tuple[Tensor, ...], masks: _Masks | None) -> tuple[Tensor, ...]:
    """The observer's state gradients, zeroed at masked steps, in place: they are the kernel's own buffers."""
    if masks is not None:
        for g in grads:
            g.masked_fill_(masks.padded_mask, 0.0)
    return grads


class _InputGrads:
    """Gradients through `pre = LN_ih(W_ih x)`, taken block by block as the walk back through time finishes
    the steps [lo, hi): their ∂pre goes straight into ∂x, ∂W_ih and the layer norm's parameters, so that no
    (T, B, G*H) gradient is ever stored (on CPU a fresh buffer that size costs more in page faults than the
    arithmetic done in it)."""

    def __init__(self, x, w_ih, z_ih, mean, rstd, ln_w, ln_b, need_x: bool, need_w_ih: bool) -> None:
        self.x, self.batch, self.w_ih = _flat(x), x.shape[1], w_ih
        self.z_ih, self.mean, self.rstd, self.ln_w, self.ln_b = z_ih, mean, rstd, ln_w, ln_b  # LN_ih's
        self.dx = torch.empty_like(self.x) if need_x else None
        self.d_w_ih_t = w_ih.new_zeros(w_ih.shape[::-1]) if need_w_ih else None  # transposed, as ∂W_hh
        self.d_ln_w = torch.zeros_like(ln_w)
        self.d_ln_b = None if ln_b is None else torch.zeros_like(ln_b)

    def block(self, lo: int, hi: int, dpre: Tensor) -> None:
        """Take ∂pre (hi - lo, B, G*H) of the steps [lo, hi)."""
        rows = slice(lo * self.batch, hi * self.batch)
        ask = [self.dx is not None or self.d_w_ih_t is not None, True, self.ln_b is not None]
        dz, d_w, d_b = _layer_norm_backward(
            _flat(dpre),
            self.z_ih[rows],
            [self.z_ih.shape[1]],
            self.mean[rows],
            self.rstd[rows],
            self.ln_w,
            self.ln_b,
            ask,
        )
        self.d_ln_w.add_(d_w)
        if self.d_ln_b is not None:
            self.d_ln_b.add_(d_b)
        if self.dx is not None:
            torch.mm(dz, self.w_ih, out=self.dx[rows])
        if self.d_w_ih_t is not None:
            self.d_w_ih_t.addmm_(self.x[rows].t(), dz)

    @property
    def d_w_ih(self) -> Tensor | None:
        """∂W_ih (G*H, I), once every block is in."""
        return None if self.d_w_ih_t is None else self.d_w_ih_t.t().contiguous()


class _LayerNormScan(torch.autograd.Function):
    """`bptt._Scan` for the LayerNorm cells: the input projection is `LN_ih(W_ih x)` of all steps at once."""

    @staticmethod
    def forward(ctx, kernel, observer, x, w_ih, w_hh, ih_w, ih_b, hh_w, hh_b, c_w, c_b, mask, *state0):
        T, B, _ = x.shape
        G = w_ih.shape[0]
        fold = kernel.fold_recurrent_bias and ih_b is not None and hh_b is not None
        in_bias = ih_b + hh_b if fold else ih_b
        z_ih = x.reshape(T * B, -1) @ w_ih.t()
        blocks, block = kernel.gate_count, kernel.tanh_block  # the tanh block doubled in the forward only
        doubled = _doubled(ih_w, blocks, block), _doubled(in_bias, blocks, block)
        pre, mean, rstd = _layer_norm(z_ih, [G], *doubled, kernel.eps)
        masks = _Masks(mask, x.dtype) if mask is not None else None
        norms = {"hh_weight": hh_w, "hh_bias": None if fold else hh_b, "c_weight": c_w, "c_bias": c_b}
        out, final, saved, states, gates = kernel.forward(
            pre.view(T, B, G), w_hh, norms, tuple(state0), masks
        )
        if observer is not None:
            observer.forward(states, gates, mask)
        ctx.kernel, ctx.observer, ctx.masks, ctx.fold = kernel, observer, masks, fold
        ctx.save_for_backward(x, w_ih, w_hh, z_ih, mean, rstd, ih_w, in_bias, *saved)
        return (out, *(s.clone() for s in final))

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, *d_final):
        x, w_ih, w_hh, z_ih, mean, rstd, ih_w, in_bias, *saved = ctx.saved_tensors
        masks = ctx.masks
        like = saved[-1][0]  # every kernel saves its (T + 1, B, H) buffer of h states last
        dstate = [torch.zeros_like(like) if d is None else d for d in d_final]
        if d_out is None:
            d_out = like.new_zeros(len(saved[-1]) - 1, *like.shape)
        if masks is not None:
            d_out = d_out.masked_fill(masks.padded_mask, 0.0)  # outputs past the end are constant zeros
        else:
            d_out = d_out.contiguous()  # e.g. out.sum() hands back an expanded tensor: slow to index per step
        need = ctx.needs_input_grad
        inputs = _InputGrads(x, w_ih, z_ih, mean, rstd, ih_w, in_bias, need[2], need[3])
        d_w_hh, d_norms, dstate0, observed = ctx.kernel.backward(saved, w_hh, d_out, dstate, masks, inputs)
        if ctx.observer is not None:
            ctx.observer.backward(observed)
        dx = None if inputs.dx is None else inputs.dx.view_as(x)
        d_hh_b = inputs.d_ln_b if ctx.fold else d_norms.get("hh_bias")
        grads: list[Any] = [
            dx,
            inputs.d_w_ih,
            d_w_hh,
            inputs.d_ln_w,
            inputs.d_ln_b,
            d_norms["hh_weight"],
            d_hh_b,
        ]
        grads += [d_norms.get("c_weight"), d_norms.get("c_bias")]
        return (
            None,
            None,
            *(g if n else None for g, n in zip(grads, need[2:11], strict=True)),
            None,
            *dstate0,
        )
