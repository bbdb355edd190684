"""The step Jacobians J_j = ∂s_j/∂s_{j-1} along one trajectory, as products with vectors.

The Jacobian analysis (jacobian.py) multiplies vectors by J_j and Jᵀ_j step after step; how it gets them
is decided here, once per trajectory:

- closed forms for the cells whose maths is torch's (RNN, LSTM, GRU, IndRNN: a class that overrides any
  of `fused.MATHS` has maths of its own and is linearised by autograd instead). Each J_j is a few
  diagonal scalings around W_hh, built from the step's gate activations, which a probe already holds:

      RNN     J v = φ'(pre) ⊙ (W v)                                       φ' = 1 − h² (tanh), [h > 0] (relu)
      IndRNN  J v = φ'(pre) ⊙ u ⊙ v                                        (diagonal)
      LSTM    u = K ⊙ (W v_h),  K = [σ'(i) g, σ'(f) c_{t-1}, tanh'(g) i, σ'(o) tanh c_t]
              ∂c = u_i + u_f + u_g + f ⊙ v_c,   ∂h = u_o + o ⊙ (1 − tanh² c_t) ⊙ ∂c
      GRU     u = K ⊙ (W v),  K = [(1−z) tanh'(n) (W_hn h + b_hn) σ'(r), (h − n) σ'(z), (1−z) tanh'(n) r]
              ∂h = u_r + u_z + u_n + z ⊙ v

  so one product costs one matrix product with W_hh and a few elementwise operations, whatever the state;
- autograd for any other cell (`step` differentiated around the replayed trajectory, which needs px).

A `Linearisation` gives J_j v and uᵀ J_j for a block of vectors at one step (`jvp`, `vjp`), the same for
one vector per step at every step at once (`jvp_steps`, `vjp_steps`), and the matrices themselves
(built at once by a closed form, in a few batched operations).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor
from torch.func import vjp, vmap

from rnnlab.cells import Cell, GRUCell, IndRNNCell, LSTMCell, RNNCell
from rnnlab.fused import MATHS

StepFn = Callable[[Tensor, Tensor], Tensor]


class Linearisation(Protocol):
    """Products with the step Jacobians J_j (j = 0 … L−1 maps s_j to s_{j+1}) of one trajectory."""

    steps: int
    size: int

    def jvp(self, j: int, v: Tensor) -> Tensor:
        """J_j v for every row v of a block (p, n)."""
        ...

    def vjp(self, j: int, u: Tensor) -> Tensor:
        """uᵀ J_j for every row u of a block (p, n)."""
        ...

    def jvp_steps(self, v: Tensor) -> Tensor:
        """Row j of v (L, n) multiplied by J_j, every step at once."""
        ...

    def vjp_steps(self, u: Tensor) -> Tensor:
        """Row j of u (L, n) multiplied by J_jᵀ, every step at once."""
        ...

    def matrices(self) -> Tensor:
        """Every J_j: (L, n, n)."""
        ...


def closed_form_owner(cell: Cell) -> type[Cell] | None:
    """The torch cell whose maths `cell` computes (then its Jacobians have a closed form), else None."""
    cls = type(cell)
    for owner in (LSTMCell, GRUCell, RNNCell, IndRNNCell):
        if issubclass(cls, owner):
            return owner if all(getattr(cls, m) is getattr(owner, m) for m in MATHS) else None
    return None


def gates_needed(cell: Cell) -> tuple[str, ...]:
    """The gate activations a closed form is built from (empty for a cell without one)."""
    owner = closed_form_owner(cell)
    return {LSTMCell: ("i", "f", "g", "o", "tanh_c"), GRUCell: ("r", "z", "n")}.get(owner, ())  # type: ignore[arg-type]


def linearise(
    cell: Cell,
    params: dict[str, Tensor],
    states: Tensor,
    gates: dict[str, Tensor] | None = None,
    px: Tensor | None = None,
) -> Linearisation:
    """The step Jacobians along states (L + 1, n) (h, then c for LSTMs, side by side).

    Args:
        gates: each step's activations by name, (L, H) each, as the cell's step returns them.
        px: each step's projected input (L, G·H); needed when `gates` is not given or the cell has no
            closed form.
    """
    H = cell.hidden_size
    owner = closed_form_owner(cell)
    if owner is None:
        if px is None:
            raise ValueError(
                f"{type(cell).__name__} has no closed-form Jacobian: its projected inputs are needed"
            )
        return _Autograd(_step_function(cell, params), states, px)
    prev = tuple(states[:-1].split(H, dim=-1))  # (L, H) each: the state before every step
    new = states[1:, :H]
    if gates is None and owner in (LSTMCell, GRUCell):
        if px is None:
            raise ValueError("the gate activations or the projected inputs are needed")
        _, gates = cell.step(params, px, prev)
    return _closed_form(owner, cell, params, prev, new, gates)


def _closed_form(
    owner: type[Cell],
    cell: Cell,
    params: dict[str, Tensor],
    prev: tuple[Tensor, ...],
    new: Tensor,
    gates: dict[str, Tensor] | None,
) -> _Structured:
    H = cell.hidden_size
    W = params["weight_hh"]
    if owner is RNNCell:
        return _RNN(W, _activation_slope(cell, new))
    if owner is IndRNNCell:
        bound = float(getattr(cell, "recurrent_max"))  # noqa: B009 (IndRNNCell's, not Cell's)
        u = W.clamp(-bound, bound)
        return _Diagonal(_activation_slope(cell, new) * u)
    assert gates is not None
    if owner is LSTMCell:
        i, f, g, o, tc = (gates[k] for k in ("i", "f", "g", "o", "tanh_c"))
        K = torch.cat([i * (1 - i) * g, f * (1 - f) * prev[1], (1 - g * g) * i, o * (1 - o) * tc], -1)
        return _LSTM(W, K, o * (1 - tc * tc), f)
    r, z, n = (gates[k] for k in ("r", "z", "n"))
    bias = params.get("bias_hh")
    hn = prev[0] @ W[2 * H :].t() + (0.0 if bias is None else bias[2 * H :])
    slope_n = 1 - n * n
    K = torch.cat(
        [(1 - z) * slope_n * hn * r * (1 - r), (prev[0] - n) * z * (1 - z), (1 - z) * slope_n * r], -1
    )
    return _GRU(W, K, z)


def _activation_slope(cell: Cell, h: Tensor) -> Tensor:
    """φ'(pre) from φ(pre) = h: 1 − h² for tanh, 1 where h > 0 for relu."""
    if getattr(cell, "nonlinearity", "tanh") == "tanh":
        return 1 - h * h
    return (h > 0).to(h.dtype)


def _step_function(cell: Cell, params: dict[str, Tensor]) -> StepFn:
    """f(s (B, n), px (B, G·H)) -> s' (B, n): the cell's step on flattened states."""
    H = cell.hidden_size

    def f(s: Tensor, px: Tensor) -> Tensor:
        new, _ = cell.step(params, px, tuple(s.split(H, dim=-1)))
        return torch.cat(tuple(new), dim=-1)

    return f


class _Structured:
    """A closed form: per-step coefficients (L, ·), and W_hh in the subclasses; they say how they combine."""

    def __init__(self, coefficients: tuple[Tensor, ...], size: int) -> None:
        self.coefficients = coefficients
        self.per_step = [c.unbind(0) for c in coefficients]  # per-step views, made once
        self.steps, self.size = coefficients[0].shape[0], size

    def apply(self, v: Tensor, *c: Tensor) -> Tensor:
        raise NotImplementedError

    def apply_t(self, u: Tensor, *c: Tensor) -> Tensor:
        raise NotImplementedError

    def jvp(self, j: int, v: Tensor) -> Tensor:
        return self.apply(v, *(c[j] for c in self.per_step))

    def vjp(self, j: int, u: Tensor) -> Tensor:
        return self.apply_t(u, *(c[j] for c in self.per_step))

    def jvp_steps(self, v: Tensor) -> Tensor:
        return self.apply(v, *self.coefficients)

    def vjp_steps(self, u: Tensor) -> Tensor:
        return self.apply_t(u, *self.coefficients)

    def matrices(self) -> Tensor:
        raise NotImplementedError


def _gate_sum(K: Tensor, W: Tensor, gates: int) -> Tensor:
    """Σ_g diag(K_g) W_g over the first `gates` blocks: K (L, G·H), W (G·H, H) -> (L, H, H)."""
    H = W.shape[1]
    return (K[:, : gates * H].unflatten(1, (gates, H))[..., None] * W[: gates * H].view(gates, H, H)).sum(1)


class _RNN(_Structured):
    def __init__(self, W: Tensor, slope: Tensor) -> None:
        self.W, self.WT = W, W.t().contiguous()
        super().__init__((slope,), W.shape[1])

    def matrices(self) -> Tensor:
        return self.coefficients[0][:, :, None] * self.W

    def apply(self, v: Tensor, slope: Tensor) -> Tensor:  # type: ignore[override]
        return (v @ self.WT).mul_(slope)

    def apply_t(self, u: Tensor, slope: Tensor) -> Tensor:  # type: ignore[override]
        return (u * slope) @ self.W


class _Diagonal(_Structured):
    def __init__(self, diagonal: Tensor) -> None:
        super().__init__((diagonal,), diagonal.shape[-1])

    def apply(self, v: Tensor, d: Tensor) -> Tensor:  # type: ignore[override]
        return v * d

    def apply_t(self, u: Tensor, d: Tensor) -> Tensor:  # type: ignore[override]
        return u * d

    def matrices(self) -> Tensor:
        return torch.diag_embed(self.coefficients[0])


class _LSTM(_Structured):
    def __init__(self, W: Tensor, K: Tensor, E: Tensor, F: Tensor) -> None:
        self.W, self.WT, self.H = W, W.t().contiguous(), W.shape[1]
        super().__init__((K, E, F), 2 * W.shape[1])

    def apply(self, v: Tensor, K: Tensor, E: Tensor, F: Tensor) -> Tensor:  # type: ignore[override]
        H = self.H
        u = (v[..., :H] @ self.WT).mul_(K)  # (…, 4H)
        dc = u[..., : 3 * H].unflatten(-1, (3, H)).sum(-2).addcmul_(F, v[..., H:])
        return torch.cat([torch.addcmul(u[..., 3 * H :], E, dc), dc], -1)

    def apply_t(self, w: Tensor, K: Tensor, E: Tensor, F: Tensor) -> Tensor:  # type: ignore[override]
        wh = w[..., : self.H]
        q = torch.addcmul(w[..., self.H :], E, wh)  # ∂c collects w_c and what h passes on
        g = torch.cat([q, q, q, wh], -1).mul_(K)
        return torch.cat([g @ self.W, q * F], -1)

    def matrices(self) -> Tensor:
        K, E, F = self.coefficients
        L, H = K.shape[0], self.H
        dc_dh = _gate_sum(K, self.W, 3)  # (L, H, H)
        jac = K.new_zeros(L, 2 * H, 2 * H)
        jac[:, :H, :H] = torch.addcmul(K[:, 3 * H :, None] * self.W[3 * H :], E[:, :, None], dc_dh)
        jac[:, H:, :H] = dc_dh
        jac[:, :H, H:] = torch.diag_embed(E * F)
        jac[:, H:, H:] = torch.diag_embed(F)
        return jac


class _GRU(_Structured):
    def __init__(self, W: Tensor, K: Tensor, Z: Tensor) -> None:
        self.W, self.WT, self.H = W, W.t().contiguous(), W.shape[1]
        super().__init__((K, Z), W.shape[1])

    def apply(self, v: Tensor, K: Tensor, Z: Tensor) -> Tensor:  # type: ignore[override]
        u = (v @ self.WT).mul_(K)
        return u.unflatten(-1, (3, self.H)).sum(-2).addcmul_(Z, v)

    def apply_t(self, w: Tensor, K: Tensor, Z: Tensor) -> Tensor:  # type: ignore[override]
        return torch.addcmul((torch.cat([w, w, w], -1) * K) @ self.W, Z, w)

    def matrices(self) -> Tensor:
        K, Z = self.coefficients
        return _gate_sum(K, self.W, 3) + torch.diag_embed(Z)


class _Autograd:
    """Any cell: its `step` differentiated by autograd around each state of the trajectory."""

    def __init__(self, f: StepFn, states: Tensor, px: Tensor) -> None:
        self.f, self.states, self.px = f, states, px
        self.steps, self.size = px.shape[0], states.shape[1]
        self._all: _Linearised | None = None

    def jvp(self, j: int, v: Tensor) -> Tensor:
        return _Linearised(self.f, self.states[j][None], self.px[j][None], len(v)).jvp(v)

    def vjp(self, j: int, u: Tensor) -> Tensor:
        return _Linearised(self.f, self.states[j][None], self.px[j][None], len(u)).vjp(u)

    def _every_step(self) -> _Linearised:
        if self._all is None:  # row j of the batch is step j: the batch's Jacobian is block diagonal
            self._all = _Linearised(self.f, self.states[:-1], self.px)
        return self._all

    def jvp_steps(self, v: Tensor) -> Tensor:
        return self._every_step().jvp(v)

    def vjp_steps(self, u: Tensor) -> Tensor:
        return self._every_step().vjp(u)

    def matrices(self) -> Tensor:
        return step_jacobians(self.f, self.states[:-1], self.px)


def step_jacobians(f: StepFn, states: Tensor, px: Tensor) -> Tensor:
    """J_j = ∂f(s_{j-1}, px_j)/∂s_{j-1} for every step by autograd: states (L, n), px (L, G·H) ->
    (L, n, n)."""
    L, n = states.shape
    vjp_fn = vjp(lambda s: f(s, px), states)[1]
    basis = torch.eye(n, dtype=states.dtype, device=states.device)[:, None, :].expand(n, L, n)
    (rows,) = vmap(vjp_fn)(basis)  # rows[i, j] = e_iᵀ J_j
    return rows.transpose(0, 1)


class _Linearised:
    """f linearised at `rows` copies of one state s (or at a batch of states): J v and uᵀ J for each row.

    Plain autograd: uᵀ J by backward, J v by differentiating the linear map u ↦ uᵀ J once more (the
    double-backward trick), which needs no forward-mode AD and costs far less per call than torch.func.
    """

    def __init__(self, f: StepFn, s: Tensor, px: Tensor, rows: int | None = None) -> None:
        with torch.enable_grad():
            z = s if rows is None else s.expand(rows, -1)
            self.z = z.detach().clone().requires_grad_(True)
            self.out = f(self.z, px if rows is None else px.expand(rows, -1))
            self.u = torch.zeros_like(self.out, requires_grad=True)
            self._transposed: Tensor | None = None

    def vjp(self, u: Tensor) -> Tensor:
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self.out, self.z, u, retain_graph=True, materialize_grads=True)
        return g

    def jvp(self, v: Tensor) -> Tensor:
        with torch.enable_grad():
            if self._transposed is None:  # uᵀ J as a function of u, kept to differentiate again
                (self._transposed,) = torch.autograd.grad(
                    self.out, self.z, self.u, create_graph=True, materialize_grads=True
                )
            (g,) = torch.autograd.grad(self._transposed, self.u, v, retain_graph=True, materialize_grads=True)
        return g
