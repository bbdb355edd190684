"""Export: ONNX (run by onnxruntime) and TorchScript equal the model, outputs and final state, at the export
length and at others, for batch sizes other than the example's."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.errors import ConfigError
from rnnlab.exporting import example_inputs, plain_torch, verify

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

#: TorchScript is deprecated in favour of torch.export, and warns so; it is what libtorch (C++) loads.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

CELLS = [("lstm", {}), ("gru", {}), ("rnn", {}), ("rnn", {"nonlinearity": "relu"})]


def model_of(cell, options, output="last", **more):
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(3, 8, 2, cell=cell, output=output, **options, **more)
    with torch.no_grad():  # weights away from any initialisation's structure: a trained model's
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def reference(model, inputs):
    """The model's own outputs and final state on the exported function's inputs."""
    state = inputs[1:] if len(inputs) > 2 else inputs[1]
    with torch.no_grad():
        y, final = model.forward_with_state(inputs[0], state)
    return [y, *(final if isinstance(final, tuple) else (final,))]


@pytest.mark.parametrize("output", ["last", "sequence"])
@pytest.mark.parametrize(("cell", "options"), CELLS, ids=["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_onnxruntime_equals_the_model_at_two_lengths_and_batch_sizes(tmp_path, cell, options, output):
    model = model_of(cell, options, output, num_layers=2, bidirectional=True)
    path = rnnlab.export(model, tmp_path / "m.onnx", length=16)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == (["input", "h0", "c0"] if cell == "lstm" else ["input", "h0"])
    for batch, length in [(2, 16), (5, 43), (1, 3)]:
        inputs = example_inputs(model, batch, length)
        got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})
        want = reference(model, inputs)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g.shape == tuple(w.shape)
            torch.testing.assert_close(torch.from_numpy(g), w, atol=1e-5, rtol=0)


def test_the_onnx_graph_has_dynamic_batch_and_time(tmp_path):
    model = model_of("gru", {}, "sequence")
    graph = onnx.load(str(rnnlab.export(model, tmp_path / "m.onnx"))).graph
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")))

    def dims(values):
        return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}

    assert dims(graph.input)["input"] == ["batch", "time", 3]
    assert dims(graph.input)["h0"] == [1, "batch", 8]
    assert dims(graph.output)["output"] == ["batch", "time", 2]
    assert [n.op_type for n in graph.node].count("GRU") == 1  # ONNX's own operator, not an unrolled loop


@pytest.mark.parametrize(("cell", "options"), CELLS[:3], ids=["lstm", "gru", "rnn"])
def test_torchscript_equals_the_model_and_loads_without_rnnlab_code(tmp_path, cell, options):
    model = model_of(cell, options, num_layers=2)
    path = rnnlab.export(model, tmp_path / "m.pt", length=16)
    loaded = torch.jit.load(str(path))
    for batch, length in [(2, 16), (4, 30)]:
        inputs = example_inputs(model, batch, length)
        for g, w in zip(loaded(*inputs), reference(model, inputs), strict=True):
            torch.testing.assert_close(g, w, atol=1e-5, rtol=0)
    if cell == "lstm":  # plain torch modules: it loads and runs where rnnlab cannot be imported
        code = (
            "import sys; sys.modules['rnnlab'] = None; import torch, warnings; "
            "warnings.simplefilter('ignore'); "
            f"m = torch.jit.load({str(path)!r}); y, h, c = m(torch.ones(2, 5, 3), torch.zeros(2, 2, 8), "
            "torch.zeros(2, 2, 8)); print(tuple(y.shape))"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert done.stdout.strip() == "(2, 2)"


def test_token_inputs_and_time_major_models_export_too(tmp_path):
    words = model_of("lstm", {}, vocab_size=50, num_layers=1)
    assert verify(words, rnnlab.export(words, tmp_path / "w.onnx")) < 1e-5
    assert verify(words, rnnlab.export(words, tmp_path / "w.pt")) < 1e-5
    time_major = model_of("gru", {}, "sequence", batch_first=False)
    assert example_inputs(time_major, 2, 7)[0].shape == (7, 2, 3)
    assert verify(time_major, rnnlab.export(time_major, tmp_path / "t.onnx"), lengths=(5, 19)) < 1e-5


def test_the_initial_state_is_an_input_that_matters(tmp_path):
    model = model_of("lstm", {})
    session = onnxruntime.InferenceSession(str(rnnlab.export(model, tmp_path / "m.onnx")))
    x, h0, c0 = example_inputs(model, 2, 10)
    a = session.run(None, {"input": x.numpy(), "h0": h0.numpy(), "c0": c0.numpy()})[0]
    b = session.run(None, {"input": x.numpy(), "h0": 0 * h0.numpy(), "c0": 0 * c0.numpy()})[0]
    assert abs(a - b).max() > 1e-3
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(b), model(x), atol=1e-5, rtol=0)  # zeros: the default


def test_a_cell_torch_has_no_module_for_is_refused_with_the_cells_that_export(tmp_path):
    model = rnnlab.SequenceModel(3, 8, 2, cell="layernorm_lstm")
    with pytest.raises(ConfigError, match=r"LayerNormLSTMCell cell has no torch module.*lstm, gru, rnn"):
        rnnlab.export(model, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="unknown export format 'tflite'"):
        rnnlab.export(model_of("gru", {}), tmp_path / "m.x", format="tflite")  # type: ignore[arg-type]


def test_plain_torch_leaves_the_model_as_it_was():
    model = model_of("lstm", {}).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = plain_torch(model)
    assert model.training and not plain.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_export_command_checks_the_file_and_keeps_an_existing_one(tmp_path, capsys):
    run = tmp_path / "run"
    flags = ["--task", "adding", "--task.length", "10", "--model.cell", "gru", "--model.hidden_size", "8"]
    assert main(["train", *flags, "--steps", "5", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    out = tmp_path / "model.onnx"
    assert main(["export", str(run), "--out", str(out)]) == 0
    line = capsys.readouterr().out
    assert f"{out}: {run} at step 5" in line and "at T = 16 and 41" in line
    worst = float(line.rsplit(":", 1)[1])
    assert 0 <= worst < 1e-5
    before = out.read_bytes()
    assert main(["export", str(run), "--out", str(out), "--format", "torchscript"]) == 1
    assert "exists" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["export", str(run), "--out", str(out), "--format", "torchscript", "--overwrite"]) == 0
    assert out.read_bytes() != before and torch.jit.load(str(out)) is not None
    assert main(["export", str(run), "--out", str(tmp_path / "m.x"), "--format", "tflite"]) == 2
    assert "invalid choice: 'tflite'" in capsys.readouterr().err
