"""Typed settings: the `option` field helper behind every config dataclass (training's and the tasks').

    lr: float = option(1e-3, "learning rate", gt=0.0)

A field records its help text and what it allows (choices, inclusive `min`/`max`, exclusive `gt`/`lt`)
in its metadata; `rnnlab.training.config` reads them to generate the CLI flags, check values and word the
errors.
This module imports nothing from rnnlab, so the tasks and the training code can both build on it.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any


def option(
    default: Any,
    help: str,
    *,
    choices: tuple[Any, ...] | None = None,
    min: float | None = None,
    max: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
) -> Any:
    """A dataclass field with its help text and what is allowed (inclusive `min`/`max`, exclusive `gt`/`lt`).
    A number must be finite whatever its bounds."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "gt": gt, "lt": lt}
    return field(default=default, metadata=meta)


__all__ = ["option"]
