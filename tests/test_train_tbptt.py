"""Truncated BPTT: windows, carrying and detaching the state, contexts (k2 > k1), stateful streams."""

import pytest
import torch

from rnnlab import SequenceModel
from rnnlab.tasks import Batch, SineTask
from rnnlab.training import OptimConfig, TrainConfig, train
from rnnlab.training.config import BPTTConfig
from rnnlab.training.tbptt import Carry, Window, begin, forward, reset_rows, spans, windows


def model(output="sequence", cell="lstm", seed=0):
    torch.manual_seed(seed)
    return SequenceModel(2, 8, 1, cell=cell, output=output).double()


def run_windows(m, x, k1, k2, output="sequence"):
    """Outputs of every window of x (B, T, I), each from the carry of the one before, as in the loop."""
    carry, outs, parts = Carry(), [], spans(x.shape[1], k1)
    for i, (a, b) in enumerate(parts):
        y, carry = forward(m, x[:, a:b], carry, keep=k2 - k1, output=output, end=i == len(parts) - 1)
        outs.append(y)
    return outs


def test_forward_with_state_carries_across_chunks_exactly():
    m, x = model(), torch.randn(3, 12, 2, dtype=torch.float64)
    y_whole, (h, c) = m.forward_with_state(x)
    y1, s1 = m.forward_with_state(x[:, :5])
    y2, (h2, c2) = m.forward_with_state(x[:, 5:], s1)
    assert torch.allclose(torch.cat([y1, y2], 1), y_whole)
    assert torch.allclose(h2, h) and torch.allclose(c2, c)
    assert torch.equal(m(x), y_whole)


def test_spans_cover_the_sequence():
    assert spans(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert spans(10, 10) == [(0, 10)]


@pytest.mark.parametrize("output", ["sequence", "last"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_one_window_over_the_whole_sequence_equals_full_bptt(output, cell):
    x, target = torch.randn(3, 9, 2, dtype=torch.float64), torch.randn(3, 1, dtype=torch.float64)
    full, trunc = model(output, cell), model(output, cell)
    loss_full = (full(x) - (target if output == "last" else 0)).pow(2).sum()
    (y,) = run_windows(trunc, x, k1=9, k2=9, output=output)
    loss_trunc = (y - (target if output == "last" else 0)).pow(2).sum()
    loss_full.backward()
    loss_trunc.backward()
    for (name, p), q in zip(full.named_parameters(), trunc.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, rtol=1e-12, atol=1e-12), name


def test_no_gradient_crosses_a_cut():
    m = model()
    x = torch.randn(2, 20, 2, dtype=torch.float64, requires_grad=True)
    outs = run_windows(m, x, k1=5, k2=5)
    outs[2].sum().backward()  # the window of steps 10..14
    assert torch.count_nonzero(x.grad[:, :10]) == 0  # exactly zero before the cut at step 10
    assert torch.all(x.grad[:, 10:15].abs().sum(-1) > 0)
    assert torch.count_nonzero(x.grad[:, 15:]) == 0


def test_k2_greater_than_k1_backpropagates_k2_steps():
    m = model()
    x = torch.randn(2, 20, 2, dtype=torch.float64, requires_grad=True)
    outs = run_windows(m, x, k1=5, k2=8)
    outs[2].sum().backward()  # new steps 10..14, context 7..9 run again from the state at 7
    assert torch.count_nonzero(x.grad[:, :7]) == 0
    assert torch.all(x.grad[:, 7:15].abs().sum(-1) > 0)


def test_k2_windows_give_the_same_outputs_as_one_pass():
    m, x = model(), torch.randn(2, 20, 2, dtype=torch.float64)
    for k1, k2 in [(5, 5), (5, 8), (3, 7), (4, 20)]:
        outs = run_windows(m, x, k1, k2)
        assert torch.allclose(torch.cat(outs, 1), m(x)), (k1, k2)  # cutting the gradient never changes values


def test_last_output_with_windows_predicts_from_the_final_state():
    m, x = model("last"), torch.randn(2, 12, 2, dtype=torch.float64)
    outs = run_windows(m, x, k1=5, k2=7, output="last")
    assert torch.allclose(outs[-1], m(x))


def test_truncated_training_step_equals_full_when_the_window_is_the_sequence(tmp_path):
    task = SineTask(seq_len=8, train_size=16, val_size=0, batch_size=8, output="sequence")

    def one_run(bptt, out):
        torch.manual_seed(0)
        m = SequenceModel(1, 8, 1, output="sequence")
        config = TrainConfig(steps=2, out=str(tmp_path / out), optim=OptimConfig("sgd", lr=0.1), bptt=bptt)
        train(m, task, config, progress=False)
        return m

    full = one_run(BPTTConfig("full"), "full")
    trunc = one_run(BPTTConfig("truncated", k1=8, k2=8), "trunc")
    chopped = one_run(BPTTConfig("truncated", k1=4, k2=4), "chopped")
    for p, q in zip(full.parameters(), trunc.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-7)
    assert not all(torch.allclose(p, r) for p, r in zip(full.parameters(), chopped.parameters(), strict=True))


def _window(batch, index=0, batch_index=1):
    return Window(0, batch_index, index, batch, 0, batch.inputs.shape[1], last=True)


def test_begin_resets_per_batch_unless_stateful_and_resets_marked_rows():
    h = torch.ones(1, 3, 4)
    carry = Carry((h, h.clone()))
    batch = Batch(torch.zeros(3, 5, 1), torch.zeros(3, 5, 1))
    assert begin(carry, _window(batch), stateful=False).state is None
    assert begin(carry, _window(batch, batch_index=0), stateful=True).state is None  # a new epoch
    assert begin(carry, _window(batch), stateful=True).state is carry.state
    marked = Batch(batch.inputs, batch.targets, reset=torch.tensor([False, True, False]))
    h2, c2 = begin(carry, _window(marked), stateful=True).state
    assert h2[:, 1].abs().sum() == 0 and torch.equal(h2[:, [0, 2]], h[:, [0, 2]])
    assert torch.equal(reset_rows(h, torch.tensor([True, False, False]))[:, 1:], h[:, 1:])
    with pytest.raises(ValueError, match="carried state has 3"):
        begin(carry, _window(Batch(torch.zeros(2, 5, 1), torch.zeros(2, 5, 1))), stateful=True)


def test_windows_resume_exactly_after_a_position():
    task = SineTask(seq_len=6, train_size=12, val_size=0, batch_size=4)
    stream = windows(task, k1=4, seed=1, device=torch.device("cpu"))
    every = [next(stream) for _ in range(9)]  # 3 batches x 2 windows per epoch, into epoch 1
    assert [w.position for w in every[:3]] == [(0, 0, 0), (0, 0, 1), (0, 1, 0)]
    resumed = windows(task, k1=4, seed=1, device=torch.device("cpu"), after=every[4].position)
    for w in every[5:]:
        r = next(resumed)
        assert r.position == w.position and torch.equal(r.inputs, w.inputs)


def test_windows_reject_nan_inputs_naming_the_batch():
    task = SineTask(seq_len=4, train_size=8, val_size=0, batch_size=4)
    task.inputs[5, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="batch 1 of epoch 0: inputs contain NaN or Inf"):
        for _ in windows(task, k1=0, seed=0, device=torch.device("cpu")):
            pass


class Spy(SequenceModel):
    """Records the state each forward starts from and the state it ends with."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def forward_with_state(self, x, state=None, lengths=None):
        y, final = super().forward_with_state(x, state, lengths)
        if self.training:
            self.calls.append((state, tuple(f.detach().clone() for f in final)))
        return y, final


@pytest.mark.parametrize("stateful", [True, False])
def test_stateful_training_carries_the_state_from_batch_to_batch(tmp_path, stateful):
    task = SineTask(seq_len=6, train_size=12, val_size=0, batch_size=4, stream=True)  # 3 batches per epoch
    m = Spy(1, 8, 1, output="sequence")
    config = TrainConfig(steps=6, out=str(tmp_path / "run"), bptt=BPTTConfig(stateful=stateful))
    train(m, task, config, progress=False)
    starts = [state for state, _ in m.calls]
    assert starts[0] is None and starts[3] is None  # each epoch starts afresh
    for k in (1, 2, 4, 5):
        if stateful:
            assert all(torch.equal(a, b) for a, b in zip(starts[k], m.calls[k - 1][1], strict=True))
            assert not any(s.requires_grad for s in starts[k])  # detached: the cut between batches
        else:
            assert starts[k] is None


def test_stateful_evaluation_equals_one_pass_over_the_stream():
    from rnnlab.training.evaluate import evaluate

    task = SineTask(seq_len=5, train_size=8, val_size=12, batch_size=4, stream=True)
    m = SequenceModel(1, 8, 1, output="sequence")
    batches = list(task.val_batches())
    x, y = torch.cat([b.inputs for b in batches], 1), torch.cat([b.targets for b in batches], 1)
    with torch.no_grad():
        whole = task.loss(m(x), y).item()
    assert evaluate(m, task, torch.device("cpu"), stateful=True)["loss"] == pytest.approx(whole, rel=1e-5)
    assert evaluate(m, task, torch.device("cpu"), stateful=False)["loss"] != pytest.approx(whole, rel=1e-3)
