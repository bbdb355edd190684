"""`rnnlab.watch`: observe one forward and backward of a model and say how its gradient flows through time.

    with rnnlab.watch(model) as probe:
        loss = loss_fn(model(x), y)
        loss.backward()
    print(probe.report())            # one verdict per layer, with the numbers and the options to try

Inside the block every `rnnlab.Recurrent` of the model runs its unrolled path with an observer (the
layer's `observer_factory`), which sees each step's states, gates and total gradients ∂L/∂h_t, ∂L/∂c_t
and reduces them at once to per-step norms, saturation shares and the first non-finite step; it keeps
the states and gates of one sequence (the longest with a finite input, or `sample`) for the Jacobian
analysis, which for torch's cells needs nothing else (linearisation.py; other cells are replayed). Hooks
on each layer's call read the input for NaN/Inf and, in the backward, the gradient arriving at its
outputs and final state: at how many steps the loss enters, and whether it is finite. When the block ends
the probe reads the parameters' gradients (so clip after the block: the norm is pre-clip) and values
(a NaN/Inf weight is named), the recurrent spectra and, unless `jacobian=False`, the Jacobian products.
Each layer's verdict rests on its own evidence; the layer above and the one below are consulted only to
say where growth, decay or NaN/Inf arrives from (see verdict.py). The report is built whatever the values:
NaN/Inf anywhere never raises. With several forwards in one block (truncated BPTT windows) the report
covers the last one that was back-propagated. Observing changes nothing: loss, gradients, parameters and
the RNG stream are what they would be on the unrolled path without it (a layer that would run torch's
fused kernel runs unrolled inside the block, which agrees with it to rounding).
"""

from __future__ import annotations

import contextlib
import math
from types import TracebackType
from typing import Any

import torch
from torch import Tensor, nn

from rnnlab.diagnostics import jacobian as jac
from rnnlab.diagnostics import linearisation, saturation, spectra, trajectory
from rnnlab.diagnostics.report import LayerReport, Report, first_over, max_radius, profile_horizon, to_python
from rnnlab.diagnostics.verdict import VANISHING, Evidence, diagnose
from rnnlab.layers import Recurrent, Unit
from rnnlab.numerics import flush_denormals


class _Recorder:
    """Observer of one layer and direction in one forward: keeps a few reductions, never the steps (only,
    for the Jacobian analysis, the states and gates of the one sequence it analyses)."""

    def __init__(self, unit: Unit, index: int, call: trajectory.LayerCall | None, keep: bool) -> None:
        self.unit, self.index, self.cell, self.call = unit, index, unit.cell, call
        closed = linearisation.closed_form_owner(unit.cell) is not None  # else it is replayed
        self.keep = keep and closed and call is not None and len(call.x) > 0
        self.steps: int | None = None
        self.batch: int | None = None
        self.saturation: dict[str, Any] | None = None
        self.state_ok: Tensor | None = None  # (T,) bool: every state finite at step t
        self.profiles: tuple[Tensor, ...] | None = None  # (T,) per state field
        self.grad_ok: Tensor | None = None
        self.states: tuple[Tensor, ...] | None = None  # (L, H) per field: the analysed sequence
        self.gates: dict[str, Tensor] | None = None

    def forward(self, states: tuple[Tensor, ...], gates: dict[str, Tensor], mask: Tensor | None) -> None:
        c = self.cell
        self.steps, self.batch = states[0].shape[0], states[0].shape[1]
        self.saturation = saturation.measure(gates, mask, c.tanh_units, c.sigmoid_gates, c.keep_gate)
        self.state_ok = _finite_steps(states, [s.sum(dim=(1, 2)) for s in states])
        if self.keep and self.call is not None:  # processing order: the sequence's steps come first
            b, L = self.call.sample, len(self.call.x)
            self.states = tuple(s[:L, b].detach().clone() for s in states)
            self.gates = {k: gates[k][:L, b].detach().clone() for k in linearisation.gates_needed(c)}

    def backward(self, grads: tuple[Tensor, ...]) -> None:
        self.profiles = tuple(_step_norms(g) for g in grads)
        self.grad_ok = _finite_steps(grads, list(self.profiles))

    def trajectory(self) -> trajectory.Trajectory | None:
        """The analysed sequence's trajectory from the observed steps (None when not kept)."""
        if self.states is None or self.call is None:
            return None
        k = self.index
        first = torch.cat([s[k] for s in self.call.state0], -1).to(self.states[0].dtype)[None]
        states = torch.cat([first, torch.cat(self.states, -1)])  # (L + 1, n)
        params = {n: p.detach() for n, p in self.unit.params.items()}
        return trajectory.Trajectory(self.cell, params, states, gates=self.gates)


class _Tee:
    """Two observers of the same steps (a probe inside another)."""

    def __init__(self, *observers: Any) -> None:
        self.observers = observers

    def forward(self, *args: Any) -> None:
        for o in self.observers:
            o.forward(*args)

    def backward(self, *args: Any) -> None:
        for o in self.observers:
            o.backward(*args)


class Probe:
    """`rnnlab.watch(model)`: watch the gradient flow through time of every `rnnlab.Recurrent` in `model`
    (see the module docstring); a context manager whose `report()` holds the result once its block ended.

    Args:
        model: any module holding rnnlab recurrent layers (or one itself).
        jacobian: also analyse the Jacobian products (γ, memory horizon) along one sequence of the last
            forward; its cost is stated in `report().layers[...].jacobian.passes`.
        sample: which sequence of the batch to analyse (default: the longest with a finite input).
        threshold: the memory horizon ends where ‖∂s_L/∂s_t‖₂ falls below this.
        method, iterations: "auto", "exact", "sweep" or "power", and its iterations (default: the method's;
            see `rnnlab.jacobian_products`).
        median_grad_norm: the typical pre-clip norm so far, if known; it sets the suggested clip threshold.
        flush_denormal: flush denormal floats to zero inside the block and while the report is built
            (`rnnlab.flush_denormals`; the caller's setting is restored): a vanishing gradient is then fast,
            and a norm below 1.2e-38 reads 0, which the report calls an underflow.

    Example:
        >>> with rnnlab.watch(model) as probe:
        ...     loss_fn(model(x), y).backward()
        >>> print(probe.report())
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        jacobian: bool = True,
        sample: int | None = None,
        threshold: float = jac.HORIZON_THRESHOLD,
        method: jac.Method = "auto",
        iterations: int | None = None,
        median_grad_norm: float | None = None,
        flush_denormal: bool = True,
    ) -> None:
        self.model = model
        self.layers = {name: m for name, m in model.named_modules() if isinstance(m, Recurrent)}
        torch_rnns = [name or "(model)" for name, m in model.named_modules() if isinstance(m, nn.RNNBase)]
        if not self.layers:
            found = f" (it holds torch.nn RNNs at {', '.join(torch_rnns)})" if torch_rnns else ""
            raise ValueError(
                f"{type(model).__name__} holds no rnnlab.Recurrent layer to watch{found}; use rnnlab.LSTM, "
                "GRU or RNN (drop-in replacements), or rnnlab.time_profile for any model"
            )
        jac.check(method, iterations)
        self.notes = [
            f"{name} is a torch.nn RNN: its steps are not observable (rnnlab.LSTM/GRU/RNN are drop-in)"
            for name in torch_rnns
        ]
        self.jacobian, self.sample, self.median_grad_norm = jacobian, sample, median_grad_norm
        self.threshold, self.method, self.iterations = threshold, method, iterations
        self.records: dict[str, list[_Recorder]] = {}
        self.calls: dict[str, trajectory.LayerCall | None] = {}
        self.output_grads: dict[str, Tensor] = {}  # (T,) ‖∂L/∂y_t‖ at each layer's outputs
        self.final_grads: dict[str, list[Tensor]] = {}  # ‖∂L/∂h_n‖ (, ‖∂L/∂c_n‖) at its final state
        self._saved: dict[str, Any] = {}
        self._handles: list[Any] = []
        self._report: Report | None = None
        self.flush_denormal = flush_denormal
        self._numerics = contextlib.ExitStack()

    # ------------------------------------------------------------------------------------------- attach

    def __enter__(self) -> Probe:
        if self._saved:
            raise RuntimeError("this probe is already watching; start a new rnnlab.watch")
        self._numerics.enter_context(flush_denormals(self.flush_denormal))
        for name, layer in self.layers.items():
            self._saved[name] = (layer.observer_factory, layer.execution)
            layer.observer_factory = self._factory(name, layer, layer.observer_factory)
            if layer.execution == "fused":  # observed steps need the unrolled path, for this block only
                layer.execution = "auto"
            self._handles.append(trajectory.capture(layer, self._capture(name)))
            self._handles.append(layer.register_forward_hook(self._outputs(name)))
        return self

    def _factory(self, name: str, layer: Recurrent, previous: Any) -> Any:
        keep = self.jacobian

        def make(unit: Unit) -> Any:
            index = unit.layer * layer.num_directions + unit.direction
            recorder = _Recorder(unit, index, self.calls.get(name), keep)
            self.records.setdefault(_key(name, unit.suffix), []).append(recorder)
            other = previous(unit) if previous is not None else None
            return recorder if other is None else _Tee(recorder, other)

        return make

    def _capture(self, name: str) -> Any:
        def sink(layer: Recurrent, args: tuple, kwargs: dict) -> None:
            self.calls[name] = trajectory.select(layer, args, kwargs, self.sample)

        return sink

    def _outputs(self, name: str) -> Any:
        """A forward hook: ‖∂L/∂y_t‖ at every step of the layer's output and ‖∂L/∂h_n‖ at its final state,
        once backward reaches them (how many steps the loss enters at, and whether what it sends is
        finite)."""

        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            out, final = output
            self.output_grads.pop(name, None)
            self.final_grads[name] = []
            if isinstance(out, Tensor) and out.requires_grad and out.dim() >= 2:  # not a PackedSequence
                time_dim = 1 if module.batch_first and out.dim() == 3 else 0

                def record(grad: Tensor) -> None:
                    dims = [d for d in range(grad.dim()) if d != time_dim]
                    self.output_grads[name] = torch.linalg.vector_norm(grad, dim=dims, dtype=torch.float64)

                out.register_hook(record)
            for tensor in final if isinstance(final, tuple) else (final,):
                if isinstance(tensor, Tensor) and tensor.requires_grad:
                    tensor.register_hook(
                        lambda g: self.final_grads[name].append(
                            torch.linalg.vector_norm(g, dtype=torch.float64)
                        )
                    )

        return hook

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for name, layer in self.layers.items():
            layer.observer_factory, layer.execution = self._saved.pop(name)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        with self._numerics:
            if exc_type is None:
                self._report = self._build()

    def report(self) -> Report:
        """What the probe found (see `rnnlab.diagnostics.Report`)."""
        if self._report is None:
            raise RuntimeError("the report exists once the `with rnnlab.watch(model)` block has ended")
        return self._report

    # -------------------------------------------------------------------------------------------- build

    def _build(self) -> Report:
        norms, bad = _grad_norms(self.model)
        grad_norm = math.sqrt(sum(v * v for v in norms.values())) if norms else None
        broken = [n for n, p in self.model.named_parameters() if not bool(torch.isfinite(p).all())]
        layers: dict[str, LayerReport] = {}
        for name, layer in self.layers.items():
            layers |= self._module(name, layer, grad_norm)
        return Report(layers, grad_norm, norms, bad, list(self.notes), broken)

    def _module(self, name: str, layer: Recurrent, grad_norm: float | None) -> dict[str, LayerReport]:
        """The reports of every layer and direction of one `Recurrent`, top layer first (a layer's notes
        name the layer above and its verdict), returned bottom first."""
        spec = spectra.recurrent_spectra(layer)
        units = list(layer.units())
        replayed: tuple[dict[str, jac.JacobianResult], dict[str, str]] | None = None
        out: dict[str, LayerReport] = {}
        recs = {u.suffix: self._recorder(_key(name, u.suffix)) for u in units}
        broken = {u.suffix: _broken(recs[u.suffix], u) for u in units}  # (states, anything) not finite

        def broken_at(depth: int, anything: bool) -> str:
            return ", ".join(
                _key(name, u.suffix) for u in units if u.layer == depth and broken[u.suffix][anything]
            )

        above: list[LayerReport] = []
        for depth in range(layer.num_layers - 1, -1, -1):
            here = []
            for unit in (u for u in units if u.layer == depth):
                key = _key(name, unit.suffix)
                rec = recs[unit.suffix]
                result, skipped = None, None
                if self.jacobian and rec is not None and rec.call is not None and len(rec.call.x) > 0:
                    traj = rec.trajectory()
                    if traj is not None:
                        skipped = traj.nonfinite()
                        skipped = None if skipped is None else f"{skipped} in sample {rec.call.sample}"
                        if skipped is None:
                            result = jac.products(
                                traj,
                                threshold=self.threshold,
                                method=self.method,
                                iterations=self.iterations,
                                sample=rec.call.sample,
                            )
                    else:  # no closed form: the sequence is replayed with the cell's own step
                        if replayed is None:
                            replayed = jac.analyse(
                                layer,
                                rec.call,
                                threshold=self.threshold,
                                method=self.method,
                                iterations=self.iterations,
                            )
                        result, skipped = replayed[0].get(unit.suffix), replayed[1].get(unit.suffix)
                top = depth == layer.num_layers - 1
                broken_near = (
                    broken_at(depth - 1, False) if depth else "",
                    "" if top else broken_at(depth + 1, True),
                )
                report = self._layer_report(
                    key,
                    name,
                    unit,
                    rec,
                    spec[unit.suffix],
                    result,
                    skipped,
                    grad_norm,
                    top,
                    above,
                    broken_near,
                )
                here.append(report)
                out[key] = report
            above = here
        return {_key(name, u.suffix): out[_key(name, u.suffix)] for u in units}

    def _recorder(self, key: str) -> _Recorder | None:
        """The recorder of the last forward that was back-propagated (else the last forward)."""
        records = self.records.get(key, [])
        with_grad = [r for r in records if r.profiles is not None]
        return with_grad[-1] if with_grad else (records[-1] if records else None)

    def _layer_report(
        self,
        key: str,
        module: str,
        unit: Unit,
        rec: _Recorder | None,
        spec: dict,
        result: jac.JacobianResult | None,
        skipped: str | None,
        grad_norm: float | None,
        top: bool,
        above: list[LayerReport],
        broken_near: tuple[str, str],
    ) -> LayerReport:
        cell = unit.cell
        profiles = [p.tolist() for p in rec.profiles] if rec and rec.profiles is not None else None
        sat = to_python(rec.saturation) if rec is not None else None
        nonfinite = {
            "state_step": _first_false(rec.state_ok if rec else None),
            "grad_step": _last_false(rec.grad_ok if rec else None),
        }
        keep = sat.get("keep_gate") if sat else None
        layer_fields = cell.state_type._fields
        call = rec.call if rec is not None else None
        weights = [
            _key(module, f"{n}_{unit.suffix}")
            for n, p in unit.params.items()
            if not bool(torch.isfinite(p).all())
        ]
        loss_terms, loss_step = _entering(
            self.output_grads.get(module), self.final_grads.get(module, []), rec.steps if rec else None, top
        )
        evidence = Evidence(
            cell=type(cell).__name__,
            gated=cell.keep_gate is not None,
            steps=rec.steps if rec else None,
            batch=rec.batch if rec else None,
            profile_drop=first_over(profiles, "peak"),
            profile_growth=first_over(profiles, "last"),
            profile_horizon=profile_horizon(profiles, VANISHING),
            profile_names=" and ".join(f"‖∂L/∂{f}_t‖" for f in layer_fields[: len(profiles or [])]),
            spectral_radius=max_radius(spec),
            tanh_saturated=sat.get("tanh") if sat else None,
            gates_saturated=sat.get("gates") if sat else None,
            keep_gate=cell.keep_gate,
            keep_median=keep["quantiles"]["q50"] if keep else None,
            keep_closed=keep.get("closed") if keep else None,
            nonfinite_state_step=nonfinite["state_step"],
            nonfinite_grad_step=nonfinite["grad_step"],
            nonfinite_input=call.nonfinite_input if call else None,
            nonfinite_samples=call.nonfinite_samples if call else 0,
            nonfinite_weights=weights,
            nonfinite_loss_step=loss_step,
            loss_terms=loss_terms,
            jacobian_skipped=skipped,
            below_nonfinite=broken_near[0],
            above_nonfinite=broken_near[1],
            grad_norm=grad_norm,
            median_grad_norm=self.median_grad_norm,
        )
        if above:
            evidence.above = ", ".join(f"{r.name} {r.verdict.name}" for r in above)
            growths = [r.first_over_last for r in above if r.first_over_last is not None]
            drops = [r.first_over_peak for r in above if r.first_over_peak is not None]
            evidence.above_growth = max(growths) if growths else None
            evidence.above_drop = min(drops) if drops else None
        if result is not None:
            evidence.gamma, evidence.horizon = result.gamma, result.horizon
            evidence.horizon_extrapolated = result.horizon_extrapolated
            evidence.full_product, evidence.growth = float(result.norms[-1]), result.growth
            evidence.jacobian_steps, evidence.jacobian_sample = result.steps, result.sample
        return LayerReport(
            name=key,
            cell=type(cell).__name__,
            steps=rec.steps if rec else None,
            batch=rec.batch if rec else None,
            profile_h=profiles[0] if profiles else None,
            profile_c=profiles[1] if profiles and len(profiles) > 1 else None,
            saturation=sat,
            spectra=spec,
            jacobian=result,
            nonfinite=nonfinite,
            verdict=diagnose(evidence),
            jacobian_skipped=skipped,
            evidence=evidence,
        )


#: `rnnlab.watch(model, ...)` makes the probe: the class is the function (see `Probe` for the arguments).
watch = Probe


def _key(module: str, suffix: str) -> str:
    """A report's name for one layer and direction: "encoder.l0_reverse" ("l0_reverse" for the model)."""
    return f"{module}.{suffix}" if module else suffix


def _grad_norms(model: nn.Module) -> tuple[dict[str, float], list[str]]:
    """{name: ‖grad‖₂} of every parameter with a gradient, and the names of the non-finite ones."""
    named = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
    if not named:
        return {}, []
    values = torch.stack(
        [torch.linalg.vector_norm(g.detach(), dtype=torch.float64) for _, g in named]
    ).tolist()
    norms = dict(zip((n for n, _ in named), values, strict=True))
    return norms, [n for n, v in norms.items() if not math.isfinite(v)]


def _finite_steps(tensors: tuple[Tensor, ...], reductions: list[Tensor]) -> Tensor:
    """(T,) bool: every entry of every (T, B, H) tensor finite at step t.

    A per-step sum or norm is finite when every entry is (one cheap pass); only the steps where it is not,
    which may be an overflow of finite values, are checked entry by entry.
    """
    ok = torch.stack([torch.isfinite(r) for r in reductions]).all(0)
    if not bool(ok.all()):
        bad = ~ok
        ok[bad] = torch.stack([torch.isfinite(t[bad]).flatten(1).all(1) for t in tensors]).all(0)
    return ok


#: a float32 per-step norm below this may have lost squares below the normal range (1.2e-38 each, at most
#: ~1e5 of them per step: 1e-33, against a norm² of 1e-30), or to a flushed denormal: recompute in float64.
_SMALL_NORM = 1e-15


def _step_norms(g: Tensor) -> Tensor:
    """‖g_t‖ over batch and features for every t of g (T, B, H).

    Squares of float32 entries below 1.1e-19 underflow (to 0 when denormals are flushed) and those above
    1.8e19 overflow, so the steps whose float32 norm is tiny or infinite are recomputed in float64."""
    norms = torch.linalg.vector_norm(g, dim=(1, 2))
    if g.dtype == torch.float64:
        return norms
    redo = torch.isinf(norms) | (norms < _SMALL_NORM)
    if bool(redo.any()):
        exact = torch.linalg.vector_norm(g[redo], dim=(1, 2), dtype=torch.float64)
        norms[redo] = exact.to(norms.dtype)  # inf only if truly huge, 0 only if truly below ~1e-45
    return norms


def _entering(
    output_grad: Tensor | None, final_grads: list[Tensor], steps: int | None, top: bool
) -> tuple[int | None, int | None]:
    """(loss terms, first non-finite step) of the gradient entering a layer from outside its recurrence:
    at the top, the steps where ∂L/∂y_t is not zero, the last one also when the loss reads the final
    state; below, every step (the layer above sends gradient at each). Unknown (None) without a backward
    through the outputs."""
    if not top:
        return steps, None
    if output_grad is None and not final_grads:
        return None, None
    T = steps or (len(output_grad) if output_grad is not None else 1)
    per_step = torch.zeros(T, dtype=torch.float64) if output_grad is None else output_grad.cpu().clone()
    if final_grads:
        per_step[-1] += torch.stack(final_grads).cpu().sum()
    ok = torch.isfinite(per_step)
    first = None if bool(ok.all()) else int(torch.nonzero(~ok)[0])
    return int(torch.count_nonzero(per_step)), first


def _broken(rec: _Recorder | None, unit: Unit) -> tuple[bool, bool]:
    """(whether a state went non-finite, whether a state, a gradient or a weight did)."""
    states = rec is not None and _first_false(rec.state_ok) is not None
    grads = rec is not None and _first_false(rec.grad_ok) is not None
    weights = any(not bool(torch.isfinite(p).all()) for p in unit.params.values())
    return states, states or grads or weights


def _first_false(ok: Tensor | None) -> int | None:
    if ok is None or bool(ok.all()):
        return None
    return int(torch.nonzero(~ok)[0])


def _last_false(ok: Tensor | None) -> int | None:
    """The step where backward first met a non-finite gradient (backward runs from the last step)."""
    if ok is None or bool(ok.all()):
        return None
    return int(torch.nonzero(~ok)[-1])
