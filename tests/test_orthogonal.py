"""The orthogonal cell: W_hh stays exactly orthogonal under training, the layer computes the cell's formula,
initialisers write through the constraint, and the layer's machinery (lengths, directions, stacking, state
dicts, copies, observers) works on a parametrized weight as on any other."""

from __future__ import annotations

import copy

import pytest
import torch

import rnnlab
from rnnlab.cells import CELLS, OrthogonalCell, modrelu
from rnnlab.fused import fast_paths

MAPS = pytest.mark.parametrize("orthogonal_map", ["matrix_exp", "cayley"])


def recurrent_weights(layer):
    return [unit.params["weight_hh"] for unit in layer.units()]


def orthogonality_error(w):
    """‖WᵀW − I‖ (Frobenius)."""
    w = w.detach()
    return float(torch.linalg.matrix_norm(w.T @ w - torch.eye(w.shape[0], dtype=w.dtype)))


def polar_factor(m):
    """U Vᵀ of the SVD U S Vᵀ of m: the orthogonal matrix nearest to m."""
    u, _, vh = torch.linalg.svd(m)
    return u @ vh


def layer(**options):
    """A float64 layer, built so: W_hh orthogonal to float64's rounding (one built in float32 and moved
    is orthogonal to float32's)."""
    torch.manual_seed(0)
    return rnnlab.Recurrent(OrthogonalCell, 3, 5, dtype=torch.float64, **options)


def test_registered_with_a_kernel_and_no_fused_op():
    assert CELLS["orthogonal"] is OrthogonalCell and rnnlab.cells.cell_type("orthogonal") is OrthogonalCell
    ours = layer()
    paths = fast_paths(ours.cell)
    assert paths.fused_op is None and isinstance(paths.kernel, rnnlab.bptt_cells.OrthogonalKernel)
    assert not ours.uses_fused()
    ours.flatten_parameters()  # nothing to flatten: a no-op
    with pytest.raises(ValueError, match="needs a cell torch fuses"):
        rnnlab.Recurrent(OrthogonalCell, 3, 5, execution="fused")(torch.randn(4, 2, 3))


def test_modrelu_on_known_values():
    z = torch.tensor([-2.0, -0.5, 0.5, 2.0])
    assert torch.equal(modrelu(z, torch.full((4,), -1.0)), torch.tensor([-1.0, 0.0, 0.0, 1.0]))
    assert torch.equal(modrelu(z, torch.full((4,), 0.5)), torch.tensor([-2.5, -1.0, 1.0, 2.5]))
    assert torch.equal(modrelu(z, torch.zeros(4)), z)  # b = 0: the identity


@MAPS
def test_stays_orthogonal_under_adam(orthogonal_map):
    torch.manual_seed(0)
    ours = rnnlab.Recurrent(OrthogonalCell, 3, 16, num_layers=2, orthogonal_map=orthogonal_map)
    before = [w.detach().clone() for w in recurrent_weights(ours)]
    optimizer = torch.optim.Adam(ours.parameters(), lr=0.05)
    x, target = torch.randn(10, 4, 3), torch.randn(10, 4, 16)
    for _ in range(20):
        optimizer.zero_grad()
        loss = (ours(x)[0] - target).pow(2).mean()
        loss.backward()
        optimizer.step()
    for w, w0 in zip(recurrent_weights(ours), before, strict=True):
        assert (w - w0).abs().max() > 0.05  # trained, far from where it began
        assert orthogonality_error(w) < 1e-5


@pytest.mark.parametrize("bias", [True, False])
def test_layer_equals_the_formula_stepped_by_hand(bias):
    ours = layer(bias=bias)
    with torch.no_grad():
        ours.bias_mod_l0.uniform_(-0.5, 0.5)  # a real dead zone and real shrinkage
    x, h0 = torch.randn(7, 2, 3, dtype=torch.float64), torch.randn(1, 2, 5, dtype=torch.float64)
    out, h_n = ours(x, h0)
    w_ih, w_hh, b = ours.weight_ih_l0, ours.weight_hh_l0, ours.bias_mod_l0
    b_ih = ours.bias_ih_l0 if bias else torch.zeros(5, dtype=torch.float64)
    assert orthogonality_error(w_hh) < 1e-12
    h, steps = h0[0], []
    for t in range(7):
        z = x[t] @ w_ih.T + b_ih + h @ w_hh.T
        h = torch.sign(z) * torch.clamp(z.abs() + b, min=0.0)
        steps.append(h)
    torch.testing.assert_close(out, torch.stack(steps), rtol=0, atol=1e-12)
    torch.testing.assert_close(h_n[0], h, rtol=0, atol=1e-12)


@MAPS
def test_gradcheck_through_the_layer(orthogonal_map):
    """Every trained tensor (the skew parameter behind W_hh too), the input and the initial state."""
    ours = rnnlab.Recurrent(OrthogonalCell, 2, 3, orthogonal_map=orthogonal_map).double()
    names = [name for name, _ in ours.named_parameters()]
    assert "parametrizations.weight_hh_l0.original" in names
    params = [(p.detach() + 0.1 * torch.randn_like(p)).requires_grad_() for p in ours.parameters()]
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, 2, 3, dtype=torch.float64, requires_grad=True)

    def run(x, h0, *flat):
        out, h_n = torch.func.functional_call(ours, dict(zip(names, flat, strict=True)), (x, h0))
        return out, h_n

    assert torch.autograd.gradcheck(run, (x, h0, *params))


def test_lengths_directions_and_layers_equal_each_sequence_alone():
    ours = layer(num_layers=2, bidirectional=True)
    x, lengths = torch.randn(6, 3, 3, dtype=torch.float64), torch.tensor([6, 3, 1])
    out, h_n = ours(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        alone, alone_h = ours(x[:n, b : b + 1])
        torch.testing.assert_close(out[:n, b], alone[:, 0], rtol=0, atol=1e-12)
        assert torch.equal(out[n:, b], torch.zeros_like(out[n:, b]))
        torch.testing.assert_close(h_n[:, b], alone_h[:, 0], rtol=0, atol=1e-12)


def trained(ours, steps=3):
    """`ours` after a few optimiser steps, so that the skew parameter behind W_hh is no longer zero."""
    optimizer = torch.optim.Adam(ours.parameters(), lr=0.05)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    for _ in range(steps):
        optimizer.zero_grad()
        (ours(x)[0] - 0.5).pow(2).mean().backward()
        optimizer.step()
    assert ours.parametrizations.weight_hh_l0.original.abs().max() > 0
    return ours


def test_state_dict_round_trip_deepcopy_and_dtype_moves_keep_the_outputs():
    ours = trained(layer(num_layers=2, bidirectional=True))
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    want = ours(x)[0]
    fresh = rnnlab.Recurrent(OrthogonalCell, 3, 5, num_layers=2, bidirectional=True).double()
    assert not torch.equal(fresh(x)[0], want)
    fresh.load_state_dict(ours.state_dict())
    assert torch.equal(fresh(x)[0], want)
    assert torch.equal(copy.deepcopy(ours)(x)[0], want)
    single = copy.deepcopy(ours).float()  # the parametrization's tensors move with the layer
    assert {t.dtype for t in [*single.parameters(), *single.buffers()]} == {torch.float32}
    for w, w64 in zip(recurrent_weights(single), recurrent_weights(ours), strict=True):
        assert w.dtype == torch.float32 and orthogonality_error(w) < 1e-5
        torch.testing.assert_close(w.double(), w64, rtol=0, atol=1e-5)
    assert single(x.float())[0].dtype == torch.float32


def test_a_plain_weight_loads_onto_the_constraint():
    """A state dict holding `weight_hh_l0` itself (torch's name): an orthogonal matrix is kept bit for bit,
    any other becomes its polar factor, the orthogonal matrix nearest to it."""
    ours = layer()
    plain = {name: p.detach().clone() for name, p in ours.cell_parameters(0).items()}
    plain = {f"{name}_l0": p for name, p in plain.items()}
    q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))
    ours.load_state_dict(plain | {"weight_hh_l0": q})
    assert torch.equal(ours.weight_hh_l0, q)
    m = torch.randn(5, 5, dtype=torch.float64)
    ours.load_state_dict(plain | {"weight_hh_l0": m})
    torch.testing.assert_close(ours.weight_hh_l0, polar_factor(m), rtol=0, atol=1e-12)
    with pytest.raises(RuntimeError, match="size mismatch for weight_hh_l0"):
        ours.load_state_dict(plain | {"weight_hh_l0": torch.eye(4, dtype=torch.float64)})


def test_default_initialisation():
    torch.manual_seed(0)
    ours = rnnlab.Recurrent(OrthogonalCell, 64, 7).requires_grad_(False)
    w = ours.weight_hh_l0
    rotations = torch.block_diag(*(w[i : i + 2, i : i + 2] for i in range(0, 6, 2)), w[6:, 6:])
    assert torch.equal(w, rotations) and w[6, 6] == 1.0  # 2×2 blocks, and 1 for the odd unit out
    for i in range(0, 6, 2):
        (c, s), (minus_s, c2) = w[i : i + 2, i : i + 2].tolist()
        assert c == c2 and s == -minus_s
        assert abs(c * c + s * s - 1.0) < 1e-6
    assert orthogonality_error(w) < 1e-6
    assert torch.equal(ours.bias_ih_l0, torch.zeros(7))
    assert ours.bias_mod_l0.abs().max() <= 0.01
    assert abs(float(ours.weight_ih_l0.std()) / (2.0 / 64) ** 0.5 - 1.0) < 0.15  # Kaiming: std √(2/I)


def test_reset_parameters_writes_through_the_parametrization():
    ours = trained(layer())
    original = ours.parametrizations.weight_hh_l0.original
    ours.reset_parameters()
    assert ours.parametrizations.weight_hh_l0.original is original  # an optimiser's tensor stays valid
    assert torch.equal(original, -torch.eye(5, dtype=torch.float64))  # torch's: base = W, A = 0
    w = ours.weight_hh_l0
    assert orthogonality_error(w) < 1e-12 and w[0, 2:].abs().max() == 0  # rotation blocks again


def test_an_initialiser_that_is_not_orthogonal_is_projected():
    m = torch.randn(5, 5, dtype=torch.float64)

    def known(block):
        block.copy_(m)

    ours = rnnlab.Recurrent(OrthogonalCell, 3, 5, init={"recurrent": known}, dtype=torch.float64)
    torch.testing.assert_close(ours.weight_hh_l0, polar_factor(m), rtol=0, atol=1e-12)
    rnnlab.init.initialize(ours, init={"recurrent": "identity"})  # once parametrized, through it
    assert torch.equal(ours.weight_hh_l0, torch.eye(5, dtype=torch.float64))
    cell = OrthogonalCell(3, 5, dtype=torch.float64)
    rnnlab.init.initialize(cell, init={"recurrent": known})  # a cell of its own alike
    torch.testing.assert_close(cell.weight_hh, polar_factor(m), rtol=0, atol=1e-12)


def test_spectral_radius_is_refused():
    with pytest.raises(ValueError, match="spectral_radius cannot be set for OrthogonalCell"):
        rnnlab.Recurrent(OrthogonalCell, 3, 5, spectral_radius=0.9)
    ours = layer()
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    with pytest.raises(ValueError, match="its spectral radius is always 1"):
        rnnlab.init.initialize(ours, init="xavier_uniform", spectral_radius=0.9)
    assert all(torch.equal(v, before[k]) for k, v in ours.state_dict().items())  # nothing written


def test_bad_orthogonal_map():
    with pytest.raises(ValueError, match="orthogonal_map must be one of 'matrix_exp', 'cayley'"):
        OrthogonalCell(3, 5, orthogonal_map="householder")


def test_a_cell_of_its_own_is_constrained_too():
    torch.manual_seed(0)
    cell = OrthogonalCell(3, 4, orthogonal_map="cayley", dtype=torch.float64)
    assert "parametrizations.weight_hh.original" in cell.state_dict()
    assert orthogonality_error(cell.weight_hh) < 1e-12
    x, h = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    want = modrelu(x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T, cell.bias_mod)
    torch.testing.assert_close(cell(x, h), want, rtol=0, atol=1e-12)
    cell.reset_parameters()
    assert orthogonality_error(cell.weight_hh) < 1e-12 and cell.weight_hh[0, 2:].abs().max() == 0


def test_observers_see_every_step():
    states, grads = {}, {}

    class Recorder:
        def __init__(self, suffix):
            self.suffix = suffix

        def forward(self, s, gates, mask):
            states[self.suffix] = (s[0], gates)

        def backward(self, g):
            grads[self.suffix] = g[0]

    ours = layer(bidirectional=True)
    ours.observer_factory = lambda unit: Recorder(unit.suffix)
    out, _ = ours(torch.randn(4, 2, 3, dtype=torch.float64))
    out.sum().backward()
    h, gates = states["l0"]
    torch.testing.assert_close(h, out[..., :5], rtol=0, atol=0)
    assert set(gates) == {"h"} and not ours.cell.tanh_units and not ours.cell.sigmoid_gates
    assert grads["l0"].shape == grads["l0_reverse"].shape == (4, 2, 5)


def test_sequence_model_builds_and_runs():
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(3, 8, 2, cell="orthogonal", num_layers=2)
    y = model(torch.randn(4, 9, 3))
    assert y.shape == (4, 2) and model.settings()["cell"] == "orthogonal"
    y.sum().backward()
    assert model.encoder.parametrizations.weight_hh_l1.original.grad.abs().max() > 0
