"""Jacobian products through time: how much of a change at step t survives to the last step L.

Along one sequence the state map s_j = F(s_{j-1}, x_j) has Jacobians J_j = ∂s_j/∂s_{j-1}; the gradient
through time is multiplied by their product

    P_k = ∂s_L/∂s_{L-k} = J_L J_{L-1} ⋯ J_{L-k+1}          (lag k = 1 … L)

and ‖P_k‖₂ (its largest singular value) is the most any direction can keep over k steps. From it:
the mean log growth per step λ = log ‖P_L‖₂ / L (a finite-time Lyapunov exponent), γ = e^λ the growth
factor per step, and the memory horizon, the lag at which ‖P_k‖₂ first falls below a threshold (1e-3),
extrapolated with λ when it never does within the sequence. For LSTMs s = (h, c).

Two methods, both linearising the cell's own `step` with `torch.func` around a replayed trajectory:
- "exact" (state size n ≤ `EXACT_MAX_STATE`): every J_j built with n vector-Jacobian products, every P_k
  by matrix products rescaled as they go (no underflow at any lag), ‖P_k‖₂ and all singular values of
  every J_j by SVD. Cost: n vjp passes over the sequence, plus L products and SVDs of n×n matrices.
- "power": power iteration on every measured lag at once: a forward sweep of Jacobian-vector products
  carries one vector per lag from its start to L, a backward sweep of vector-Jacobian products brings
  them back. Each row is renormalised at every step, so nothing under- or overflows. The estimate of
  ‖P_k‖₂ rises to it from below; lags are all of 1 … L up to `ALL_LAGS` steps, else a geometric set.
  Cost: `iterations` × (Σ lags / L) jvp and as many vjp passes, plus 2 × `iterations` batched passes for
  the largest singular value of every J_j. `JacobianResult.passes` counts them.
A pass is one jvp or vjp through every step of one sequence (about two or three steps' work each).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.func import vjp, vmap

from rnnlab.diagnostics import trajectory
from rnnlab.layers import Recurrent
from rnnlab.numerics import flush_denormals

#: the memory horizon ends where ‖∂s_L/∂s_{L-k}‖₂ falls below this.
HORIZON_THRESHOLD = 1e-3
#: state sizes n up to this use the exact method.
EXACT_MAX_STATE = 128
#: power iteration measures every lag up to this sequence length, else about `GEOMETRIC_LAGS` lags.
ALL_LAGS = 32
GEOMETRIC_LAGS = 16
#: power iterations by default: the estimates rise to ‖P_k‖₂ from below, within a few % after 5 and
#: far closer for long lags, whose products have well separated singular values.
ITERATIONS = 10

Method = Literal["auto", "exact", "power"]
StepFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class JacobianResult:
    """The Jacobian analysis of one layer and direction along one sequence (see the module docstring).

    Shape:
        lags (K,) in steps, norms (K,) = ‖∂s_L/∂s_{L-lag}‖₂; step_singular_values (L, r): singular values
        of each step's Jacobian J_j, all n of them (exact) or the largest (power), in processing order.
    """

    lags: Tensor
    norms: Tensor
    step_singular_values: Tensor
    log_rate: float
    gamma: float
    horizon: float
    horizon_extrapolated: bool
    growth: float
    method: str
    passes: float
    steps: int
    sample: int
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers and lists (per-step singular values reduced to the largest)."""
        return {
            "lags": self.lags.tolist(),
            "norms": self.norms.tolist(),
            "step_max_singular": self.step_singular_values[:, 0].tolist(),
            "log_rate": self.log_rate,
            "gamma": self.gamma,
            "horizon": self.horizon,
            "horizon_extrapolated": self.horizon_extrapolated,
            "growth": self.growth,
            "method": self.method,
            "passes": self.passes,
            "steps": self.steps,
            "sample": self.sample,
            "threshold": self.threshold,
        }


def jacobian_products(
    model: nn.Module,
    inputs: Any,
    *,
    sample: int | None = None,
    threshold: float = HORIZON_THRESHOLD,
    method: Method = "auto",
    iterations: int = ITERATIONS,
    dtype: torch.dtype | None = None,
    flush_denormal: bool = True,
    **forward_kwargs: Any,
) -> dict[str, JacobianResult]:
    """Jacobian products through time for every recurrent layer of `model`, along one input sequence.

    Runs `model(inputs, **forward_kwargs)` once without gradients to see what each `rnnlab.Recurrent`
    inside it is called with, then analyses sequence `sample` (default: the longest) layer by layer.

    Args:
        threshold: the memory horizon ends where ‖∂s_L/∂s_{L-k}‖₂ falls below this.
        method: "exact", "power", or "auto" (exact for states of up to `EXACT_MAX_STATE` numbers).
        iterations: power iterations.
        dtype: of the analysis (default float64 for exact, float32 for power iteration).
        flush_denormal: flush denormal floats to zero during the analysis (`rnnlab.flush_denormals`; the
            products are kept in log space, so no result depends on it, only the speed).

    Returns:
        {name: JacobianResult}, named by module path and torch's suffix: "encoder.l0", "encoder.l0_reverse"
        ("l0" when `model` is itself the layer).

    Example:
        >>> res = rnnlab.jacobian_products(rnnlab.RNN(1, 32, spectral_radius=0.5), torch.randn(100, 4, 1))
        >>> res["l0"].gamma, res["l0"].horizon        # about 0.49 per step, 11 steps
    """
    layers = {name: m for name, m in model.named_modules() if isinstance(m, Recurrent)}
    if not layers:
        raise ValueError(f"{type(model).__name__} holds no rnnlab.Recurrent layer to analyse")
    calls: dict[str, trajectory.LayerCall] = {}
    names = {id(m): name for name, m in layers.items()}

    def sink(layer: Recurrent, args: tuple, kwargs: dict) -> None:
        calls[names[id(layer)]] = trajectory.select(layer, args, kwargs, sample)

    handles = [trajectory.capture(m, sink) for m in layers.values()]
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            model(inputs, **forward_kwargs)
    finally:
        for h in handles:
            h.remove()
    out: dict[str, JacobianResult] = {}
    with flush_denormals(flush_denormal):
        for name, call in calls.items():
            results = analyse(
                layers[name], call, threshold=threshold, method=method, iterations=iterations, dtype=dtype
            )
            out |= {f"{name}.{key}" if name else key: res for key, res in results.items()}
    return out


def analyse(
    layer: Recurrent,
    call: trajectory.LayerCall,
    *,
    threshold: float = HORIZON_THRESHOLD,
    method: Method = "auto",
    iterations: int = ITERATIONS,
    dtype: torch.dtype | None = None,
) -> dict[str, JacobianResult]:
    """The analysis of every layer and direction of `layer` along the sequence `call`, keyed "l0", ..."""
    if method not in ("auto", "exact", "power"):
        raise ValueError(f"method must be 'auto', 'exact' or 'power', got {method!r}")
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    if dtype is None:  # float64 for the exact method; float32 (twice as fast) is plenty for power iteration
        n = layer.hidden_size * len(layer.state_fields)
        exact = method == "exact" or (method == "auto" and n <= EXACT_MAX_STATE)
        dtype = torch.float64 if exact else torch.float32
    out = {}
    for suffix, traj in trajectory.replay(layer, call, dtype).items():
        out[suffix] = products(
            traj, threshold=threshold, method=method, iterations=iterations, sample=call.sample
        )
    return out


def products(
    traj: trajectory.Trajectory,
    *,
    threshold: float = HORIZON_THRESHOLD,
    method: Method = "auto",
    iterations: int = ITERATIONS,
    sample: int = 0,
) -> JacobianResult:
    """The analysis of one trajectory (see the module docstring)."""
    f, states, px = traj.step_function(), traj.states, traj.px
    L, n = px.shape[0], states.shape[1]
    if method == "auto":
        method = "exact" if n <= EXACT_MAX_STATE else "power"
    generator = torch.Generator(device=states.device).manual_seed(0)  # never the global RNG
    with torch.no_grad():
        if method == "exact":
            jac = step_jacobians(f, states[:-1], px)  # (L, n, n)
            lags = torch.arange(1, L + 1)
            log_norms = _exact_log_norms(jac)
            singular = torch.linalg.svdvals(jac)
            passes = float(n)
        else:
            lags = _lags(L)
            log_norms = _power_log_norms(f, states, px, lags, iterations, generator)
            singular = _power_step_singular(f, states[:-1], px, iterations, generator)[:, None]
            passes = 2.0 * iterations * (float(lags.sum()) / L + 1.0)
    return _summarise(lags, log_norms, singular, threshold, method, passes, L, sample)


def step_jacobians(f: StepFn, states: Tensor, px: Tensor) -> Tensor:
    """J_j = ∂f(s_{j-1}, px_j)/∂s_{j-1} for every step: states (L, n), px (L, G·H) -> (L, n, n)."""
    L, n = states.shape
    vjp_fn = vjp(lambda s: f(s, px), states)[1]
    basis = torch.eye(n, dtype=states.dtype, device=states.device)[:, None, :].expand(n, L, n)
    (rows,) = vmap(vjp_fn)(basis)  # rows[i, j] = e_iᵀ J_j
    return rows.transpose(0, 1)


def _exact_log_norms(jac: Tensor) -> Tensor:
    """log ‖J_L ⋯ J_{L-k+1}‖₂ for k = 1 … L, the product kept at unit norm with its log scale apart."""
    L, n = jac.shape[0], jac.shape[1]
    m = torch.eye(n, dtype=jac.dtype, device=jac.device)
    log_scale, out = 0.0, torch.full((L,), -math.inf, dtype=jac.dtype)
    for k in range(1, L + 1):
        m = m @ jac[L - k]
        norm = float(torch.linalg.matrix_norm(m, ord=2))
        if not norm > 0 or not math.isfinite(norm):
            out[k - 1 :] = -math.inf if norm == 0 else math.nan
            break
        log_scale += math.log(norm)
        m = m / norm
        out[k - 1] = log_scale
    return out


def _lags(L: int) -> Tensor:
    if L <= ALL_LAGS:
        return torch.arange(1, L + 1)
    lags = torch.logspace(0, math.log10(L), GEOMETRIC_LAGS, dtype=torch.float64).round().long()
    return torch.unique(torch.cat([lags, torch.tensor([L])]))


def _power_log_norms(
    f: StepFn, states: Tensor, px: Tensor, lags: Tensor, iterations: int, gen: Any
) -> Tensor:
    """log ‖P_k‖₂ for every lag k by power iteration, all lags in one sweep (see the module docstring).

    Rows are ordered by decreasing lag, so the rows alive at any step are a prefix: row r starts at state
    s_{L - lag_r} and passes through steps L - lag_r + 1 … L.
    """
    L, n = px.shape[0], states.shape[1]
    lag = lags.flip(0)  # decreasing
    start = (L - lag).tolist()  # increasing
    alive = torch.searchsorted(torch.tensor(start), torch.arange(L), right=True).tolist()  # at step j+1
    tiny = torch.finfo(states.dtype).tiny
    v = torch.randn(len(start), n, generator=gen, dtype=states.dtype, device=states.device)
    v = v / v.norm(dim=1, keepdim=True)
    log_u = torch.zeros(len(start), dtype=states.dtype, device=states.device)
    for _ in range(iterations):
        w, log_w = torch.zeros_like(v), torch.zeros_like(log_u)
        for j in range(L):  # step j+1: s_j -> s_{j+1}
            a, begun = alive[j], alive[j - 1] if j else 0
            w[begun:a] = v[begun:a]
            if a:
                t = _jvp_rows(f, states[j], px[j], w[:a])
                norm = t.norm(dim=1, keepdim=True)
                log_w[:a] += norm[:, 0].log()
                w[:a] = t / norm.clamp_min(tiny)
        u, log_u = w, torch.zeros_like(log_w)
        for j in range(L - 1, -1, -1):
            a = alive[j]
            if a:
                t = _vjp_rows(f, states[j], px[j], u[:a])
                norm = t.norm(dim=1, keepdim=True)
                log_u[:a] += norm[:, 0].log()
                u[:a] = t / norm.clamp_min(tiny)
        v = u
    return log_u.flip(0)  # back to increasing lag


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


def _jvp_rows(f: StepFn, s: Tensor, px: Tensor, tangents: Tensor) -> Tensor:
    """J v for each row v of tangents (a, n), J the Jacobian at one state s (n,)."""
    return _Linearised(f, s[None], px[None], len(tangents)).jvp(tangents)


def _vjp_rows(f: StepFn, s: Tensor, px: Tensor, cotangents: Tensor) -> Tensor:
    """uᵀ J for each row u of cotangents (a, n)."""
    return _Linearised(f, s[None], px[None], len(cotangents)).vjp(cotangents)


def _power_step_singular(f: StepFn, states: Tensor, px: Tensor, iterations: int, gen: Any) -> Tensor:
    """Largest singular value of every J_j by power iteration, all steps as one batch: (L,).

    Row j of the batch is step j, so the batch's Jacobian is block diagonal and J v acts row by row.
    """
    lin = _Linearised(f, states, px)
    v = torch.randn(states.shape, generator=gen, dtype=states.dtype, device=states.device)
    tiny = torch.finfo(states.dtype).tiny
    sigma = torch.zeros(states.shape[0], dtype=states.dtype, device=states.device)
    for _ in range(iterations):
        v = v / v.norm(dim=1, keepdim=True).clamp_min(tiny)
        w = lin.jvp(v)
        w = w / w.norm(dim=1, keepdim=True).clamp_min(tiny)
        v = lin.vjp(w)
        sigma = v.norm(dim=1)
    return sigma


def _summarise(
    lags: Tensor,
    log_norms: Tensor,
    singular: Tensor,
    threshold: float,
    method: str,
    passes: float,
    L: int,
    sample: int,
) -> JacobianResult:
    log_norms = log_norms.double().cpu()
    full = float(log_norms[-1])  # lag L
    log_rate = full / L
    log_t = math.log(threshold)
    below = torch.nonzero(log_norms < log_t)
    extrapolated = False
    if len(below):
        i = int(below[0])
        k0, y0 = (0, 0.0) if i == 0 else (int(lags[i - 1]), float(log_norms[i - 1]))
        k1, y1 = int(lags[i]), float(log_norms[i])
        crossing = k0 + (log_t - y0) * (k1 - k0) / (y1 - y0) if math.isfinite(y1) else k1
        horizon = float(math.ceil(crossing - 1e-9))
    elif log_rate < -1e-9 and math.isfinite(full):  # slower decay is rounding, or > 10⁹ steps away
        horizon, extrapolated = float(math.ceil(L + (log_t - full) / log_rate)), True
    else:
        horizon = math.inf
    return JacobianResult(
        lags=lags,
        norms=log_norms.exp(),
        step_singular_values=singular.cpu(),
        log_rate=log_rate,
        gamma=math.exp(log_rate) if math.isfinite(log_rate) else (0.0 if log_rate < 0 else math.nan),
        horizon=horizon,
        horizon_extrapolated=extrapolated,
        growth=float(log_norms.max().exp()) if not torch.isnan(log_norms).any() else math.nan,
        method=method,
        passes=passes,
        steps=L,
        sample=sample,
        threshold=threshold,
    )
