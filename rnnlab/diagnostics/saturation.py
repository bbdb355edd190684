"""Saturation: the share of units sitting in the flat tails of their nonlinearity, where gradients die.

    |tanh x| > 0.99       ⇔  tanh'(x) = 1 − tanh² x < 0.02
    σ(x) < 0.01 or > 0.99 ⇔  σ'(x) = σ(1 − σ) < 0.0099

A saturated unit passes on under 2% of the gradient that reaches it, at every step it stays saturated. The
gate that keeps the past (LSTM forget gate f, GRU update gate z) is measured apart, as a distribution:
open (near 1) it is the gradient's path through time, closed (near 0) the cell forgets every step. Its
memory time −1/ln f is the number of steps over which a kept value decays by e.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

#: |tanh| above this is saturated (derivative below 1 − 0.99² ≈ 0.02).
TANH_LIMIT = 0.99
#: a sigmoid gate outside [LOW, HIGH] is saturated (derivative below 0.0099).
SIGMOID_LOW, SIGMOID_HIGH = 0.01, 0.99
#: quantiles reported for the keep gate.
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
#: bins of the keep gate's histogram on [0, 1].
HISTOGRAM_BINS = 20
#: quantiles are taken on an evenly strided subsample of at most this many values (sorting all is slow).
_QUANTILE_SAMPLE = 1 << 16


def _valid(x: Tensor, mask: Tensor | None) -> Tensor:
    """The entries of x (T, B, H) at steps inside each sequence, flattened."""
    return x.reshape(-1) if mask is None else x[mask.expand_as(x)]


def measure(
    gates: dict[str, Tensor],
    mask: Tensor | None,
    tanh_units: tuple[str, ...],
    sigmoid_gates: tuple[str, ...],
    keep_gate: str | None,
) -> dict[str, Any]:
    """Saturation of one layer's activations over all steps and sequences.

    Args:
        gates: name -> activations (T, B, H), as a cell's step returns them.
        mask: (T, B, 1) bool, True at steps inside each sequence, or None.
        tanh_units, sigmoid_gates, keep_gate: which names are which (the cell's class attributes).

    Returns a dict of 0-dim tensors (left on the device; convert with `tolist`): `tanh` (share of tanh units
    saturated, over all tanh names), `gates` (share saturated over the sigmoid gates other than the keep
    gate), `per_gate` {name: {"low", "high"} or {"saturated"}}, and `keep_gate` (None, or its name, mean,
    quantiles, histogram and median memory time in steps).
    """
    per_gate: dict[str, dict[str, Tensor]] = {}
    tanh_hits, tanh_count = [], 0
    for name in tanh_units:
        if name in gates:
            x = _valid(gates[name], mask)
            hits = (x.abs() > TANH_LIMIT).sum()
            per_gate[name] = {"saturated": hits / max(x.numel(), 1)}
            tanh_hits.append(hits)
            tanh_count += x.numel()
    gate_hits, gate_count = [], 0
    for name in sigmoid_gates:
        if name in gates:
            x = _valid(gates[name], mask)
            n = max(x.numel(), 1)
            low, high = (x < SIGMOID_LOW).sum(), (x > SIGMOID_HIGH).sum()
            per_gate[name] = {"low": low / n, "high": high / n}
            if name != keep_gate:
                gate_hits.append(low + high)
                gate_count += x.numel()
    return {
        "tanh": _share(tanh_hits, tanh_count),
        "gates": _share(gate_hits, gate_count),
        "per_gate": per_gate,
        "keep_gate": _keep(keep_gate, _valid(gates[keep_gate], mask)) if keep_gate in gates else None,
    }


def _share(hits: list[Tensor], count: int) -> Tensor | None:
    return torch.stack(hits).sum() / count if hits and count else None


def _keep(name: str, x: Tensor) -> dict[str, Any]:
    sample = x[:: max(1, math.ceil(x.numel() / _QUANTILE_SAMPLE))].float()
    q = torch.quantile(sample, torch.tensor(QUANTILES, dtype=sample.dtype, device=sample.device))
    median = q[QUANTILES.index(0.5)]
    return {
        "name": name,
        "mean": x.float().mean(),
        "quantiles": dict(zip((f"q{round(p * 100):02d}" for p in QUANTILES), q, strict=True)),
        "histogram": torch.histc(x.float(), bins=HISTOGRAM_BINS, min=0.0, max=1.0) / max(x.numel(), 1),
        "memory_steps": torch.where(median < 1, -1.0 / torch.log(median.clamp_min(1e-30)), math.inf),
    }
