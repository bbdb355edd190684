"""Saturation: the share of units sitting in the flat tails of their nonlinearity, where gradients die.

    |tanh x| > 0.99       ⇔  tanh'(x) = 1 − tanh² x < 0.02
    σ(x) < 0.01 or > 0.99 ⇔  σ'(x) = σ(1 − σ) < 0.0099

A saturated unit passes on under 2% of the gradient that reaches it, at every step it stays saturated. The
gate that keeps the past (LSTM forget gate f, GRU update gate z) is measured apart, as a distribution:
open (near 1) it is the gradient's path through time, closed (near 0) the cell forgets every step. Its
memory time −1/ln f is the number of steps over which a kept value decays by e.

Every statistic describes the whole population of (step, sequence, unit) values: all of them when there
are up to `QUANTILE_SAMPLE` per gate, else `SAMPLE` positions drawn uniformly at random (the same for
every gate, from a generator of its own, so the global RNG stream is untouched), which keeps the cost a
fraction of a millisecond whatever T × B × H. A strided sample would not do: a stride that divides H
sees only every k-th unit.
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
#: values per gate measured at most: a share estimated from 2^14 uniform draws has a standard error
#: under 0.4 percentage points.
SAMPLE = 1 << 14
#: quantiles and the histogram are taken on at most this many of them (the median within about ±0.8%
#: of the population); a layer with no more values per gate is measured whole.
QUANTILE_SAMPLE = 1 << 12
#: a keep gate below this is closed (the share is reported; `verdict.FORGET_CLOSED` is the same value).
KEEP_CLOSED = 0.1


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
    share closed (below `KEEP_CLOSED`), quantiles, histogram and median memory time in steps).
    """
    names = [n for n in (*tanh_units, *sigmoid_gates) if n in gates]
    if not names:
        return {"tanh": None, "gates": None, "per_gate": {}, "keep_gate": None}
    population = _population(gates[names[0]], mask)
    measured = [*names, *([keep_gate] if keep_gate in gates and keep_gate not in names else [])]
    values = {name: population(gates[name]) for name in measured}  # (N,) each
    count = values[names[0]].numel()

    def hits(name: str, test: Any) -> Tensor:
        return torch.count_nonzero(test(values[name]))

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
        keep = _keep(keep_gate, values[keep_gate])
    return {
        "tanh": _share(tanh_hits, count),
        "gates": _share(gate_hits, count),
        "per_gate": per_gate,
        "keep_gate": keep,
    }


def _population(like: Tensor, mask: Tensor | None) -> Any:
    """A function giving the measured values (N,) of any (T, B, H) activation: all valid ones, or the
    same `SAMPLE` uniformly drawn valid positions of each (see the module docstring)."""
    T, B, H = like.shape
    if T * B * H <= QUANTILE_SAMPLE:
        if mask is None:
            return lambda x: x.reshape(-1)
        full = mask.expand(T, B, H)
        return lambda x: x[full]
    gen = torch.Generator(device=like.device).manual_seed(0)  # never the global RNG
    t, b, h = (torch.randint(n, (SAMPLE,), generator=gen, device=like.device) for n in (T, B, H))
    if mask is not None:
        valid = mask[t, b, 0]
        t, b, h = t[valid], b[valid], h[valid]
    offsets: dict[tuple[int, ...], Tensor] = {}

    def values(x: Tensor) -> Tensor:
        # gathered from the storage by offset: indexing a strided view (a gate of the kernel's buffer)
        # with three index tensors costs ten times more
        if x.stride() not in offsets:
            s0, s1, s2 = x.stride()
            offsets[x.stride()] = (t * s0).add_(b * s1).add_(h * s2)
        storage = x.as_strided((x.untyped_storage().nbytes() // x.element_size(),), (1,), 0)
        return storage.index_select(0, offsets[x.stride()].add(int(x.storage_offset())))

    return values


def _share(hits: list[Tensor], count: int) -> Tensor | None:
    return torch.stack(hits).sum() / (count * len(hits)) if hits and count else None


def _keep(name: str, x: Tensor) -> dict[str, Any]:
    sample = x[:QUANTILE_SAMPLE].float()  # all values, or the first of the random draws
    q = torch.quantile(sample, torch.tensor(QUANTILES, dtype=sample.dtype, device=sample.device))
    median = q[QUANTILES.index(0.5)]
    return {
        "name": name,
        "mean": x.float().mean(),
        "closed": torch.count_nonzero(x < KEEP_CLOSED) / max(x.numel(), 1),
        "quantiles": dict(zip((f"q{round(p * 100):02d}" for p in QUANTILES), q, strict=True)),
        "histogram": torch.histc(sample, bins=HISTOGRAM_BINS, min=0.0, max=1.0) / max(sample.numel(), 1),
        "memory_steps": torch.where(median < 1, -1.0 / torch.log(median.clamp_min(1e-30)), math.inf),
    }
