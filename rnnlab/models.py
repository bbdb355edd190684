"""SequenceModel: a recurrent encoder and a linear head `y_t = W_y h_t + b_y`, one line per task."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from rnnlab.cells import Cell, cell_type
from rnnlab.layers import Recurrent


class SequenceModel(nn.Module):
    """Stacked recurrent encoder plus a linear read-out.

    Args:
        input_size: features per step.
        hidden_size: units per layer (and direction).
        output_size: outputs per prediction (classes, regression targets, or horizon × features).
        cell: "lstm", "gru", "rnn", "layernorm_lstm", "layernorm_gru", "indrnn" or a `Cell` class.
        output: "last" (many-to-one: one prediction per sequence, from each sequence's own last step)
            or "sequence" (many-to-many: one per step).
        batch_first: inputs are (B, T, I) when True (the default here, as in most data pipelines).
        **layer_options: num_layers, dropout, bidirectional, init, forget_bias, chrono, spectral_radius,
            execution, nonlinearity, ... as for `rnnlab.Recurrent`.

    Shape:
        x (B, T, I) (or (T, B, I) with batch_first=False); lengths (B,) optional.
        Returns (B, output_size) for output="last", else (B, T, output_size) (time-major if not batch_first).

    Example:
        >>> model = SequenceModel(1, 50, 1, cell="rnn")          # Keras' SimpleRNN(50) + Dense(1)
        >>> model(torch.randn(32, 10, 1)).shape
        torch.Size([32, 1])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        cell: str | type[Cell] = "lstm",
        output: Literal["last", "sequence"] = "last",
        batch_first: bool = True,
        **layer_options: Any,
    ) -> None:
        super().__init__()
        if output not in ("last", "sequence"):
            raise ValueError(f"output must be 'last' or 'sequence', got {output!r}")
        if output_size <= 0:
            raise ValueError(f"output_size must be positive, got {output_size}")
        self.output = output
        self.batch_first = batch_first
        self.encoder = Recurrent(
            cell_type(cell), input_size, hidden_size, batch_first=batch_first, **layer_options
        )
        self.head = nn.Linear(hidden_size * self.encoder.num_directions, output_size)

    def forward(self, x: Tensor, lengths: Tensor | None = None, state: Any = None) -> Tensor:
        return self.forward_with_state(x, state, lengths)[0]

    def forward_with_state(
        self, x: Tensor, state: Any = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, Any]:
        """`forward` that also returns the encoder's final state, `h_n` or `(h_n, c_n)` as torch gives it, so
        truncated BPTT can carry it (detached) into the next chunk: `y, s = m.forward_with_state(x, s)`."""
        out, final = self.encoder(x, state, lengths=lengths)
        if self.output == "sequence":
            return self.head(out), final  # (B, T, O) or (T, B, O)
        h_n = final[0] if isinstance(final, tuple) else final  # (L*D, B, H)
        last = h_n[-self.encoder.num_directions :]  # the top layer's final state in each direction
        return self.head(torch.cat(tuple(last), dim=-1)), final  # (B, O)
