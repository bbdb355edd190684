"""Non-finite guard: a NaN/Inf loss or gradient skips the update; too many in a row roll the run back.

One bad step (an overflow, a spike) should not poison the weights or the optimiser's moments, so it is
skipped and recorded. Several in a row mean the run itself has gone wrong: the loop then reloads the last
checkpoint (which never holds non-finite weights) and lowers the learning rate. Weights that turn
non-finite all the same (an update with a finite gradient that overflows) roll back as soon as an
evaluation or a checkpoint finds them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from rnnlab.errors import DivergedError
from rnnlab.training.config import GuardConfig


def nonfinite_grads(model: nn.Module) -> list[str]:
    """Names of the parameters whose gradient holds a NaN or Inf."""
    return [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]


def nonfinite_weights(model: nn.Module) -> list[str]:
    """Names of the parameters that hold a NaN or Inf (an update with a finite gradient can overflow)."""
    return [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]


class Guard:
    """Counts non-finite steps and says when to roll back."""

    def __init__(self, config: GuardConfig) -> None:
        self.config = config
        self.in_a_row = 0
        self.skipped = 0
        self.rollbacks = 0

    def check(self, loss: float, norm: float, model: nn.Module) -> dict[str, Any] | None:
        """None when the loss and the global gradient norm are finite, else a record of what was not."""
        loss_ok, grad_ok = math.isfinite(loss), math.isfinite(norm)
        if loss_ok and grad_ok:
            self.in_a_row = 0
            return None
        self.in_a_row += 1
        self.skipped += 1
        return {
            "loss": loss if loss_ok else str(loss),
            "parameters": [] if grad_ok else nonfinite_grads(model),
            "in_a_row": self.in_a_row,
        }

    def should_roll_back(self) -> bool:
        return self.in_a_row >= self.config.max_consecutive

    def rolled_back(self) -> None:
        """Count a rollback; raise DivergedError when none is left."""
        self.rollbacks += 1
        self.in_a_row = 0
        if self.rollbacks > self.config.max_rollbacks:
            raise DivergedError(
                f"training diverged: non-finite loss or gradients persisted after "
                f"{self.config.max_rollbacks} rollbacks (guard.max_rollbacks); lower optim.lr or clip"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"in_a_row": self.in_a_row, "skipped": self.skipped, "rollbacks": self.rollbacks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.in_a_row, self.skipped, self.rollbacks = (
            int(state[k]) for k in ("in_a_row", "skipped", "rollbacks")
        )
