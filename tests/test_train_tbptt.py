"""Truncated BPTT: windows, carrying and detaching the state, contexts (k2 > k1), stateful streams."""

import itertools

import pytest
import torch

from rnnlab import SequenceModel
from rnnlab.errors import DataError
from rnnlab.tasks import Batch, SineTask, Task, TensorTask
from rnnlab.training import OptimConfig, TrainConfig, train
from rnnlab.training.config import BPTTConfig
from rnnlab.training.tbptt import (
    Carry,
    Window,
    begin,
    check_batch,
    forward,
    reset_rows,
    spans,
    valid_steps,
    windows,
)


def model(output="sequence", cell="lstm", seed=0):
    torch.manual_seed(seed)
    return SequenceModel(2, 8, 1, cell=cell, output=output).double()


def run_windows(m, x, k1, k2, output="sequence"):
    """Outputs of every window of x (B, T, I), each from the carry of the one before, as in the loop."""
    carry, outs, parts = Carry(), [], spans(x.shape[1], k1)
    for i, (a, b) in enumerate(parts):
        y, carry = forward(
            m, x[:, a:b], carry, context=k2 - k1, output=output, end=i == len(parts) - 1, start=a
        )
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


# ------------------------------------------------------------------------------------- variable lengths


class RaggedTask(TensorTask):
    """Sequences of the given lengths, in one fixed batch; the padding holds large inputs and targets that
    would show at once in a loss or gradient that saw them."""

    def __init__(self, lengths, T=7, output="sequence", seed=0):
        g = torch.Generator().manual_seed(seed)
        B = len(lengths)
        x = torch.randn(B, T, 2, generator=g, dtype=torch.float64)
        y = torch.randn(B, T, 1, generator=g, dtype=torch.float64)
        self.lengths = torch.tensor(lengths)
        pad = torch.arange(T)[None, :] >= self.lengths[:, None]  # (B, T)
        x[pad], y[pad] = 30.0, 100.0
        super().__init__(x, y if output == "sequence" else y[:, 0], loss="mse", batch_size=B)

    def train_batches(self, generator):
        yield Batch(self.inputs, self.targets, self.lengths)


def rnn_step(p, x_t, h):
    """torch's tanh RNN step from SequenceModel's parameters, by hand."""
    pre = x_t @ p["encoder.weight_ih_l0"].T + p["encoder.bias_ih_l0"]
    return torch.tanh(pre + h @ p["encoder.weight_hh_l0"].T + p["encoder.bias_hh_l0"])


def hand_windows(p, x, y, lengths, k1, k2, update=None):
    """Truncated BPTT(k1, k2) on output "sequence", unrolled by hand per row over its valid steps only.

    Each window starts from the state carried in (detached) at `start - context`, runs the context and the
    new steps with autograd, and takes the mean squared error over the valid (row, step) pairs of its new
    steps; a window without any makes no update. `update(grads)` is called after each window's backward
    (an optimiser step); returns the list of every window's gradients."""
    B, T, _ = x.shape
    H = p["encoder.weight_hh_l0"].shape[0]
    carried = {0: torch.zeros(B, H, dtype=x.dtype)}  # step -> state of every row before that step
    grads = []
    for start, end in spans(T, k1):
        first = max(0, start - (k2 - k1))
        split = end if end == T else end - min(k2 - k1, end - first)  # where the next window starts from
        h = [carried[first][b].detach() for b in range(B)]
        errors = []
        for t in range(first, end):
            for b in range(B):
                if t < lengths[b]:  # padded steps are never run: the row keeps its state
                    h[b] = rnn_step(p, x[b, t], h[b])
                    if t >= start:
                        out = h[b] @ p["head.weight"].T + p["head.bias"]
                        errors.append((out - y[b, t]).pow(2).sum())
            if t + 1 == split:
                carried[split] = torch.stack(h).detach()
        if not errors:
            continue
        for q in p.values():
            q.grad = None
        (torch.stack(errors).sum() / len(errors)).backward()
        grads.append({k: q.grad.clone() for k, q in p.items()})
        if update:
            update(grads[-1])
    return grads


def window_grads(m, task, k1, k2):
    """Every window's gradients as the training loop takes them: begin, forward, valid steps, loss."""
    carry, grads = Carry(), []
    for w in itertools.islice(windows(task, k1, seed=0, device=torch.device("cpu")), len(spans(7, k1))):
        carry = begin(carry, w, stateful=False)
        targets = w.targets("sequence")  # None: no row has a valid step, no update
        m.zero_grad()
        with torch.set_grad_enabled(targets is not None):
            y, carry = forward(
                m,
                w.inputs,
                carry,
                context=k2 - k1,
                output="sequence",
                end=w.last,
                lengths=w.batch.lengths,
                start=w.start,
            )
        if targets is None:
            continue
        task.loss(*valid_steps(y, targets, w.lengths)).backward()
        grads.append({k: q.grad.clone() for k, q in m.named_parameters()})
    return grads


@pytest.mark.parametrize("lengths", [[7, 3, 1], [5, 3, 1], [2, 6, 4]])
@pytest.mark.parametrize(("k1", "k2"), [(7, 7), (2, 2), (3, 3), (2, 3), (2, 5), (3, 7)])  # (7, 7): full BPTT
def test_ragged_windows_equal_the_hand_unrolled_valid_steps(lengths, k1, k2):
    task = RaggedTask(lengths)
    m = model(cell="rnn")
    p = dict(m.named_parameters())
    expected = hand_windows(p, task.inputs, task.targets, lengths, k1, k2)
    got = window_grads(m, task, k1, k2)
    assert len(got) == len(expected) == sum(a < max(lengths) for a, _ in spans(7, k1))  # empty: no update
    for g, e in zip(got, expected, strict=True):
        for name in p:
            assert torch.allclose(g[name], e[name], rtol=1e-10, atol=1e-12), name


def test_window_lengths_are_the_valid_new_steps():
    batch = Batch(torch.zeros(3, 7, 1), torch.zeros(3, 7, 1), torch.tensor([7, 3, 1]))
    got = [Window(0, 0, i, batch, a, b, last=b == 7).lengths.tolist() for i, (a, b) in enumerate(spans(7, 2))]
    assert got == [[2, 2, 1], [2, 1, 0], [2, 0, 0], [1, 0, 0]]
    short = Batch(batch.inputs, batch.targets, torch.tensor([5, 3, 1]))
    assert Window(0, 0, 3, short, 6, 7, last=True).targets("sequence") is None  # no row has a step there
    assert Window(0, 0, 3, short, 6, 7, last=True).targets("last") is not None  # the final states' loss


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("output", ["sequence", "last"])
def test_truncated_with_k1_the_sequence_equals_full_bptt_on_ragged_lengths(tmp_path, cell, output):
    task = RaggedTask([7, 3, 1], output=output)

    def one_run(bptt, out):
        m = model(output, cell)
        config = TrainConfig(
            steps=2, out=str(tmp_path / out), device="cpu", optim=OptimConfig("sgd", lr=0.1), bptt=bptt
        )
        train(m, task, config, progress=False)
        return m

    full = one_run(BPTTConfig("full"), "full")
    trunc = one_run(BPTTConfig("truncated", k1=7, k2=7), "trunc")
    start = model(output, cell)
    for (name, p), q, p0 in zip(full.named_parameters(), trunc.parameters(), start.parameters(), strict=True):
        assert torch.allclose(p, q, rtol=1e-12, atol=1e-12), name
        assert not torch.equal(p, p0), name  # both trained


@pytest.mark.parametrize(("k1", "k2"), [(2, 2), (2, 4), (3, 5)])
def test_training_on_ragged_windows_follows_the_hand_unrolled_updates(tmp_path, k1, k2):
    lengths, lr = [5, 3, 1], 0.5  # the last window, step 6, has no valid step: no update there
    task = RaggedTask(lengths)
    m, ref = model(cell="rnn"), model(cell="rnn")
    p = dict(ref.named_parameters())

    def sgd(grads):
        with torch.no_grad():
            for name, q in p.items():
                q -= lr * grads[name]

    updates = len(hand_windows(p, task.inputs, task.targets, lengths, k1, k2, update=sgd))
    config = TrainConfig(
        steps=updates,
        out=str(tmp_path / "run"),
        device="cpu",
        optim=OptimConfig("sgd", lr=lr),
        bptt=BPTTConfig("truncated", k1=k1, k2=k2),
    )
    history = train(m, task, config, progress=False)
    assert [r["batch"] for r in history.train] == [0] * updates  # every update from the one batch
    for name, q in m.named_parameters():
        assert torch.allclose(q, p[name], rtol=1e-10, atol=1e-12), name


def test_last_output_with_ragged_windows_predicts_from_each_row_final_state():
    m, task = model("last"), RaggedTask([7, 3, 1], output="last")
    x, lengths = task.inputs, task.lengths
    for k1, k2 in [(2, 2), (2, 5), (3, 4)]:
        carry, parts = Carry(), spans(7, k1)
        for i, (a, b) in enumerate(parts):
            y, carry = forward(
                m,
                x[:, a:b],
                carry,
                context=k2 - k1,
                output="last",
                end=i == len(parts) - 1,
                lengths=lengths,
                start=a,
            )
        assert torch.allclose(y, m(x, lengths=lengths)), (k1, k2)
        h, c = carry.state
        _, (h_full, c_full) = m.forward_with_state(x, None, lengths)
        assert torch.allclose(h, h_full) and torch.allclose(c, c_full)


def test_valid_steps_keeps_only_the_steps_inside_each_sequence():
    out = torch.arange(12.0).reshape(2, 3, 2)
    targets = -out
    o, t = valid_steps(out, targets, torch.tensor([3, 1]))
    assert o.shape == (1, 4, 2) and torch.equal(o[0], out.reshape(6, 2)[[0, 1, 2, 3]])
    assert torch.equal(t, -o)
    assert valid_steps(out, targets, torch.tensor([3, 3]))[0] is out  # nothing cut short: unchanged
    classes = torch.tensor([[1, 2, 3], [4, 5, 6]])
    assert valid_steps(out, classes, torch.tensor([2, 1]))[1].tolist() == [[1, 2, 4]]


@pytest.mark.parametrize(
    ("lengths", "message"),
    [
        (torch.tensor([4, 9]), r"lengths must lie in \[0, 4\] \(the time steps\), got 4 to 9"),
        (torch.tensor([4, -1]), r"lengths must lie in \[0, 4\]"),
        (torch.tensor([4.0, 2.0]), "lengths must be 2 integers"),
        (
            torch.tensor([4, 2, 1]),
            r"lengths must be 2 integers \(one per row\), got torch.int64 of shape \(3,\)",
        ),
    ],
)
def test_windows_reject_bad_lengths_naming_the_batch(lengths, message):
    batch = Batch(torch.zeros(2, 4, 1), torch.zeros(2, 4, 1), lengths)
    with pytest.raises(DataError, match="batch 0 of epoch 0: " + message):
        check_batch(batch, "training batch 0 of epoch 0")


class Tokens(Task):
    """Token ids (N, 7), id 0 past each text's length; the class: whether id 2 occurs."""

    name, output, vocab_size, input_size, output_size = "tokens", "last", 6, 6, 2

    def __init__(self, n=24, batch_size=8):
        g = torch.Generator().manual_seed(0)
        self.lengths = torch.randint(1, 8, (n,), generator=g)
        self.ids = torch.randint(1, 6, (n, 7), generator=g)
        self.ids[torch.arange(7)[None, :] >= self.lengths[:, None]] = 0
        self.labels, self.batch_size = (self.ids == 2).any(1).long(), batch_size

    def train_batches(self, generator):
        order = torch.randperm(len(self.ids), generator=generator)
        for rows in order.split(self.batch_size):
            yield Batch(self.ids[rows], self.labels[rows], self.lengths[rows])

    def val_batches(self):
        yield Batch(self.ids, self.labels, self.lengths)

    def loss(self, outputs, targets):
        return torch.nn.functional.cross_entropy(outputs, targets)


def test_token_windows_give_the_same_outputs_as_one_pass():
    task = Tokens()
    torch.manual_seed(0)
    m = SequenceModel(3, 5, 2, cell="gru", output="last", vocab_size=task.vocab_size).double()
    for w in itertools.islice(windows(task, k1=3, seed=0, device=torch.device("cpu")), 3):
        assert w.inputs.dtype == torch.int64 and w.inputs.shape == (8, min(3, 7 - w.start))
    batch = next(iter(task.val_batches()))
    carry, parts = Carry(), spans(7, 3)
    for i, (a, b) in enumerate(parts):
        y, carry = forward(
            m,
            batch.inputs[:, a:b],
            carry,
            context=2,
            output="last",
            end=i == 2,
            lengths=batch.lengths,
            start=a,
        )
    torch.testing.assert_close(y, m(batch.inputs, lengths=batch.lengths))


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            torch.tensor([[1, 2, 3], [4, 6, 0]]),
            r"token id 6 at row 1, step 1 is outside \[0, 6\) \(the task's",
        ),
        (torch.tensor([[1, 2, -1], [4, 5, 0]]), r"token id -1 at row 0, step 2 is outside"),
        (
            torch.zeros(2, 3, 6),
            r"inputs must be int64 token ids \(batch, time\) for a task with a vocab_size",
        ),
        (torch.zeros(2, 3, dtype=torch.int32), r"inputs must be int64 .* got torch.int32 of shape \(2, 3\)"),
    ],
)
def test_a_token_batch_outside_the_vocabulary_is_refused_naming_the_id(inputs, message):
    with pytest.raises(DataError, match="validation batch 0: " + message):
        check_batch(Batch(inputs, torch.zeros(2, dtype=torch.int64)), "validation batch 0", vocab_size=6)
    if inputs.dtype == torch.int64:
        check_batch(Batch(inputs.clamp(0, 5), torch.zeros(2, dtype=torch.int64)), "here", vocab_size=6)
