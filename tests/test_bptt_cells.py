"""The hand-written kernels of IndRNN, the orthogonal RNN and the LayerNorm cells equal the cell's own step
under autograd (execution="reference") in float64, pass gradcheck, hand the observer what the reference path
hands it, and are the fast path of exactly those cells."""

from __future__ import annotations

import pytest
import torch

import rnnlab
from rnnlab import bptt, bptt_cells, fused
from rnnlab.cells import IndRNNCell, LayerNormGRUCell, LayerNormLSTMCell, OrthogonalCell

TOL = 1e-10

#: (id, cell class, cell options, kernel class)
CELLS = [
    ("indrnn_relu", IndRNNCell, {}, bptt_cells.IndRNNKernel),
    ("indrnn_tanh", IndRNNCell, {"nonlinearity": "tanh", "recurrent_max": 0.6}, bptt_cells.IndRNNKernel),
    ("layernorm_lstm", LayerNormLSTMCell, {}, bptt_cells.LayerNormLSTMKernel),
    ("layernorm_gru", LayerNormGRUCell, {}, bptt_cells.LayerNormGRUKernel),
    ("orthogonal", OrthogonalCell, {}, bptt_cells.OrthogonalKernel),
]
BY_CELL = pytest.mark.parametrize(("cell", "options"), [c[1:3] for c in CELLS], ids=[c[0] for c in CELLS])


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    """Blocks of one to a few steps, so that each backward walks through several blocks even at T = 7."""
    monkeypatch.setattr(bptt, "CHUNK_ELEMENTS", 100)


def pair(cell, options, **kwargs):
    """The same layer on the kernel ("unrolled") and on the autograd reference, float64, parameters moved off
    their initial values (LN weights of 1, shifts of 0, IndRNN weights inside ±recurrent_max, modReLU's
    biases near 0: with ±0.5 some units fall in its dead zone)."""
    torch.manual_seed(0)
    fast = rnnlab.Recurrent(cell, 5, 6, execution="unrolled", dtype=torch.float64, **options, **kwargs)
    with torch.no_grad():
        for p in fast.parameters():
            p.add_(0.5 * torch.randn_like(p))
    reference = rnnlab.Recurrent(cell, 5, 6, execution="reference", dtype=torch.float64, **options, **kwargs)
    reference.load_state_dict(fast.state_dict())
    return fast, reference


def fields(state):
    return state if isinstance(state, tuple) else (state,)


def run(layer, x, h0, lengths):
    """Outputs, final states and every gradient of a loss that reaches outputs and final states."""
    x = x.clone().requires_grad_()
    h0 = tuple(h.clone().requires_grad_() for h in h0)
    out, final = layer(x, h0 if len(h0) > 1 else h0[0], lengths=lengths)
    final = fields(final)
    (out.sin().sum() + sum((f * f).sum() for f in final)).backward()
    grads = [x.grad, *(h.grad for h in h0)] + [p.grad for p in layer.parameters()]
    return [out, *final], grads


@BY_CELL
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("lengths", [None, [7, 3, 0, 5]], ids=["dense", "lengths"])
def test_kernel_equals_the_autograd_reference(cell, options, layers, bidirectional, lengths):
    fast, reference = pair(cell, options, num_layers=layers, bidirectional=bidirectional)
    assert isinstance(fast.paths[0].kernel, bptt.Kernel) and not fast.uses_fused()
    x = torch.randn(7, 4, 5, dtype=torch.float64)
    h0 = tuple(torch.randn_like(s) for s in fields(fast.init_state(4)))
    lengths = None if lengths is None else torch.tensor(lengths)
    (values, grads), (ref_values, ref_grads) = (run(m, x, h0, lengths) for m in (fast, reference))
    for a, b in zip(values + grads, ref_values + ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=TOL)
    names = [n for n, _ in fast.named_parameters()]
    assert all(g is not None for g in grads), names  # every parameter got a gradient
    if lengths is not None:  # a length-0 sequence outputs zeros and keeps its initial state
        assert torch.equal(values[0][:, 2], torch.zeros_like(values[0][:, 2]))
        for final, start in zip(values[1:], h0, strict=True):
            assert torch.equal(final[:, 2], start[:, 2])


@pytest.mark.parametrize(("cell", "options"), [c[1:3] for c in CELLS[::2]], ids=[c[0] for c in CELLS[::2]])
def test_kernel_equals_the_autograd_reference_without_bias(cell, options):
    fast, reference = pair(cell, options, bias=False, num_layers=2)
    kept = ("bias_mod",)  # modReLU's bias is part of the nonlinearity: bias=False keeps it
    assert not any("bias" in n and not n.startswith(kept) for n, _ in fast.named_parameters())
    x = torch.randn(6, 3, 5, dtype=torch.float64)
    h0 = tuple(torch.randn_like(s) for s in fields(fast.init_state(3)))
    lengths = torch.tensor([6, 2, 4])
    (values, grads), (ref_values, ref_grads) = (run(m, x, h0, lengths) for m in (fast, reference))
    for a, b in zip(values + grads, ref_values + ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=TOL)


def test_indrnn_clamp_passes_no_gradient_outside_recurrent_max():
    """u = clamp(weight_hh, ±recurrent_max): units whose weight lies outside get ∂weight_hh = 0."""
    fast, reference = pair(IndRNNCell, {"recurrent_max": 0.5, "nonlinearity": "tanh"})  # no dead units
    with torch.no_grad():
        for layer in (fast, reference):
            layer.weight_hh_l0.copy_(torch.tensor([0.9, -0.7, 0.2, -0.3, 0.45, 2.0], dtype=torch.float64))
    x = torch.randn(5, 3, 5, dtype=torch.float64)
    for layer in (fast, reference):
        out, _ = layer(x)
        out.pow(2).sum().backward()
    grad = fast.weight_hh_l0.grad
    assert torch.equal(grad[[0, 1, 5]], torch.zeros(3, dtype=torch.float64))
    assert (grad[[2, 3, 4]] != 0).all()
    torch.testing.assert_close(grad, reference.weight_hh_l0.grad, rtol=0, atol=TOL)


def kernel_inputs(cell, options):
    """A kernel, its parameters (requiring grad, float64) and an initial state, for gradcheck."""
    torch.manual_seed(0)
    c = cell(3, 2, dtype=torch.float64, **options)
    params = {
        n: (p.detach() + 0.3 * torch.randn_like(p)).requires_grad_() for n, p in c.own_parameters().items()
    }
    if cell is IndRNNCell:  # away from the clamp's kinks at ±recurrent_max
        params["weight_hh"] = torch.tensor([0.3, -0.4], dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(2, 2, dtype=torch.float64, requires_grad=True) for _ in c.state_type._fields)
    kernel = fused.fast_paths(c).kernel
    assert kernel is not None
    return kernel, params, state


@BY_CELL
def test_kernel_gradcheck(cell, options):
    kernel, params, state = kernel_inputs(cell, options)
    names = list(params)
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1], [1, 0], [1, 0], [0, 0]], dtype=torch.bool)[..., None]
    for m in (None, mask):

        def scan(x, *flat, m=m):
            given = dict(zip(names, flat[: len(names)], strict=True))
            out, final = bptt.scan(kernel, x, given, flat[len(names) :], m)
            return (out, *final)

        assert torch.autograd.gradcheck(scan, (x, *params.values(), *state))


class Recorder:
    def __init__(self):
        self.states = self.gates = self.grads = None

    def forward(self, states, gates, mask):
        self.states, self.gates = states, gates

    def backward(self, grads):
        self.grads = grads


@BY_CELL
def test_observer_sees_the_same_on_both_paths(cell, options):
    """Kernel and reference hand the observer equal states, gates (named as the cell's step names them) and
    total gradients ∂L/∂state_t."""
    fast, reference = pair(cell, options, num_layers=2, bidirectional=True)
    x = torch.randn(7, 3, 5, dtype=torch.float64)
    lengths = torch.tensor([7, 2, 5])
    seen = []
    for layer in (fast, reference):
        recorders: dict[str, Recorder] = {}
        layer.observer_factory = lambda unit, r=recorders: r.setdefault(unit.suffix, Recorder())
        out, _ = layer(x, lengths=lengths)
        out[-2:].pow(2).sum().backward()
        seen.append(recorders)
    probe_cell = cell(5, 6, device="meta", **options)
    for key, a in seen[0].items():
        b = seen[1][key]
        assert a.grads is not None and len(a.grads) == len(a.states) == len(probe_cell.state_type._fields)
        for u, v in zip((*a.states, *a.grads), (*b.states, *b.grads), strict=True):
            torch.testing.assert_close(u, v, rtol=0, atol=TOL)
        assert a.gates.keys() == b.gates.keys()
        assert set(probe_cell.sigmoid_gates) | set(probe_cell.tanh_units) <= a.gates.keys()
        valid = torch.arange(7)[:, None] < lengths  # in processing order the valid steps come first
        for name in a.gates:  # gates at padded steps are unspecified
            torch.testing.assert_close(a.gates[name][valid], b.gates[name][valid], rtol=0, atol=TOL)


@BY_CELL
def test_nan_in_the_padding_never_reaches_outputs_or_gradients(cell, options):
    torch.manual_seed(0)
    layer = rnnlab.Recurrent(cell, 3, 4, num_layers=2, bidirectional=True, execution="unrolled", **options)
    lengths = torch.tensor([5, 2, 0])
    x = torch.randn(5, 3, 3)
    x[torch.arange(5)[:, None] >= lengths] = float("nan")
    x.requires_grad_()
    out, state = layer(x, lengths=lengths)
    (out.sum() + fields(state)[0].sum()).backward()
    assert torch.isfinite(out).all()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


class WiderIndRNN(IndRNNCell):
    """Only a docstring: the same maths as IndRNNCell."""


class OffsetIndRNN(IndRNNCell):
    """Maths of its own: h = f(pre + u ⊙ h) + 1."""

    def step(self, params, px, state):
        (h,), gates = super().step(params, px, state)
        return rnnlab.cells.HiddenState(h + 1), gates


class RMSNormLSTM(LayerNormLSTMCell):
    """A different norm through a helper, not through step/project: its maths differ."""

    def _norm(self, params, x, which):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * params[f"ln_{which}_weight"]


class LeakyOrthogonal(OrthogonalCell):
    """Maths of its own: h = modReLU(...) + 0.1 h_{t-1}."""

    def step(self, params, px, state):
        (h,), gates = super().step(params, px, state)
        return rnnlab.cells.HiddenState(h + 0.1 * state[0]), gates


class LooseLayerNormGRU(LayerNormGRUCell):
    eps = 1e-2


def test_fast_paths_are_the_kernels_of_exactly_these_cells():
    for _, cls, options, kernel_cls in CELLS:
        paths = fused.fast_paths(cls(2, 3, device="meta", **options))
        assert paths.fused_op is None and type(paths.kernel) is kernel_cls
    indrnn = fused.fast_paths(IndRNNCell(2, 3, nonlinearity="tanh", recurrent_max=0.25, device="meta")).kernel
    assert isinstance(indrnn, bptt_cells.IndRNNKernel) and indrnn.tanh and indrnn.recurrent_max == 0.25
    assert isinstance(fused.fast_paths(WiderIndRNN(2, 3, device="meta")).kernel, bptt_cells.IndRNNKernel)
    for cls in (OffsetIndRNN, RMSNormLSTM, LeakyOrthogonal):  # maths of their own: the generic path
        assert fused.fast_paths(cls(2, 3, device="meta")) == fused.FastPaths()


@pytest.mark.parametrize("cls", [RMSNormLSTM, LooseLayerNormGRU])
def test_a_subclass_runs_its_own_maths(cls):
    """A subclass overriding a norm helper, or changing eps, gets what its own step computes."""
    torch.manual_seed(0)
    layer = rnnlab.Recurrent(cls, 3, 4, dtype=torch.float64)
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    auto, _ = layer(x)
    layer.execution = "reference"
    reference, _ = layer(x)
    torch.testing.assert_close(auto, reference, rtol=0, atol=TOL)


@pytest.mark.parametrize("orthogonal_map", ["matrix_exp", "cayley"])
def test_orthogonal_kernel_carries_the_gradient_on_to_the_skew_parameter(orthogonal_map):
    """The kernel gets W_hh as the layer's parametrization computes it and returns ∂W_hh; autograd carries
    that on to the tensor trained behind it, `parametrizations.weight_hh_l{k}.original`."""
    fast, reference = pair(OrthogonalCell, {"orthogonal_map": orthogonal_map}, num_layers=2)
    x = torch.randn(7, 4, 5, dtype=torch.float64)
    for layer in (fast, reference):
        out, h_n = layer(x)
        (out.sin().sum() + h_n.pow(2).sum()).backward()
    for k in range(2):
        skew = fast.parametrizations[f"weight_hh_l{k}"].original.grad
        assert skew.abs().max() > 1.0
        want = reference.parametrizations[f"weight_hh_l{k}"].original.grad
        torch.testing.assert_close(skew, want, rtol=0, atol=TOL)


def test_orthogonal_kernel_takes_the_cells_derivative_at_zero():
    """Where z_t = W_ih x_t + W_hh h_{t-1} (+ b_ih) is exactly 0, modReLU gives 0 whatever b is (torch.sign(0)
    = 0), and autograd through the cell's step gives 0 for both derivatives: so does the kernel. Sequence 0
    starts at h_0 = 0 with two zero inputs, so z = 0 there for two steps, with b = 0.3 > 0."""
    fast, reference = pair(OrthogonalCell, {}, bias=False)
    with torch.no_grad():
        for layer in (fast, reference):
            layer.bias_mod_l0.fill_(0.3)
    x = torch.randn(5, 3, 5, dtype=torch.float64)
    x[:2, 0] = 0.0
    h0 = torch.randn(1, 3, 6, dtype=torch.float64)
    h0[:, 0] = 0.0
    (values, grads), (ref_values, ref_grads) = (run(m, x, (h0,), None) for m in (fast, reference))
    for a, b in zip(values + grads, ref_values + ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=TOL)
    out, dx = values[0], grads[0]
    assert torch.equal(out[:2, 0], torch.zeros(2, 6, dtype=torch.float64))
    assert torch.equal(dx[:2, 0], torch.zeros(2, 5, dtype=torch.float64))  # ∂h/∂z = 0 at z = 0
    assert (dx[2:, 0] != 0).any() and (out[2:, 0] != 0).any()
