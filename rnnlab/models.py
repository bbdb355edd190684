"""SequenceModel: a recurrent encoder and a linear head `y_t = W_y h_t + b_y`, one line per task; for token
inputs, an embedding in front."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells import CELLS, Cell, cell_type
from rnnlab.layers import Recurrent

#: the cell options that `[model]` (`rnnlab.training.ModelConfig`) has fields for.
RECORDED_CELL_OPTIONS = ("nonlinearity", "recurrent_max", "orthogonal_map")


def cell_options(cell: type[Cell]) -> tuple[str, ...]:
    """The options a cell class takes beyond (input_size, hidden_size, bias), read from its signature:
    ("nonlinearity",) for RNNCell, ("nonlinearity", "recurrent_max") for IndRNNCell, () for LSTMCell."""
    skip = {"self", "input_size", "hidden_size", "bias", "device", "dtype"}
    params = inspect.signature(cell.__init__).parameters.values()
    return tuple(
        p.name for p in params if p.name not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )


class SequenceModel(nn.Module):
    """Stacked recurrent encoder plus a linear read-out, behind a token embedding when `vocab_size` is given.

    Token inputs: with `vocab_size` V the model reads int64 ids (B, T) and looks each up in
    `nn.Embedding(V, input_size, padding_idx=0)`, so `input_size` is the embedding's size. Id 0 is the
    padding: its embedding is zero and receives no gradient (the layer stops at each row's length anyway).
    `embedding_dropout` zeroes embedding entries in training (`F.dropout`).

    Args:
        input_size: features per step (with `vocab_size`: the size of each token's embedding).
        hidden_size: units per layer (and direction).
        output_size: outputs per prediction (classes, regression targets, or horizon × features).
        cell: "lstm", "gru", "rnn", "layernorm_lstm", "layernorm_gru", "indrnn" or a `Cell` class.
        output: "last" (many-to-one: one prediction per sequence, from each sequence's own last step)
            or "sequence" (many-to-many: one per step).
        batch_first: inputs are (B, T, I) when True (the default here, as in most data pipelines).
        vocab_size: token ids run from 0 (the padding) to vocab_size - 1; None: the inputs are features.
        embedding_dropout: the dropout probability on the embeddings (with `vocab_size` only).
        **layer_options: num_layers, bias, dropout, bidirectional, init, forget_bias, chrono,
            spectral_radius, execution, nonlinearity, recurrent_max, ... as for `rnnlab.Recurrent`.

    Shape:
        x (B, T, I) (or (T, B, I) with batch_first=False), or int64 ids (B, T) (or (T, B)) with `vocab_size`;
        state as `rnnlab.Recurrent` takes it, optional;
        lengths (B,) optional. Returns (B, output_size) for output="last", else (B, T, output_size)
        (time-major if not batch_first).

    Example:
        >>> model = SequenceModel(1, 50, 1, cell="rnn")          # Keras' SimpleRNN(50) + Dense(1)
        >>> model(torch.randn(32, 10, 1)).shape
        torch.Size([32, 1])
        >>> model.settings()["cell"], model.settings()["hidden_size"]
        ('rnn', 50)
        >>> words = SequenceModel(64, 128, 2, cell="gru", vocab_size=20000)   # ids -> 64-d vectors -> GRU
        >>> words(torch.randint(0, 20000, (32, 40))).shape
        torch.Size([32, 2])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        cell: str | type[Cell] = "lstm",
        output: Literal["last", "sequence"] = "last",
        batch_first: bool = True,
        vocab_size: int | None = None,
        embedding_dropout: float = 0.0,
        **layer_options: Any,
    ) -> None:
        super().__init__()
        if output not in ("last", "sequence"):
            raise ValueError(f"output must be 'last' or 'sequence', got {output!r}")
        if output_size <= 0:
            raise ValueError(f"output_size must be positive, got {output_size}")
        if vocab_size is not None and vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2 (the padding 0 and a token), got {vocab_size}")
        if not 0 <= embedding_dropout < 1:
            raise ValueError(f"embedding_dropout must be in [0, 1), got {embedding_dropout}")
        if embedding_dropout and vocab_size is None:
            raise ValueError("embedding_dropout needs vocab_size: there is no embedding without it")
        self.output = output
        self.batch_first = batch_first
        self.vocab_size, self.embedding_dropout = vocab_size, float(embedding_dropout)
        self.embedding = None if vocab_size is None else nn.Embedding(vocab_size, input_size, padding_idx=0)
        self.encoder = Recurrent(
            cell_type(cell), input_size, hidden_size, batch_first=batch_first, **layer_options
        )
        self.head = nn.Linear(hidden_size * self.encoder.num_directions, output_size)

    def forward(self, x: Tensor, state: Any = None, lengths: Tensor | None = None) -> Tensor:
        return self.forward_with_state(x, state, lengths)[0]

    def forward_with_state(
        self, x: Tensor, state: Any = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, Any]:
        """`forward` that also returns the encoder's final state, `h_n` or `(h_n, c_n)` as torch gives it, so
        truncated BPTT can carry it (detached) into the next chunk: `y, s = m.forward_with_state(x, s)`."""
        if self.embedding is not None:
            x = self.embedding(token_ids(x, self.embedding.num_embeddings))  # (B, T) ids -> (B, T, E)
            x = F.dropout(x, self.embedding_dropout, self.training)
        out, final = self.encoder(x, state, lengths=lengths)
        if self.output == "sequence":
            return self.head(out), final  # (B, T, O) or (T, B, O)
        h_n = final[0] if isinstance(final, tuple) else final  # (L*D, B, H)
        last = h_n[-self.encoder.num_directions :]  # the top layer's final state in each direction
        return self.head(torch.cat(tuple(last), dim=-1)), final  # (B, O)

    # ------------------------------------------------------------------------------------------- settings

    def settings(self) -> dict[str, Any]:
        """The options this model was built with, as `[model]` settings (keys of `rnnlab.ModelConfig`; an
        option that does not apply, like an LSTM's nonlinearity, is left out), so that
        `build_model(ModelConfig(**model.settings()), task)` builds the same model.

        An option that a TOML file cannot hold (a `Cell` class not in `rnnlab.cells.CELLS`, a callable
        initialiser) is left out too, and named with the reason in `unrecorded_settings()`.
        """
        return self._record()[0]

    def unrecorded_settings(self) -> dict[str, str]:
        """Option -> why `settings()` leaves it out: {} when the settings describe this model fully."""
        return self._record()[1]

    def _record(self) -> tuple[dict[str, Any], dict[str, str]]:
        enc = self.encoder
        opts = {**enc.init_options, **enc.cell_options}  # as given to the layer
        cls = type(enc.cell)
        names = [name for name, c in CELLS.items() if c is cls]
        out: dict[str, Any] = {}
        missing: dict[str, str] = {}
        if names:
            out["cell"] = names[0]
        else:
            missing["cell"] = (
                f"the Cell class {cls.__module__}.{cls.__qualname__} is not in rnnlab.cells.CELLS"
            )
        out |= {
            "hidden_size": enc.hidden_size,
            "num_layers": enc.num_layers,
            "bias": bool(enc.bias),
            "dropout": float(enc.dropout),
            "bidirectional": bool(enc.bidirectional),
        }
        if self.embedding is not None:
            out["embedding_dim"] = self.embedding.embedding_dim
            out["embedding_dropout"] = self.embedding_dropout
        out |= _init_settings(opts.get("init"), missing)
        for name in ("forget_bias", "chrono", "spectral_radius"):
            if opts.get(name) is not None:
                out[name] = float(opts[name])
        for name in cell_options(cls):
            if name in RECORDED_CELL_OPTIONS:
                out[name] = getattr(enc.cell, name)
            elif name in opts:
                missing[name] = f"a cell option that [model] has no field for ({opts[name]!r})"
        out["execution"] = enc.execution
        return out, missing


def token_ids(x: Tensor, vocab_size: int) -> Tensor:
    """`x`, checked to be int64 token ids (B, T) or (T, B) (or (T,) unbatched), each in [0, vocab_size)."""
    if x.dtype != torch.int64 or x.dim() not in (1, 2):
        raise ValueError(
            f"a model with vocab_size reads int64 token ids (batch, time), got {x.dtype} of shape "
            f"{tuple(x.shape)}"
        )
    outside = (x < 0) | (x >= vocab_size)
    if bool(outside.any()):
        raise ValueError(f"token id {int(x[outside][0])} is outside [0, {vocab_size}) (the vocab_size)")
    return x


def _init_settings(spec: Any, missing: dict[str, str]) -> dict[str, str]:
    """`init`, `input_init` and `recurrent_init` from the `init` argument; a callable goes to `missing`."""

    def name(value: Any, key: str) -> str | None:
        if isinstance(value, str):
            return value
        missing[key] = f"a Python callable ({getattr(value, '__qualname__', repr(value))})"
        return None

    if spec is None:
        return {"init": "default"}
    if isinstance(spec, Mapping):
        out = {"init": "default"}
        for part in ("input", "recurrent"):
            value = name(spec.get(part, "default"), f"{part}_init")
            if value is not None:
                out[f"{part}_init"] = value
        return out
    value = name(spec, "init")
    return {} if value is None else {"init": value}
