"""The task protocol: TensorTask, batchify, the synthetic sine task and the registry."""

import dataclasses
import inspect

import pytest
import torch
import torch.nn.functional as F

from rnnlab.errors import ConfigError, DataError
from rnnlab.tasks import TASKS, SineTask, TensorTask, batchify, describe, make_task, task_settings


def test_tensor_task_infers_shapes_and_output_mode():
    x = torch.rand(20, 5, 3)
    last = TensorTask(x, torch.rand(20, 2))
    per_step = TensorTask(x, torch.rand(20, 5, 2))
    classes = TensorTask(x, torch.randint(0, 4, (20,)), loss="cross_entropy", num_classes=4)
    assert (last.input_size, last.output_size, last.output) == (3, 2, "last")
    assert (per_step.output_size, per_step.output) == (2, "sequence")
    assert (classes.output_size, classes.output) == (4, "last")


def test_tensor_task_rejects_mismatched_data():
    with pytest.raises(ValueError, match="20 input sequences but 19 targets"):
        TensorTask(torch.rand(20, 5, 1), torch.rand(19, 1))
    with pytest.raises(ValueError, match="loss must be one of"):
        TensorTask(torch.rand(20, 5, 1), torch.rand(20, 1), loss="l1")


X, Y = torch.rand(20, 5, 2), torch.rand(20, 1)
CLASSES = torch.arange(20) % 3  # classes 0, 1, 2
NAN = X.clone().index_put_((torch.tensor(3), torch.tensor(1), torch.tensor(0)), torch.tensor(float("nan")))


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((X, Y[:, 0]), {}, r"MSE targets must be \(N, O\) or \(N, T, O\), got \(20,\).*shape \(20, 1\)"),
        ((X, Y), {"val": (X[:5], Y[:4])}, r"5 val input sequences but 4 targets"),
        (
            (X, Y),
            {"val": (X[:5, :, :1], Y[:5])},
            r"val inputs \(5, 5, 1\) .* must be shaped as the training data",
        ),
        ((X[:, :0], Y), {}, r"inputs \(20, 0, 2\) hold no data"),
        ((X[:0], Y[:0]), {}, r"inputs \(0, 5, 2\) hold no data"),
        ((X.long(), Y), {}, r"inputs must be floating point, got torch.int64: convert them with .float\(\)"),
        ((NAN, Y), {}, r"^inputs contain NaN or Inf \(the first at \[3, 1, 0\]: nan\)"),
        (
            (X, Y.clone().fill_(float("inf"))),
            {},
            r"^targets contain NaN or Inf \(the first at \[0, 0\]: inf\)",
        ),
        ((X, Y), {"val": (NAN, Y)}, r"^val inputs contain NaN or Inf"),
        ((X, Y.long()), {}, r"MSE targets must be floating point, got torch.int64"),
        (
            (X, CLASSES.float()),
            {"loss": "cross_entropy"},
            r"class targets must be integer class indices, got tor",
        ),
        ((X, CLASSES - 1), {"loss": "cross_entropy"}, r"class targets must be >= 0, got -1"),
        (
            (X, CLASSES),
            {"loss": "cross_entropy", "num_classes": 2},
            r"targets hold class 2, but num_classes = 2",
        ),
        ((X, torch.rand(20, 4, 1)), {}, r"per-step targets have 4 steps, inputs 5"),
    ],
)
def test_tensor_task_checks_its_data_when_it_is_made(args, kwargs, message):
    with pytest.raises(DataError, match=message):
        TensorTask(*args, **kwargs)


def test_train_batches_cover_every_sequence_once_and_depend_only_on_the_generator():
    x = torch.arange(10.0).reshape(10, 1, 1)
    task = TensorTask(x, x[:, 0], batch_size=4)
    first = [b.inputs.flatten() for b in task.train_batches(torch.Generator().manual_seed(3))]
    again = [b.inputs.flatten() for b in task.train_batches(torch.Generator().manual_seed(3))]
    other = [b.inputs.flatten() for b in task.train_batches(torch.Generator().manual_seed(4))]
    assert [len(b) for b in first] == [4, 4, 2]
    assert sorted(torch.cat(first).tolist()) == list(range(10))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_losses_and_metrics():
    reg = TensorTask(torch.rand(4, 3, 1), torch.rand(4, 1))
    out, y = torch.tensor([[1.0], [2.0]]), torch.tensor([[0.0], [4.0]])
    assert reg.loss(out, y).item() == pytest.approx(F.mse_loss(out, y).item())
    assert reg.metrics(out, y) == {"mae": pytest.approx(1.5)}
    cls = TensorTask(torch.rand(4, 3, 1), torch.tensor([0, 1, 2, 1]), loss="cross_entropy")
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    assert cls.metrics(logits, torch.tensor([0, 1])) == {"accuracy": 0.5}


def test_batchify_cuts_rows_into_consecutive_batches():
    series = torch.arange(24.0).reshape(2, 12, 1)  # the docstring's rows a..l and m..x
    batches = batchify(series, series + 100, seq_len=3)
    assert len(batches) == 4
    assert batches[0].inputs[:, :, 0].tolist() == [[0, 1, 2], [12, 13, 14]]
    assert batches[1].inputs[:, :, 0].tolist() == [[3, 4, 5], [15, 16, 17]]
    assert torch.equal(batches[3].targets, batches[3].inputs + 100)


def test_sine_task_targets_continue_the_wave():
    task = SineTask(seq_len=6, train_size=8, val_size=4, batch_size=4, output="last")
    x, y = task.inputs[:, :, 0], task.targets[:, 0]  # (N, T), (N,)
    # a sine sampled at unit steps satisfies x_{t+1} = 2 cos(w) x_t - x_{t-1}: recover cos(w), predict x_T
    cos_w = (x[:, 2] + x[:, 0]) / (2 * x[:, 1])
    assert torch.allclose(2 * cos_w * x[:, -1] - x[:, -2], y, atol=1e-3)
    assert task.val is not None and task.val[0].shape == (4, 6, 1)


def test_sine_stream_batches_continue_each_other():
    task = SineTask(seq_len=5, train_size=12, val_size=8, batch_size=4, stream=True)
    batches = list(task.train_batches(torch.Generator()))
    assert task.stream and task.output == "sequence" and len(batches) == 3
    for a, b in zip(batches, batches[1:], strict=False):
        assert torch.equal(a.targets[:, -1], b.inputs[:, 0])  # the target of the last step is the next input
    assert len(list(task.val_batches())) == 2


def test_make_task_names_the_field_for_an_unknown_task():
    assert isinstance(make_task(task_settings("sine", train_size=8, val_size=0)), SineTask)
    with pytest.raises(ConfigError, match=r"task\.name: unknown task 'nope'; available: sine, adding"):
        make_task(task_settings("nope"))


def test_a_tensor_task_describes_itself_by_its_data():
    x, y = torch.rand(20, 5, 3), torch.rand(20, 5, 2)
    task = TensorTask(x[:16], y[:16], batch_size=4, val=(x[16:], y[16:]), name="mine")
    assert task.settings() == {
        "name": "mine",
        "batch_size": 4,
        "seq_len": 5,
        "train_size": 16,
        "val_size": 4,
        "output": "sequence",
        "stream": False,
    }  # no seed: the data was not drawn from one
    assert describe(task) == {
        "class": "rnnlab.tasks.base.TensorTask",
        **task.settings(),
        "input_size": 3,
        "output_size": 2,
    }


#: small settings for each registered task, so that building it is quick.
SMALL = {
    "sine": {"batch_size": 4, "seq_len": 6, "train_size": 16, "val_size": 8, "seed": 3},
    "adding": {"length": 12, "val_size": 20, "test_size": 10, "seed": 3},
    "copy": {"delay": 5, "val_size": 20, "test_size": 10, "seed": 3},
    "images": {"dataset": "digits", "order": "permuted", "seed": 3},
}


def small(name, folder):
    """Small settings of task `name`, on data files written into `folder` for the tasks that read files
    (so that no packaged data set is needed)."""
    if name in SMALL:
        return SMALL[name]
    if name == "charlm":
        (folder / "t.txt").write_text("to be or not to be, that is the question\n" * 40)
        return {"path": str(folder / "t.txt"), "seq_len": 8, "batch_size": 4}
    if name == "classify":
        lines = ["id,step,x,label"] + [
            f"s{i},{t},{(i % 2) + t / 10},{'ab'[i % 2]}" for i in range(40) for t in range(3)
        ]
        (folder / "c.csv").write_text("\n".join(lines) + "\n")
        return {"path": str(folder / "c.csv"), "seed": 3}
    if name == "forecast":
        rows = ["t,y"] + [f"{i},{10 + i % 7 + 0.1 * i}" for i in range(120)]
        (folder / "f.csv").write_text("\n".join(rows) + "\n")
        return {"path": str(folder / "f.csv"), "target": "y", "time": "t", "lookback": 8, "horizon": 3}
    if name == "text":
        rows = ["text,label"] + [
            f"{'good fine' if i % 2 else 'bad awful'} film {i},{i % 2}" for i in range(60)
        ]
        (folder / "r.csv").write_text("\n".join(rows) + "\n")
        return {"path": str(folder / "r.csv"), "seed": 3}
    if name == "seq2seq":
        return {"count": 100, "high": 999, "seed": 2}
    raise AssertionError(f"no small settings for the task {name!r}: add them here")


@pytest.mark.parametrize("name", sorted(TASKS))
def test_a_registered_tasks_settings_rebuild_it(name, tmp_path):
    task = make_task(task_settings(name, **small(name, tmp_path)))
    settings = task.settings()
    cls = TASKS[name].Settings
    assert cls is not None and set(settings) == {f.name for f in dataclasses.fields(cls)}
    again = make_task(task_settings(**settings))
    assert again.settings() == settings
    for a, b in zip(task.val_batches(), again.val_batches(), strict=True):
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_a_registered_task_takes_its_settings_as_keywords_with_the_same_defaults(name):
    cls = TASKS[name]
    assert cls.Settings is not None
    declared = {f.name: f.default for f in dataclasses.fields(cls.Settings) if f.name != "name"}
    params = inspect.signature(cls.__init__).parameters
    taken = {k: p.default for k, p in params.items() if k != "self"}
    assert taken == declared
    assert cls.Settings().name == name


def test_sine_stream_settings_rebuild_it():
    task = make_task(task_settings("sine", **SMALL["sine"], stream=True))
    assert task.settings()["output"] == "sequence"
    again = make_task(task_settings(**task.settings()))
    for a, b in zip(task.val_batches(), again.val_batches(), strict=True):
        assert torch.equal(a.inputs, b.inputs)
