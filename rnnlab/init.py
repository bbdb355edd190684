"""Initialisers, applied per gate block: each of the G blocks of `weight_ih` / `weight_hh` on its own.

Orthogonalising the fused (4H, H) matrix would not make each gate's (H, H) block orthogonal, and Xavier's
fan-in/fan-out must be the gate's, not the stack's. So every initialiser below acts on one block.

    rnnlab.LSTM(8, 64, init="orthogonal", forget_bias=1.0)
    rnnlab.RNN(1, 128, init={"input": "xavier_uniform", "recurrent": "identity"}, nonlinearity="relu")
    rnnlab.RNN(1, 128, spectral_radius=0.9)

torch's default (uniform ±1/√H on everything) stays the default, so rnnlab equals torch out of the box.
Any named `init` also zeroes the gate biases (the Glorot/orthogonal convention of Keras and haste);
`forget_bias` and `chrono` then set the gate that keeps the past (LSTM f, GRU z).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

Initialiser = Callable[[Tensor], Any]
InitSpec = str | Initialiser | Mapping[str, "str | Initialiser"] | None


def _matrix_only(name: str, fn: Callable[[Tensor], Any]) -> Initialiser:
    def init(block: Tensor) -> None:
        if block.dim() < 2:
            raise ValueError(f"init {name!r} needs a weight matrix; this cell's weight is a vector")
        fn(block)

    return init


def identity(block: Tensor) -> None:
    """Identity recurrent weights (IRNN, Le et al. 2015): h_t starts as a copy of h_{t-1}."""
    with torch.no_grad():
        if block.dim() == 1:
            block.fill_(1.0)
        else:
            nn.init.eye_(block)


def henaff(block: Tensor, generator: torch.Generator | None = None) -> None:
    """Random rotations (Henaff et al. 2016, expRNN's "henaff" init): a block-diagonal orthogonal matrix of
    2×2 rotations by angles θ ~ U(−π, π), [[cos θ, sin θ], [−sin θ, cos θ]] (= exp of expRNN's skew
    matrix), and 1 for the last unit of an odd size. Each pair of units starts as a plane rotation,
    which keeps the norm of the state exactly."""
    if block.dim() != 2 or block.shape[0] != block.shape[1]:
        raise ValueError(f"init 'henaff' needs a square matrix, got shape {tuple(block.shape)}")
    n = block.shape[0]
    theta = (torch.rand(n // 2, dtype=torch.float64, generator=generator) * 2.0 - 1.0) * math.pi
    cos, sin = torch.cos(theta), torch.sin(theta)
    rotations = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # (n//2, 2, 2)
    matrix = torch.block_diag(*rotations, *([torch.ones(1, 1, dtype=torch.float64)] * (n % 2)))
    with torch.no_grad():
        block.copy_(matrix)


def normal(std: float = 0.01) -> Initialiser:
    """Gaussian weights with standard deviation `std`."""

    def init(block: Tensor) -> None:
        nn.init.normal_(block, 0.0, std)

    return init


INITIALISERS: dict[str, Initialiser] = {
    "xavier_uniform": _matrix_only("xavier_uniform", nn.init.xavier_uniform_),
    "xavier_normal": _matrix_only("xavier_normal", nn.init.xavier_normal_),
    "kaiming_uniform": _matrix_only("kaiming_uniform", lambda w: nn.init.kaiming_uniform_(w, a=0.0)),
    "kaiming_normal": _matrix_only("kaiming_normal", lambda w: nn.init.kaiming_normal_(w, a=0.0)),
    "orthogonal": _matrix_only("orthogonal", nn.init.orthogonal_),
    "identity": identity,
    "normal": normal(),
}
VALID = sorted([*INITIALISERS, "default", "normal(std)"])


def resolve(spec: str | Initialiser) -> Initialiser | None:
    """An initialiser from its name (`"orthogonal"`, `"normal(0.05)"`, `"default"`) or a callable."""
    if callable(spec):
        return spec
    if not isinstance(spec, str):
        raise ValueError(
            f"init must be a name or a callable, got {type(spec).__name__}; valid names: {VALID}"
        )
    if spec == "default":
        return None
    match = re.fullmatch(r"normal\(\s*(?:std\s*=\s*)?([0-9.eE+-]+)\s*\)", spec)
    if match:
        std = float(match.group(1))
        if not std > 0:
            raise ValueError(f"normal(std) needs std > 0, got {spec!r}")
        return normal(std)
    if spec not in INITIALISERS:
        raise ValueError(f"unknown init {spec!r}; valid names: {', '.join(VALID)}")
    return INITIALISERS[spec]


def _split(spec: InitSpec) -> tuple[Initialiser | None, Initialiser | None]:
    """(input, recurrent) initialisers from an `init` argument."""
    if spec is None:
        return None, None
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"input", "recurrent"}
        if unknown:
            raise ValueError(f"init dict keys must be 'input' and/or 'recurrent', got {sorted(unknown)}")
        return resolve(spec.get("input", "default")), resolve(spec.get("recurrent", "default"))
    if spec == "identity":  # identity only makes sense from h_{t-1} to h_t
        return None, identity
    one = resolve(spec)
    return one, one


def blocks(weight: Tensor, gates: int) -> list[Tensor]:
    """The per-gate views of a stacked weight (G*H, n) -> G blocks (H, n)."""
    return list(weight.chunk(gates, 0))


def spectral_radius(matrix: Tensor) -> float:
    """max |eigenvalue| of a square matrix (a vector is read as the diagonal of one)."""
    m = matrix.detach().to(torch.float64, copy=True).cpu()
    if m.dim() == 1:
        return float(m.abs().max())
    return float(torch.linalg.eigvals(m).abs().max())


def scale_to_spectral_radius(block: Tensor, rho: float) -> None:
    """Scale a recurrent block in place so that its spectral radius is `rho`."""
    current = spectral_radius(block)
    if current == 0.0:
        raise ValueError("cannot scale a recurrent block whose spectral radius is 0 (all-zero eigenvalues)")
    with torch.no_grad():
        block.mul_(rho / current)


def chrono_bias(hidden_size: int, max_steps: float, generator: torch.Generator | None = None) -> Tensor:
    """Chrono initialisation (Tallec & Ollivier 2018): log U[1, T_max − 1], so that forget gates keep
    memories for characteristic times spread up to T_max steps."""
    u = torch.rand(hidden_size, dtype=torch.float64, generator=generator) * (max_steps - 2.0) + 1.0
    return torch.log(u)


def initialize(
    target: Any,
    *,
    init: InitSpec = None,
    forget_bias: float | None = None,
    chrono: float | None = None,
    spectral_radius: float | None = None,
) -> None:
    """Apply initialisers to a `Recurrent` layer or a `Cell`, every layer and direction.

    A constrained weight (`Cell.constraints()`, e.g. the orthogonal cell's `weight_hh`) is initialised as a
    draft and then brought onto its constraint: a recurrent init that is not orthogonal becomes the nearest
    orthogonal matrix. `spectral_radius` cannot rescale a constrained recurrent weight: a ValueError.

    Args:
        init: a name, a callable acting on one block in place, or `{"input": ..., "recurrent": ...}`.
        forget_bias: constant bias of the keep gate (LSTM forget gate, GRU update gate).
        chrono: T_max of chrono initialisation (keep-gate bias log U[1, T_max−1], LSTM input bias minus it).
        spectral_radius: scale every recurrent block to this spectral radius (the classic criterion:
            below 1 gradients shrink through time, above 1 they can grow).
    """
    input_init, recurrent_init = _split(init)
    if forget_bias is not None and chrono is not None:
        raise ValueError("forget_bias and chrono both set the forget-gate bias: give one of them")
    if chrono is not None and not chrono > 2:
        raise ValueError(
            f"chrono is T_max, the longest time dependency in steps; it must be > 2, got {chrono}"
        )
    if spectral_radius is not None and not spectral_radius > 0:
        raise ValueError(f"spectral_radius must be positive, got {spectral_radius}")
    with target.writable_parameters() as groups:
        if spectral_radius is not None:
            _check_scalable(groups)
        for cell, params in groups:
            _initialize_group(cell, params, input_init, recurrent_init, forget_bias, chrono, spectral_radius)


def _check_scalable(groups: list[tuple[Any, dict[str, Tensor]]]) -> None:
    """Refuse `spectral_radius` on a cell whose recurrent weight a constraint holds."""
    for cell, _ in groups:
        constraints = cell.constraints()
        for name in cell.recurrent_weights:
            if name in constraints:
                raise ValueError(
                    f"spectral_radius cannot be set for {type(cell).__name__}: its {name} is "
                    f"{constraints[name].description}; leave spectral_radius unset"
                )


def _initialize_group(
    cell: Any,
    params: dict[str, Tensor],
    input_init: Initialiser | None,
    recurrent_init: Initialiser | None,
    forget_bias: float | None,
    chrono: float | None,
    spectral_radius: float | None,
) -> None:
    """The initialisers on one layer and direction."""
    gates = cell.gate_count
    with torch.no_grad():
        for names, fn in ((cell.input_weights, input_init), (cell.recurrent_weights, recurrent_init)):
            if fn is None:
                continue
            for name in names:
                for block in blocks(params[name], gates):
                    fn(block)
        if input_init is not None or recurrent_init is not None:  # a named init, not "default"
            for name in cell.gate_biases:
                if name in params:
                    params[name].zero_()
        if spectral_radius is not None:
            for name in cell.recurrent_weights:
                for block in blocks(params[name], gates):
                    scale_to_spectral_radius(block, spectral_radius)
        if forget_bias is not None or chrono is not None:
            _set_keep_bias(cell, params, forget_bias, chrono)


def _set_keep_bias(cell: Any, params: Mapping[str, Tensor], forget_bias: float | None, chrono: float | None):
    what = "forget_bias" if forget_bias is not None else "chrono"
    if cell.keep_gate is None:
        raise ValueError(f"{what} needs a gated cell (LSTM or GRU); {type(cell).__name__} has no keep gate")
    biases = [params[n] for n in cell.gate_biases if n in params]
    if not biases:
        raise ValueError(f"{what} needs bias parameters; this layer was built with bias=False")
    gates = cell.gate_count
    keep = cell.gate_names.index(cell.keep_gate)
    if chrono is not None:
        value = chrono_bias(cell.hidden_size, chrono).to(biases[0])
    else:
        value = torch.full((cell.hidden_size,), float(forget_bias)).to(biases[0])  # type: ignore[arg-type]
    for i, bias in enumerate(biases):  # the effective bias is the sum: put it all in the first
        blocks(bias, gates)[keep].copy_(value if i == 0 else torch.zeros_like(value))
        if chrono is not None and "i" in cell.gate_names:
            blocks(bias, gates)[cell.gate_names.index("i")].copy_(
                -value if i == 0 else torch.zeros_like(value)
            )


__all__ = [
    "INITIALISERS",
    "InitSpec",
    "blocks",
    "chrono_bias",
    "henaff",
    "identity",
    "initialize",
    "normal",
    "resolve",
    "scale_to_spectral_radius",
    "spectral_radius",
]
