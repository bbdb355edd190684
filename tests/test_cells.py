"""Cells: every registered cell is checked for shapes, torch's calling convention and its gradient; torch's
cell weights load unchanged; the cells a layer holds are descriptions that never hand out meta tensors."""

from __future__ import annotations

import pytest
import torch

import rnnlab
from rnnlab.cells import CELLS

REGISTERED = pytest.mark.parametrize("cell_cls", list(CELLS.values()), ids=list(CELLS))


@REGISTERED
def test_step_shapes_gates_and_state_type(cell_cls):
    cell = cell_cls(3, 5)
    state = cell.init_state(4)
    assert isinstance(state, cell.state_type) and state.h.shape == (4, 5)
    params = cell.own_parameters()
    new, gates = cell.step(params, cell.project(params, torch.randn(4, 3)), tuple(state))
    assert isinstance(new, cell.state_type)
    assert all(s.shape == (4, 5) for s in new)
    for name in (*cell.sigmoid_gates, *cell.tanh_units):
        assert gates[name].shape == (4, 5), name
    for name in cell.sigmoid_gates:
        assert 0 <= gates[name].min() and gates[name].max() <= 1
    if cell.keep_gate is not None:
        assert cell.keep_gate in cell.gate_names and cell.keep_gate in cell.sigmoid_gates


@REGISTERED
def test_called_as_torch_cells_are(cell_cls):
    """h alone (a Tensor) for cells whose state is h, (h, c) for LSTMs; a state as torch takes it back."""
    torch.manual_seed(0)
    cell = cell_cls(3, 5)
    x = torch.randn(4, 3)
    out = cell(x)
    if len(cell.state_type._fields) == 1:
        assert isinstance(out, torch.Tensor) and out.shape == (4, 5)
        again = cell(x, out)
        assert isinstance(again, torch.Tensor)
    else:
        h, c = out  # a tuple, as torch.nn.LSTMCell returns
        assert h.shape == c.shape == (4, 5)
        again = cell(x, (h, c))
        assert isinstance(again, tuple) and len(again) == 2
    unbatched = cell(x[0])  # (I,) in, (H,) out, as torch's cells do
    first = unbatched if isinstance(unbatched, torch.Tensor) else unbatched[0]
    batched = out if isinstance(out, torch.Tensor) else out[0]
    torch.testing.assert_close(first, batched[0])  # float32 matmuls round by batch size


@REGISTERED
def test_step_gradcheck(cell_cls):
    """The step's maths under autograd, float64 finite differences, for every registered cell."""
    torch.manual_seed(0)
    cell = cell_cls(3, 4).double()
    names = list(cell.own_parameters())
    x = torch.randn(2, 3, dtype=torch.float64)
    state = tuple(torch.randn(2, 4, dtype=torch.float64, requires_grad=True) for _ in cell.state_type._fields)
    # Random LN gains and a recurrent weight inside the clamp so every path carries gradient.
    params = {
        n: (p.detach() + 0.3 * torch.randn_like(p)).requires_grad_() for n, p in cell.own_parameters().items()
    }
    if cell_cls is rnnlab.IndRNNCell:
        params["weight_hh"] = (0.9 * torch.rand(4, dtype=torch.float64)).requires_grad_()
    if getattr(cell, "nonlinearity", "tanh") == "relu":
        x = x + 2.0  # keep ReLU units away from the kink at 0
    x = x.requires_grad_()

    def step(x, *flat):
        p = dict(zip(names, flat[: len(names)], strict=True))
        new, _ = cell.step(p, cell.project(p, x), flat[len(names) :])
        return tuple(new)

    assert torch.autograd.gradcheck(step, (x, *params.values(), *state))


@pytest.mark.parametrize(
    ("ours", "theirs", "options"),
    [
        (rnnlab.LSTMCell, torch.nn.LSTMCell, {}),
        (rnnlab.GRUCell, torch.nn.GRUCell, {}),
        (rnnlab.RNNCell, torch.nn.RNNCell, {}),
        (rnnlab.RNNCell, torch.nn.RNNCell, {"nonlinearity": "relu"}),
    ],
)
def test_cells_equal_torch_cells(ours, theirs, options):
    torch.manual_seed(0)
    reference = theirs(3, 5, **options).double()
    cell = ours(3, 5, **options).double()
    cell.load_state_dict(reference.state_dict())
    x = torch.randn(4, 3, dtype=torch.float64)
    h = torch.randn(4, 5, dtype=torch.float64)
    if ours is rnnlab.LSTMCell:
        c = torch.randn(4, 5, dtype=torch.float64)
        torch.testing.assert_close(tuple(cell(x, (h, c))), reference(x, (h, c)), rtol=0, atol=1e-12)
    else:
        torch.testing.assert_close(cell(x, h), reference(x, h), rtol=0, atol=1e-12)


def test_indrnn_clamps_the_recurrent_weight():
    cell = rnnlab.IndRNNCell(2, 3, recurrent_max=0.5, bias=False).double()
    with torch.no_grad():
        cell.weight_ih.zero_()
        cell.weight_hh.copy_(torch.tensor([3.0, -3.0, 0.25]))
    h = cell(torch.zeros(1, 2, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64))
    torch.testing.assert_close(h, torch.tensor([[0.5, 0.0, 0.25]], dtype=torch.float64))


@REGISTERED
def test_a_layers_cells_are_descriptions_on_the_layers_device_and_dtype(cell_cls):
    layer = rnnlab.Recurrent(cell_cls, 3, 4, num_layers=2, bidirectional=True)
    for cell in layer.cells:
        assert cell.is_description
        assert not any(t.is_meta for t in [*cell.parameters(), *cell.buffers()])
    state = layer.cell.init_state(2)
    assert all(s.dtype == torch.float32 and s.device.type == "cpu" and not s.is_meta for s in state)
    assert torch.equal(state.h, torch.zeros(2, 4))
    layer.double()
    assert all(s.dtype == torch.float64 for s in layer.cells[-1].init_state(2))
    h0 = layer.init_state(5)
    first = h0 if isinstance(h0, torch.Tensor) else h0[0]
    assert first.shape == (4, 5, 4) and first.dtype == torch.float64
    out, _ = layer(torch.randn(7, 5, 3, dtype=torch.float64), h0)  # the state forward takes
    assert out.shape == (7, 5, 8)
    with pytest.raises(RuntimeError, match="describes the cells of a layer"):
        layer.cell(torch.randn(2, 3, dtype=torch.float64))


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


def test_cell_rejects_wrong_input_and_state():
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, 3\) or \(3,\)"):
        rnnlab.LSTMCell(3, 4)(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"state must hold 2 tensor\(s\)"):
        rnnlab.LSTMCell(3, 4)(torch.randn(2, 3), (torch.zeros(2, 4),))
