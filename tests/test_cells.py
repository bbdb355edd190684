"""Cells: shapes, torch's cell weights load unchanged, and gradcheck for the cells torch does not have."""

from __future__ import annotations

import pytest
import torch

import rnnlab

ALL_CELLS = [
    rnnlab.RNNCell,
    rnnlab.LSTMCell,
    rnnlab.GRUCell,
    rnnlab.LayerNormLSTMCell,
    rnnlab.LayerNormGRUCell,
    rnnlab.IndRNNCell,
]


@pytest.mark.parametrize("cell_cls", ALL_CELLS)
def test_step_shapes_and_state_type(cell_cls):
    cell = cell_cls(3, 5)
    state = cell.init_state(4)
    assert isinstance(state, cell.state_type)
    new = cell(torch.randn(4, 3), state)
    assert isinstance(new, cell.state_type)
    assert all(s.shape == (4, 5) for s in new)
    params = cell.own_parameters()
    _, gates = cell.step(params, cell.project(params, torch.randn(4, 3)), tuple(state))
    for name in (*cell.sigmoid_gates, *cell.tanh_units):
        assert gates[name].shape == (4, 5), name
    for name in cell.sigmoid_gates:
        assert 0 <= gates[name].min() and gates[name].max() <= 1


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (rnnlab.LSTMCell, torch.nn.LSTMCell),
        (rnnlab.GRUCell, torch.nn.GRUCell),
        (rnnlab.RNNCell, torch.nn.RNNCell),
    ],
)
def test_cells_equal_torch_cells(ours, theirs):
    torch.manual_seed(0)
    reference = theirs(3, 5).double()
    cell = ours(3, 5).double()
    cell.load_state_dict(reference.state_dict())
    x = torch.randn(4, 3, dtype=torch.float64)
    h = torch.randn(4, 5, dtype=torch.float64)
    if ours is rnnlab.LSTMCell:
        c = torch.randn(4, 5, dtype=torch.float64)
        got, want = cell(x, (h, c)), reference(x, (h, c))
        torch.testing.assert_close(tuple(got), want, rtol=0, atol=1e-12)
    else:
        torch.testing.assert_close(cell(x, h).h, reference(x, h), rtol=0, atol=1e-12)


def test_relu_rnn_cell_equals_torch():
    reference = torch.nn.RNNCell(3, 5, nonlinearity="relu")
    cell = rnnlab.RNNCell(3, 5, nonlinearity="relu")
    cell.load_state_dict(reference.state_dict())
    x, h = torch.randn(4, 3), torch.randn(4, 5)
    torch.testing.assert_close(cell(x, h).h, reference(x, h))


@pytest.mark.parametrize("cell_cls", [rnnlab.LayerNormLSTMCell, rnnlab.LayerNormGRUCell, rnnlab.IndRNNCell])
def test_gradcheck_custom_cells(cell_cls):
    torch.manual_seed(0)
    cell = cell_cls(3, 4).double()
    names = list(cell.own_parameters())
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(2, 4, dtype=torch.float64, requires_grad=True) for _ in cell.state_type._fields)
    # Random LN gains and a recurrent weight inside the clamp so every path carries gradient.
    params = {
        n: (p.detach() + 0.3 * torch.randn_like(p)).requires_grad_() for n, p in cell.own_parameters().items()
    }
    if cell_cls is rnnlab.IndRNNCell:
        params["weight_hh"] = (0.9 * torch.rand(4, dtype=torch.float64)).requires_grad_()
        x = x + 2.0  # keep ReLU units away from the kink at 0
        x = x.detach().requires_grad_()

    def step(x, *flat):
        p = dict(zip(names, flat[: len(names)], strict=True))
        new, _ = cell.step(p, cell.project(p, x), flat[len(names) :])
        return tuple(new)

    assert torch.autograd.gradcheck(step, (x, *params.values(), *state))


def test_indrnn_clamps_the_recurrent_weight():
    cell = rnnlab.IndRNNCell(2, 3, recurrent_max=0.5, bias=False).double()
    with torch.no_grad():
        cell.weight_ih.zero_()
        cell.weight_hh.copy_(torch.tensor([3.0, -3.0, 0.25]))
    h = cell(torch.zeros(1, 2, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64)).h
    torch.testing.assert_close(h, torch.tensor([[0.5, 0.0, 0.25]], dtype=torch.float64))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: rnnlab.RNNCell(3, 4, nonlinearity="sigmoid"), "nonlinearity must be 'tanh' or 'relu'"),
        (lambda: rnnlab.LSTMCell(0, 4), "must be positive"),
        (lambda: rnnlab.IndRNNCell(3, 4, recurrent_max=0.0), "recurrent_max must be positive"),
    ],
)
def test_bad_cell_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_cell_rejects_wrong_input_shape():
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, 3\)"):
        rnnlab.LSTMCell(3, 4)(torch.randn(2, 5))
