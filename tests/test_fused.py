"""Which path a layer runs: fast paths decided by a cell's maths, not its ancestry; `auto` as measured;
zero-length sequences and empty batches on every path; flatten_parameters."""

from __future__ import annotations

import pytest
import torch

import rnnlab
from rnnlab import fused
from rnnlab.cells import LSTMCell


class LinearOutputLSTM(LSTMCell):
    """An LSTM with maths of its own: h = o * c instead of o * tanh(c)."""

    def step(self, params, px, state):
        (h, c), gates = super().step(params, px, state)
        return rnnlab.LSTMState(gates["o"] * c, c), gates


class DocumentedLSTM(LSTMCell):
    """Only a docstring and a helper: the same maths as LSTMCell."""

    def describe(self) -> str:
        return "an LSTM"


def test_a_subclass_with_its_own_step_leaves_the_fast_paths():
    assert fused.fast_paths(LinearOutputLSTM(2, 3, device="meta")) == fused.FastPaths()
    torch.manual_seed(0)
    layer = rnnlab.Recurrent(LinearOutputLSTM, 2, 3, dtype=torch.float64)
    x = torch.randn(6, 4, 2, dtype=torch.float64)
    assert not layer.uses_fused()
    auto, _ = layer(x)
    layer.execution = "unrolled"
    unrolled, _ = layer(x)
    torch.testing.assert_close(auto, unrolled, rtol=0, atol=0)  # auto runs the subclass's own maths
    with pytest.raises(ValueError, match="execution='fused' needs a cell torch fuses"):
        layer.execution = "fused"
        layer(x)
    plain = rnnlab.LSTM(2, 3, dtype=torch.float64)
    plain.load_state_dict(layer.state_dict())
    assert (plain(x)[0] - auto).abs().max() > 1e-3  # and that maths differs from torch's LSTM


def test_a_subclass_with_the_same_maths_keeps_them():
    paths = fused.fast_paths(DocumentedLSTM(2, 3, device="meta"))
    assert paths.fused_op == "lstm" and isinstance(paths.kernel, rnnlab.bptt.LSTMKernel)
    assert fused.fast_paths(rnnlab.RNNCell(2, 3, nonlinearity="relu", device="meta")).fused_op == "rnn_relu"
    for cls in (rnnlab.LayerNormLSTMCell, rnnlab.LayerNormGRUCell, rnnlab.IndRNNCell):  # hand-written only
        paths = fused.fast_paths(cls(2, 3, device="meta"))
        assert paths.fused_op is None and paths.kernel is not None


def test_auto_takes_the_path_measured_fastest_on_the_cpu():
    cpu = torch.device("cpu")
    assert rnnlab.LSTM(2, 3).uses_fused()  # torch's fused LSTM beats the hand-written kernel on CPU
    assert not rnnlab.GRU(2, 3).uses_fused()  # the hand-written GRU and RNN kernels beat torch's
    assert not rnnlab.RNN(2, 3).uses_fused()
    assert fused.auto_uses_fused(fused.fast_paths(rnnlab.GRUCell(2, 3, device="meta")), torch.device("cuda"))
    assert not fused.auto_uses_fused(fused.FastPaths(), cpu)
    assert rnnlab.GRU(2, 3, execution="fused").uses_fused()
    gru = rnnlab.GRU(2, 3)
    assert gru.uses_fused(grad=False)  # without a backward torch's kernels are the faster for all three
    with torch.no_grad():
        assert gru.uses_fused()
    gru.requires_grad_(False)
    assert gru.uses_fused()


@pytest.mark.parametrize("execution", ["fused", "unrolled", "reference"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_zero_lengths_keep_the_initial_state(kind, execution):
    torch.manual_seed(0)
    layer = getattr(rnnlab, kind.upper())(2, 3, num_layers=2, bidirectional=True, dtype=torch.float64)
    layer.execution = execution
    x = torch.randn(5, 3, 2, dtype=torch.float64)
    h0 = layer.init_state(3)
    h0 = tuple(torch.randn_like(s) for s in h0) if isinstance(h0, tuple) else torch.randn_like(h0)
    lengths = torch.tensor([5, 0, 2])
    out, final = layer(x, h0, lengths=lengths)
    first = final if isinstance(final, torch.Tensor) else final[0]
    start = h0 if isinstance(h0, torch.Tensor) else h0[0]
    assert torch.equal(out[:, 1], torch.zeros(5, 6, dtype=torch.float64))
    assert torch.equal(first[:, 1], start[:, 1])
    # the other rows are what they are without the empty one
    keep = torch.tensor([0, 2])
    sub_h0 = tuple(s[:, keep] for s in h0) if isinstance(h0, tuple) else h0[:, keep]
    sub_out, _ = layer(x[:, keep], sub_h0, lengths=lengths[keep])
    torch.testing.assert_close(out[:, keep], sub_out, rtol=0, atol=1e-12)
    out.sum().backward()  # the graph is whole


@pytest.mark.parametrize("execution", ["fused", "unrolled", "reference"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_an_empty_batch_returns_empty_outputs_as_torch_does(kind, execution):
    ours = getattr(rnnlab, kind.upper())(2, 3, num_layers=2, execution=execution)
    theirs = getattr(torch.nn, kind.upper())(2, 3, num_layers=2)
    x = torch.randn(4, 0, 2)
    out, final = ours(x)
    want, want_final = theirs(x)
    assert out.shape == want.shape == (4, 0, 3)
    first = final if isinstance(final, torch.Tensor) else final[0]
    assert first.shape == (2, 0, 3)
    out.sum().backward()
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in ours.parameters())
    empty, _ = ours(torch.randn(0, 4, 2).transpose(0, 1)[:, :0], lengths=torch.zeros(0, dtype=torch.long))
    assert empty.shape == (4, 0, 3)


def test_flatten_parameters_is_a_no_op_off_cuda():
    layer = rnnlab.LSTM(2, 3, num_layers=2)
    before = {n: p.data_ptr() for n, p in layer.named_parameters()}
    layer.flatten_parameters()
    assert {n: p.data_ptr() for n, p in layer.named_parameters()} == before
