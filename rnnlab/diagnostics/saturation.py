"""Saturation: the share of units sitting in the flat tails of their nonlinearity, where gradients die.

    |tanh x| > 0.99       ⇔  tanh'(x) = 1 − tanh² x < 0.02
    σ(x) < 0.01 or > 0.99 ⇔  σ'(x) = σ(1 − σ) < 0.0099

A saturated unit passes on under 2% of the gradient that reaches it, at every step it stays saturated. The
gate that keeps the past (LSTM forget gate f, GRU update gate z) is measured apart, as a distribution:
open (near 1) it is the gradient's path through time, closed (near 0) the cell forgets every step. Its
memory time −1/ln f is the number of steps over which a kept value decays by e. Large layers are measured
on evenly strided time steps (`SAMPLE`), so the cost stays a few milliseconds whatever T × B × H.
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
#: shares are measured on evenly strided time steps holding about this many values per gate (all steps
#: of a small layer): a share estimated from 2^18 values is within ±0.2% of the whole, at a fixed cost.
SAMPLE = 1 << 18
#: quantiles are taken on an evenly strided subsample of at most this many keep-gate values.
_QUANTILE_SAMPLE = 1 << 14


def measure(
    gates: dict[str, Tensor],
    mask: Tensor | None,
    tanh_units: tuple[str, ...],
    sigmoid_gates: tuple[str, ...],
    keep_gate: str | None,
) -> dict[str, Any]:
    """Saturation of one layer's activations over its steps and sequences.

    Args:
        gates: name -> activations (T, B, H), as a cell's step returns them.
        mask: (T, B, 1) bool, True at steps inside each sequence, or None.
        tanh_units, sigmoid_gates, keep_gate: which names are which (the cell's class attributes).

    Returns a dict of 0-dim tensors (left on the device; convert with `tolist`): `tanh` (share of tanh units
    saturated, over all tanh names), `gates` (share saturated over the sigmoid gates other than the keep
    gate), `per_gate` {name: {"low", "high"} or {"saturated"}}, and `keep_gate` (None, or its name, mean,
    quantiles, histogram and median memory time in steps).
    """
    names = [n for n in (*tanh_units, *sigmoid_gates) if n in gates]
    if not names:
        return {"tanh": None, "gates": None, "per_gate": {}, "keep_gate": None}
    T, B, H = gates[names[0]].shape
    stride = max(1, min(math.ceil(T * B * H / SAMPLE), T // 8))
    steps = slice(stride // 2, None, stride)
    mask = None if mask is None else mask[steps]
    count = (B * H * len(range(T)[steps])) if mask is None else int(mask.sum()) * H

    def hits(name: str, test: Any) -> Tensor:
        x = gates[name][steps]
        return torch.count_nonzero(test(x) if mask is None else test(x) & mask)

    per_gate: dict[str, dict[str, Tensor]] = {}
    tanh_hits, gate_hits = [], []
    for name in (n for n in tanh_units if n in gates):
        tanh_hits.append(hits(name, lambda x: x.abs() > TANH_LIMIT))
        per_gate[name] = {"saturated": tanh_hits[-1] / max(count, 1)}
    for name in (n for n in sigmoid_gates if n in gates):
        low, high = hits(name, lambda x: x < SIGMOID_LOW), hits(name, lambda x: x > SIGMOID_HIGH)
        per_gate[name] = {"low": low / max(count, 1), "high": high / max(count, 1)}
        if name != keep_gate:
            gate_hits.append(low + high)
    keep = None
    if keep_gate in gates:
        x = gates[keep_gate][steps]
        keep = _keep(keep_gate, x.reshape(-1) if mask is None else x[mask.expand_as(x)])
    return {
        "tanh": _share(tanh_hits, count),
        "gates": _share(gate_hits, count),
        "per_gate": per_gate,
        "keep_gate": keep,
    }


def _share(hits: list[Tensor], count: int) -> Tensor | None:
    return torch.stack(hits).sum() / (count * len(hits)) if hits and count else None


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
