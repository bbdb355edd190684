"""The layers equal torch.nn.RNN/LSTM/GRU in float64, on both execution paths, and scan cells faithfully."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnlab

TORCH = {
    "lstm": (rnnlab.LSTM, torch.nn.LSTM),
    "gru": (rnnlab.GRU, torch.nn.GRU),
    "rnn": (rnnlab.RNN, torch.nn.RNN),
}
TOL = 1e-10


def pair(kind, *, seed=0, **kwargs):
    """An rnnlab layer and a torch layer with the same weights, float64."""
    ours_cls, theirs_cls = TORCH[kind]
    torch.manual_seed(seed)
    theirs = theirs_cls(5, 6, **kwargs).double()
    ours = ours_cls(5, 6, **kwargs).double()
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def first(state):
    return state[0] if isinstance(state, tuple) else state


def assert_grads_equal(a: torch.nn.Module, b: torch.nn.Module) -> None:
    named_b = dict(b.named_parameters())
    for name, p in a.named_parameters():
        torch.testing.assert_close(p.grad, named_b[name].grad, rtol=0, atol=TOL, msg=name)


CASES = list(
    itertools.product(["lstm", "gru", "rnn"], [1, 2], [False, True], [False, True], ["fused", "unrolled"])
)


@pytest.mark.parametrize(("kind", "layers", "bidirectional", "batch_first", "execution"), CASES)
def test_equals_torch_dense(kind, layers, bidirectional, batch_first, execution):
    ours, theirs = pair(kind, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    ours.execution = execution
    T, B = 7, 3
    x = torch.randn((B, T, 5) if batch_first else (T, B, 5), dtype=torch.float64)
    hx_shape = (layers * (2 if bidirectional else 1), B, 6)
    hx = torch.randn(hx_shape, dtype=torch.float64)
    hx = (hx, torch.randn(hx_shape, dtype=torch.float64)) if kind == "lstm" else hx
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out1, s1 = ours(x1, hx)
    out2, s2 = theirs(x2, hx)
    torch.testing.assert_close(out1, out2, rtol=0, atol=TOL)
    for a, b in zip(s1 if kind == "lstm" else (s1,), s2 if kind == "lstm" else (s2,), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=TOL)
    weights = torch.randn_like(out1)
    ((out1 * weights).sum() + first(s1).pow(2).sum()).backward()
    ((out2 * weights).sum() + first(s2).pow(2).sum()).backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=0, atol=TOL)
    assert_grads_equal(ours, theirs)


@pytest.mark.parametrize(
    ("kind", "layers", "bidirectional", "execution"), [c[:3] + c[4:] for c in CASES[::2]]
)
@pytest.mark.parametrize("packed", [False, True])
def test_equals_torch_variable_lengths(kind, layers, bidirectional, execution, packed):
    ours, theirs = pair(kind, num_layers=layers, bidirectional=bidirectional)
    ours.execution = execution
    T, lengths = 9, torch.tensor([4, 9, 1, 6])
    x = torch.randn(T, 4, 5, dtype=torch.float64)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    packed_in = pack_padded_sequence(x2, lengths, enforce_sorted=False)
    out2_packed, s2 = theirs(packed_in)
    out2, _ = pad_packed_sequence(out2_packed, total_length=T)
    if packed:
        out1_packed, s1 = ours(pack_padded_sequence(x1, lengths, enforce_sorted=False))
        torch.testing.assert_close(out1_packed.data, out2_packed.data, rtol=0, atol=TOL)
        assert torch.equal(out1_packed.batch_sizes, out2_packed.batch_sizes)
        assert torch.equal(out1_packed.unsorted_indices, out2_packed.unsorted_indices)
        out1, _ = pad_packed_sequence(out1_packed, total_length=T)
    else:
        out1, s1 = ours(x1, lengths=lengths)
    torch.testing.assert_close(out1, out2, rtol=0, atol=TOL)
    past_end = torch.arange(T)[:, None] >= lengths
    assert out1[past_end].abs().max() == 0  # outputs past a sequence's length are zero
    torch.testing.assert_close(first(s1), first(s2), rtol=0, atol=TOL)
    (out1.pow(2).sum() + first(s1).sum()).backward()
    (out2.pow(2).sum() + first(s2).sum()).backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=0, atol=TOL)
    assert_grads_equal(ours, theirs)


def test_final_state_is_taken_at_each_sequences_own_last_step():
    layer = rnnlab.GRU(3, 4, execution="unrolled").double()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    out, h = layer(x, lengths=torch.tensor([6, 2]))
    short, h_short = layer(x[:2, 1:2])
    torch.testing.assert_close(h[:, 1:2], h_short)
    torch.testing.assert_close(out[:2, 1:2], short)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_state_dict_loads_both_ways(kind):
    ours_cls, theirs_cls = TORCH[kind]
    ours = ours_cls(4, 5, num_layers=2, bidirectional=True)
    theirs = theirs_cls(4, 5, num_layers=2, bidirectional=True)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    theirs.load_state_dict(ours.state_dict())
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_rnn_positional_nonlinearity_matches_torch():
    ours, theirs = rnnlab.RNN(3, 4, 1, "relu"), torch.nn.RNN(3, 4, 1, "relu")
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(ours(x)[0], theirs(x)[0])


@pytest.mark.parametrize("cell", list(rnnlab.cells.CELLS.values()), ids=list(rnnlab.cells.CELLS))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_layer_equals_hand_stepped_cell(cell, bidirectional):
    torch.manual_seed(1)
    layer = rnnlab.Recurrent(
        cell, 3, 4, num_layers=2, bidirectional=bidirectional, execution="unrolled"
    ).double()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    out, final = layer(x)
    final = final if isinstance(final, tuple) else (final,)
    D = 2 if bidirectional else 1
    layer_input = x
    for k in range(2):
        outputs = []
        for d in range(D):
            single = cell(layer_input.shape[-1], 4).double()
            single.load_state_dict(layer.cell_parameters(k, d))
            state = single.init_state(2)
            steps = range(6) if d == 0 else range(5, -1, -1)
            hs = {}
            for t in steps:
                new = single(layer_input[t], state)
                state = new if isinstance(new, tuple) else (new,)  # torch's cells: h, or (h, c)
                hs[t] = state[0]
            outputs.append(torch.stack([hs[t] for t in range(6)]))
            for field, value in zip(final, state, strict=True):
                torch.testing.assert_close(field[k * D + d], value, rtol=0, atol=TOL)
        layer_input = torch.cat(outputs, -1)
    torch.testing.assert_close(out, layer_input, rtol=0, atol=TOL)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_hand_written_backward_equals_per_step_autograd(kind):
    """The BPTT kernel and the autograd scan of the same cell agree, masked and in both directions."""
    ours, _ = pair(kind, num_layers=2, bidirectional=True)
    ours.execution = "unrolled"
    reference = rnnlab.Recurrent(ours.cell.__class__, 5, 6, num_layers=2, bidirectional=True).double()
    reference.load_state_dict(ours.state_dict())
    reference.execution = "reference"  # the per-step autograd scan
    x = torch.randn(8, 3, 5, dtype=torch.float64)
    lengths = torch.tensor([8, 3, 5])
    results = []
    for layer in (ours, reference):
        xi = x.clone().requires_grad_()
        out, state = layer(xi, lengths=lengths)
        (out.sin().sum() + first(state).sum()).backward()
        results.append((out, xi.grad, [p.grad for p in layer.parameters()]))
    (o1, g1, p1), (o2, g2, p2) = results
    torch.testing.assert_close(o1, o2, rtol=0, atol=TOL)
    torch.testing.assert_close(g1, g2, rtol=0, atol=TOL)
    for a, b in zip(p1, p2, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=TOL)


def test_bptt_kernel_gradcheck():
    from rnnlab import bptt

    names = ("weight_ih", "bias_ih", "weight_hh", "bias_hh")
    torch.manual_seed(0)
    for kernel, gates in ((bptt.LSTMKernel(), 4), (bptt.GRUKernel(), 3), (bptt.RNNKernel("tanh"), 1)):
        x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
        shapes = ((gates * 3, 3), (gates * 3,), (gates * 3, 3), (gates * 3,))
        params = [(0.5 * torch.randn(shape, dtype=torch.float64)).requires_grad_() for shape in shapes]
        n_state = 2 if gates == 4 else 1
        state = tuple(torch.randn(2, 3, dtype=torch.float64, requires_grad=True) for _ in range(n_state))
        mask = torch.tensor([[1, 1], [1, 0], [1, 0], [0, 0]], dtype=torch.bool)[..., None]
        for m in (None, mask):

            def run(x, *flat, m=m, kernel=kernel):
                out, final = bptt.scan(kernel, x, dict(zip(names, flat[:4], strict=True)), flat[4:], m)
                return (out, *final)

            assert torch.autograd.gradcheck(run, (x, *params, *state))


def test_unbatched_input_matches_torch():
    ours, theirs = pair("lstm", num_layers=2)
    x = torch.randn(5, 5, dtype=torch.float64)
    for execution in ("fused", "unrolled"):
        ours.execution = execution
        out, (h, c) = ours(x)
        out2, (h2, c2) = theirs(x)
        assert out.shape == (5, 6) and h.shape == (2, 6)
        torch.testing.assert_close(out, out2, rtol=0, atol=TOL)
        torch.testing.assert_close(c, c2, rtol=0, atol=TOL)


def test_dropout_between_layers_only_in_training():
    layer = rnnlab.LSTM(3, 8, num_layers=2, dropout=0.5, execution="unrolled")
    x = torch.randn(5, 2, 3)
    torch.manual_seed(0)
    a = layer(x)[0]
    torch.manual_seed(1)
    b = layer(x)[0]
    assert not torch.allclose(a, b)
    layer.eval()
    torch.testing.assert_close(layer(x)[0], layer(x)[0], rtol=0, atol=0)


def test_fused_request_fails_for_cells_torch_does_not_fuse():
    layer = rnnlab.LayerNormLSTM(3, 4, execution="fused")
    with pytest.raises(ValueError, match="execution='fused' needs a cell torch fuses"):
        layer(torch.randn(5, 2, 3))


BAD_INPUTS = [
    (lambda: torch.randn(5, 2, 3, 1), "must have 3 dimensions"),
    (lambda: torch.randn(5, 2, 4), "has 4 features, expected input_size=3"),
    (lambda: torch.ones(5, 2, 3, dtype=torch.long), "floating-point"),
    (lambda: torch.randn(0, 2, 3), "no time steps"),
]


@pytest.mark.parametrize(("make", "message"), BAD_INPUTS)
@pytest.mark.parametrize("execution", ["fused", "unrolled"])
def test_bad_input_names_the_problem(make, message, execution):
    layer = rnnlab.LSTM(3, 4, execution=execution)
    with pytest.raises(ValueError, match=message):
        layer(make())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lengths": torch.tensor([5, -1])}, r"lengths must lie in \[0, 5\]"),
        ({"lengths": torch.tensor([6, 2])}, r"lengths must lie in \[0, 5\]"),
        (
            {"lengths": torch.tensor([5, 2], device="meta")},
            "lengths is on meta; put it on the input's device",
        ),
        ({"lengths": torch.tensor([5, 2, 1])}, r"lengths must have shape \(2,\)"),
        ({"lengths": torch.tensor([5.0, 2.0])}, "integer tensor"),
        ({"hx": (torch.zeros(1, 2, 4),)}, r"must hold 2 tensor\(s\)"),
        (
            {"hx": (torch.zeros(1, 3, 4), torch.zeros(1, 2, 4))},
            r"initial state h must have shape \(1, 2, 4\)",
        ),
        (
            {"hx": (torch.zeros(1, 2, 4), torch.zeros(2, 2, 4))},
            r"initial state c must have shape \(1, 2, 4\)",
        ),
    ],
)
def test_bad_lengths_and_states_name_the_problem(kwargs, message):
    layer = rnnlab.LSTM(3, 4)
    x = torch.randn(5, 2, 3)
    with pytest.raises(ValueError, match=message):
        layer(x, kwargs.get("hx"), lengths=kwargs.get("lengths"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_layers": 0}, "num_layers must be at least 1"),
        ({"dropout": 1.5}, r"dropout must be in \[0, 1\)"),
        ({"execution": "fast"}, "execution must be"),
        ({"proj_size": 2}, "proj_size is not supported"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rnnlab.LSTM(3, 4, **kwargs)


class Recorder:
    def __init__(self):
        self.states = self.gates = self.grads = None

    def forward(self, states, gates, mask):
        self.states, self.gates = states, gates

    def backward(self, grads):
        self.grads = grads


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_observer_sees_the_same_on_both_unrolled_paths(kind):
    """Kernel and autograd scan hand the observer equal states, gates and total gradients ∂L/∂state_t."""
    ours, _ = pair(kind, num_layers=2, bidirectional=True)
    reference = rnnlab.Recurrent(ours.cell.__class__, 5, 6, num_layers=2, bidirectional=True).double()
    reference.load_state_dict(ours.state_dict())
    reference.execution = "reference"
    x = torch.randn(7, 3, 5, dtype=torch.float64)
    lengths = torch.tensor([7, 2, 5])
    seen = []
    for layer in (ours, reference):
        recorders = {}
        layer.observer_factory = lambda unit, recorders=recorders: recorders.setdefault(
            unit.suffix, Recorder()
        )
        out, _ = layer(x, lengths=lengths)  # the final state is unused: c_T gets no gradient
        out[-2:].pow(2).sum().backward()
        seen.append(recorders)
    for key, a in seen[0].items():
        b = seen[1][key]
        assert a.grads is not None and b.grads is not None, key
        assert len(a.grads) == (2 if kind == "lstm" else 1)
        for u, v in zip((*a.states, *a.grads), (*b.states, *b.grads), strict=True):
            torch.testing.assert_close(u, v, rtol=0, atol=TOL)
        assert a.gates.keys() == b.gates.keys()
        valid = torch.arange(7)[:, None] < lengths  # in processing order the valid steps come first
        for name in a.gates:  # gates at padded steps are unspecified
            torch.testing.assert_close(a.gates[name][valid], b.gates[name][valid], rtol=0, atol=TOL)


def test_observed_gradient_is_autograds_total_gradient():
    """For a one-layer RNN, the observed ∂L/∂h_t equals autograd's gradient w.r.t. each step's state."""
    torch.manual_seed(0)
    layer = rnnlab.RNN(3, 4, dtype=torch.float64)
    rec = Recorder()
    layer.observer_factory = lambda unit: rec
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    out, _ = layer(x)
    loss = out[-1].sum() + out[2].pow(2).sum()
    loss.backward()
    # autograd reference by hand-stepping the same cell, keeping every state
    cell = rnnlab.RNNCell(3, 4).double()
    cell.load_state_dict(layer.cell_parameters(0))
    h, hs = cell.init_state(2).h, []
    for t in range(6):
        h = cell(x[t], h)
        h.retain_grad()
        hs.append(h)
    (hs[-1].sum() + hs[2].pow(2).sum()).backward()
    torch.testing.assert_close(rec.grads[0], torch.stack([h.grad for h in hs]), rtol=0, atol=TOL)
    assert layer.uses_fused() is False  # an observer forces the unrolled path


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("execution", ["fused", "unrolled"])
def test_equals_torch_without_bias(kind, execution):
    ours, theirs = pair(kind, bias=False, num_layers=2)
    ours.execution = execution
    assert not any("bias" in name for name, _ in ours.named_parameters())
    x = torch.randn(6, 3, 5, dtype=torch.float64)
    out1, out2 = ours(x)[0], theirs(x)[0]
    torch.testing.assert_close(out1, out2, rtol=0, atol=TOL)
    out1.pow(2).sum().backward()
    out2.pow(2).sum().backward()
    assert_grads_equal(ours, theirs)
