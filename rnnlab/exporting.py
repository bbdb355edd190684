"""A trained model out of rnnlab, in the standard formats: ONNX (onnxruntime, TensorRT, ...) and TorchScript.

    rnnlab.export(model, "model.onnx")                         # format from the name: .onnx or .pt
    rnnlab.export(model, "model.pt", format="torchscript")
    rnnlab.exporting.verify(model, "model.onnx")               # the largest difference, two lengths
    rnnlab export runs/adding-... --format onnx --out model.onnx      # checks the file against the model

What is exported is the model as torch's own modules compute it (`plain_torch(model)`): the embedding (token
inputs), `torch.nn.LSTM`, `GRU` or `RNN` carrying the encoder's weights (rnnlab's layers have torch's
parameter names and gate order, so the state dict loads as it is), and the linear head. Whatever execution
path trained the model, the file computes the same function, and the exporters know torch's recurrent
modules: ONNX's LSTM, GRU and RNN operators, TorchScript's scripted `nn.LSTM`.

The exported function takes the inputs and the initial state and returns the outputs and the final state:

    LSTM       (input, h0, c0) -> (output, hn, cn)
    GRU, RNN   (input, h0) -> (output, hn)

with input (B, T, I) (or (T, B, I) for a model built with batch_first=False; int64 ids (B, T) with a
vocabulary), h0 and c0 (num_layers x directions, B, H) (zeros: the model's own default), output (B, O)
for a many-to-one model or (B, T, O) for many-to-many. The batch and time dimensions are dynamic in both
formats (ONNX `dynamic_axes` through the TorchScript-based exporter, `dynamo=False`: the dynamo exporter
fixes the time dimension of recurrent modules).

What does not export: per-sequence lengths (packed sequences do not go through the ONNX exporter,
pytorch#62240; export sequences of one length per batch, or one sequence at a time), and the cells torch
has no module for (LayerNorm LSTM/GRU, IndRNN, the orthogonal RNN, a cell of your own), which would trace
as a loop fixed to one length: a ConfigError says so.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from rnnlab.cells import GRUCell, LSTMCell, RNNCell
from rnnlab.errors import ConfigError

Format = Literal["onnx", "torchscript"]
FORMATS = ("onnx", "torchscript")
#: ONNX opset: the LSTM/GRU/RNN operators are stable since 14; 17 is what onnxruntime >= 1.14 runs.
OPSET = 17

#: rnnlab's cells that torch has a module for, by the class whose maths they compute exactly.
_TORCH_MODULES: dict[type, Any] = {LSTMCell: nn.LSTM, GRUCell: nn.GRU, RNNCell: nn.RNN}


class Plain(nn.Module):
    """A `SequenceModel` as torch's own modules: the embedding (or None), the recurrent module, the head."""

    def __init__(self, embedding: nn.Embedding | None, rnn: nn.RNNBase, head: nn.Linear, last: bool) -> None:
        super().__init__()
        self.embedding, self.rnn, self.head, self.last = embedding, rnn, head, last
        self.directions = 2 if rnn.bidirectional else 1

    def read_out(self, out: Tensor, hn: Tensor) -> Tensor:
        """The head over every step's output, or (many-to-one) over the top layer's final state in each
        direction, as `SequenceModel.forward_with_state` reads it."""
        if not self.last:
            return self.head(out)
        top = hn[hn.shape[0] - self.directions :]  # (D, B, H)
        return self.head(torch.cat([top[d] for d in range(self.directions)], dim=-1))


class PlainLSTM(Plain):
    """(input, h0, c0) -> (output, hn, cn)."""

    def forward(self, x: Tensor, h0: Tensor, c0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self.embedding is not None:
            x = self.embedding(x)
        out, (hn, cn) = self.rnn(x, (h0, c0))
        return self.read_out(out, hn), hn, cn


class PlainRNN(Plain):
    """(input, h0) -> (output, hn), for GRU and Elman cells."""

    def forward(self, x: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
        if self.embedding is not None:
            x = self.embedding(x)
        out, hn = self.rnn(x, h0)
        return self.read_out(out, hn), hn


def plain_torch(model: Any) -> Plain:
    """`model` (a `SequenceModel`) as torch's own modules with a copy of its weights, in eval mode (see the
    module docstring).

    Raises:
        ConfigError: the model is no `SequenceModel`, or its cell has no torch module.
    """
    from rnnlab.fused import fast_paths
    from rnnlab.models import SequenceModel

    if not isinstance(model, SequenceModel):
        raise ConfigError(f"export takes an rnnlab.SequenceModel, got {type(model).__name__}")
    encoder = model.encoder
    cell = encoder.cells[0]
    kind = next((k for k in _TORCH_MODULES if isinstance(cell, k)), None)
    if kind is None or fast_paths(cell).fused_op is None:
        raise ConfigError(
            f"the {type(cell).__name__} cell has no torch module, so it exports only as a loop fixed to one "
            "length; export supports the cells torch has modules for: lstm, gru, rnn (tanh or relu)"
        )
    options: dict[str, Any] = {}
    if kind is RNNCell:
        options["nonlinearity"] = cell.nonlinearity
    rnn = _TORCH_MODULES[kind](
        encoder.input_size,
        encoder.hidden_size,
        num_layers=encoder.num_layers,
        bias=encoder.bias,
        batch_first=encoder.batch_first,
        dropout=0.0,  # eval mode: no dropout between layers
        bidirectional=encoder.bidirectional,
        **options,
    )
    rnn.load_state_dict(encoder.state_dict())
    embedding = None
    if model.embedding is not None:
        embedding = nn.Embedding(model.embedding.num_embeddings, model.embedding.embedding_dim, padding_idx=0)
        embedding.load_state_dict(model.embedding.state_dict())
    head = nn.Linear(model.head.in_features, model.head.out_features)
    head.load_state_dict(model.head.state_dict())
    wrapper = PlainLSTM if kind is LSTMCell else PlainRNN
    plain = wrapper(embedding, rnn, head, last=model.output == "last")
    first = next(model.parameters())
    return plain.to(device=first.device, dtype=first.dtype).eval()


def example_inputs(model: Any, batch: int = 2, length: int = 16) -> tuple[Tensor, ...]:
    """Inputs of the exported function for `model`: random inputs (or token ids) of `batch` sequences of
    `length` steps, and a random initial state (h0, and c0 for an LSTM), so that a check sees it used."""
    first = next(model.parameters())
    encoder = model.encoder
    shape = (batch, length) if encoder.batch_first else (length, batch)
    generator = torch.Generator().manual_seed(0)
    if model.embedding is not None:
        x = torch.randint(1, model.embedding.num_embeddings, shape, generator=generator)
    else:
        x = torch.randn(*shape, encoder.input_size, generator=generator, dtype=first.dtype)
    size = (encoder.num_layers * encoder.num_directions, batch, encoder.hidden_size)
    count = 2 if isinstance(encoder.cells[0], LSTMCell) else 1  # (h, c) or h
    states = tuple(0.5 * torch.randn(size, generator=generator, dtype=first.dtype) for _ in range(count))
    return tuple(t.to(first.device) for t in (x, *states))


def names(plain: Plain) -> tuple[list[str], list[str]]:
    """The exported function's input and output names."""
    if isinstance(plain, PlainLSTM):
        return ["input", "h0", "c0"], ["output", "hn", "cn"]
    return ["input", "h0"], ["output", "hn"]


def export(
    model: Any,
    path: str | Path,
    format: Format | None = None,
    *,
    length: int = 16,
    opset: int = OPSET,
) -> Path:
    """Write `model` (a `SequenceModel` of LSTM, GRU or RNN cells) to `path` as ONNX or TorchScript (the
    format from the name when not given: .onnx, else TorchScript), with dynamic batch and time; `length` is
    the time steps of the example it is traced with. Written to a temporary file, then renamed. Returns
    the path. See the module docstring for the function's inputs and outputs.

    Raises:
        ConfigError: an unknown format, a cell that does not export, or the onnx package missing.
    """
    path = Path(path)
    format = format or ("onnx" if path.suffix.lower() == ".onnx" else "torchscript")
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; choose from {', '.join(FORMATS)}")
    plain = plain_torch(model)
    inputs = example_inputs(model, length=length)
    temporary = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if format == "onnx":
            _onnx(plain, inputs, temporary, opset)
        else:
            with warnings.catch_warnings():  # deprecated for torch.export, yet what libtorch (C++) loads
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.jit.save(torch.jit.script(plain), str(temporary))
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def verify(model: Any, path: str | Path, lengths: tuple[int, ...] = (16, 41), batch: int = 3) -> float:
    """The largest absolute difference between `model` and the file `export` wrote at `path`, over every
    output (the outputs and the final state) on random inputs of `batch` sequences at each of `lengths`:
    loaded with `torch.jit.load` when it is TorchScript (a zip archive), else run by onnxruntime.

    Raises:
        ConfigError: an .onnx file without onnxruntime installed.
    """
    path = Path(path)
    plain = plain_torch(model)
    with path.open("rb") as f:
        torchscript = f.read(4) == b"PK\x03\x04"
    if not torchscript:
        try:
            import onnxruntime
        except ImportError:
            raise ConfigError(
                'checking an ONNX file needs onnxruntime: pip install "rnnlab[export]"'
            ) from None
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def run(inputs: tuple[Tensor, ...]) -> list[Tensor]:
            feed = {name: t.cpu().numpy() for name, t in zip(names(plain)[0], inputs, strict=True)}
            return [torch.from_numpy(a) for a in session.run(None, feed)]

    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            loaded = torch.jit.load(str(path), map_location="cpu")

        def run(inputs: tuple[Tensor, ...]) -> list[Tensor]:
            return list(loaded(*(t.cpu() for t in inputs)))

    worst = 0.0
    model_was_training = model.training
    model.eval()
    try:
        for length in lengths:
            inputs = example_inputs(model, batch, length)
            with torch.no_grad():
                y, state = model.forward_with_state(inputs[0], inputs[1:] if len(inputs) > 2 else inputs[1])
                want = [y, *(state if isinstance(state, tuple) else (state,))]
                for got, expected in zip(run(inputs), want, strict=True):
                    worst = max(worst, float((got.double() - expected.cpu().double()).abs().max()))
    finally:
        model.train(model_was_training)
    return worst


def _onnx(plain: Plain, inputs: tuple[Tensor, ...], path: Path, opset: int) -> None:
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise ConfigError('ONNX export needs the onnx package: pip install "rnnlab[export]"') from None
    time_axis = 1 if plain.rnn.batch_first else 0
    batch_axis = 1 - time_axis
    inputs_named, outputs_named = names(plain)
    dynamic: dict[str, dict[int, str]] = {"input": {batch_axis: "batch", time_axis: "time"}}
    dynamic |= {name: {1: "batch"} for name in inputs_named[1:] + outputs_named[1:]}
    dynamic["output"] = {0: "batch"} if plain.last else {batch_axis: "batch", time_axis: "time"}
    with warnings.catch_warnings():
        # the exporter warns that a batch size other than the example's needs dynamic_axes (given) and
        # that the legacy exporter is deprecated (it is the one that keeps time dynamic for RNNs)
        warnings.simplefilter("ignore")
        torch.onnx.export(
            plain,
            inputs,
            str(path),
            input_names=inputs_named,
            output_names=outputs_named,
            dynamic_axes=dynamic,
            opset_version=opset,
            dynamo=False,
        )


__all__ = ["FORMATS", "Plain", "PlainLSTM", "PlainRNN", "example_inputs", "export", "plain_torch", "verify"]
