"""Gradient flow through time: per-step diagnostics, verdicts with remedies, plots.

probe.py       watch(model): observe a forward and backward, report per layer and direction
profile.py     time_profile(model, inputs, loss_fn): ‖∂L/∂x_t‖ for any model (black box)
jacobian.py    jacobian_products: ‖∂s_L/∂s_t‖₂, γ per step, memory horizon
linearisation.py  the step Jacobians of one trajectory: closed forms for torch's cells, autograd otherwise
trajectory.py  one sequence of a layer stack's call (observed or replayed), for the Jacobian analysis
spectra.py     spectral radius and largest singular value of every recurrent gate block
saturation.py  saturated tanh units and sigmoid gates, keep-gate distribution
verdict.py     named thresholds, verdicts with a severity (alarm, note), their precedence and remedies
report.py      Report / LayerReport: dict, JSON, table
plots.py       matplotlib figures of a run's diagnostics.jsonl
"""

from rnnlab.diagnostics.jacobian import JacobianResult, jacobian_products
from rnnlab.diagnostics.probe import Probe, watch
from rnnlab.diagnostics.profile import time_profile
from rnnlab.diagnostics.report import LayerReport, Report
from rnnlab.diagnostics.spectra import recurrent_spectra
from rnnlab.diagnostics.verdict import Evidence, Verdict, diagnose

__all__ = [
    "Evidence",
    "JacobianResult",
    "LayerReport",
    "Probe",
    "Report",
    "Verdict",
    "diagnose",
    "jacobian_products",
    "recurrent_spectra",
    "time_profile",
    "watch",
]
