"""Validation: the task's loss and metrics over its validation batches, and the best result so far."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.numerics import flush_denormals
from rnnlab.tasks.base import Batch, Task
from rnnlab.training import tbptt
from rnnlab.training.config import EvalConfig


def evaluate(
    model: nn.Module,
    task: Task,
    device: torch.device | str | None = None,
    stateful: bool = False,
    *,
    flush_denormal: bool = True,
    split: str = "val",
    batches: Iterable[Batch] | None = None,
) -> dict[str, float]:
    """Loss and metrics averaged over the task's validation sequences, or its test sequences with
    `split="test"`, or the `batches` given (a file's, `Task.input_batches`); {} without such batches.

    Whole sequences, no gradient, the model in eval mode (restored after); `device` defaults to the model's;
    a task with a `predict(model, batch)` makes its own predictions (a recursive forecast rolls the model
    forward on its own outputs), as training never does;
    `stateful` carries the state across the batches of a stream as training does. For per-step outputs
    the averages are over the valid steps (padding past each length is left out), else over sequences.
    Denormals are flushed to zero meanwhile (`rnnlab.flush_denormals`; the caller's setting is restored).

    Example:
        >>> rnnlab.evaluate(model, task)
        {'loss': 6.4e-05, 'mae': 0.0062}
    """
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    count = 0
    carry = tbptt.Carry()
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    if batches is None:
        batches = task.val_batches() if split == "val" else task.test_batches()
    with torch.no_grad(), flush_denormals(flush_denormal):
        for i, batch in enumerate(batches):
            where = f"{'validation' if split == 'val' else 'test'} batch {i}"
            tbptt.check_batch(batch, where, getattr(task, "vocab_size", None))
            batch = batch.to(device)
            if not stateful:
                carry = tbptt.Carry()
            elif batch.reset is not None and carry.state is not None:
                carry = tbptt.Carry(tbptt.reset_rows(carry.state, batch.reset))
            y, carry = outputs(model, task, batch, carry)
            targets = batch.targets
            if task.output == "sequence":  # the valid steps, as one (1, N, ·) sequence
                y, targets = tbptt.valid_steps(y, targets, batch.lengths)
                weight = y.shape[0] * y.shape[1]
            else:
                weight = y.shape[0]
            if weight == 0:
                continue
            values = {"loss": float(task.loss(y, targets)), **task.metrics(y, targets)}
            for name, value in values.items():
                totals[name] = totals.get(name, 0.0) + value * weight
            count += weight
    model.train(was_training)
    return {name: total / count for name, total in totals.items()} if count else {}


def outputs(
    model: nn.Module, task: Task, batch: Any, carry: tbptt.Carry | None = None
) -> tuple[Any, tbptt.Carry]:
    """The model's outputs for an evaluation batch: the task's own way of predicting when it has one
    (`predict(model, batch)`, e.g. a forecast that feeds the model its own predictions), else the forward."""
    carry = carry or tbptt.Carry()
    predict = getattr(task, "predict", None)
    if callable(predict):
        return predict(model, batch), carry
    return tbptt.forward(
        model,
        batch.inputs,
        carry,
        context=0,
        output=task.output,
        end=True,
        lengths=batch.lengths,
    )


def check_metric(model: nn.Module, task: Task, device: torch.device, config: EvalConfig) -> None:
    """A ConfigError now, before the run starts, if the task does not report `config.metric`: the task's
    metrics on its first validation batch (no gradient, eval mode, so no random number is drawn)."""
    batch = next(iter(task.val_batches()), None)
    if config.metric == "loss" or batch is None:
        return
    was_training = model.training
    model.eval()
    with torch.no_grad():
        y, _ = outputs(model, task, batch.to(device))
        Best(config).update({"loss": 0.0, **task.metrics(y, batch.targets)}, 0)  # raises if it is missing
    model.train(was_training)


class Best:
    """The best value of the validation metric `config.metric` so far, and when to stop early."""

    def __init__(self, config: EvalConfig) -> None:
        self.config = config
        self.value: float | None = None
        self.step = 0
        self.since = 0  # evaluations without improvement
        self.solved: int | None = None  # the first step whose evaluation reached config.target

    def update(self, metrics: dict[str, float], step: int) -> bool:
        """Record one evaluation; True when it is the best so far."""
        name = self.config.metric
        if name not in metrics:
            raise ConfigError(
                f"eval.metric: {name!r} is not reported by this task; it reports {', '.join(metrics)}"
            )
        value = metrics[name]
        target = self.config.target
        if target is not None and self.solved is None:
            if value <= target if self.config.mode == "min" else value >= target:
                self.solved = step
        sign = 1.0 if self.config.mode == "min" else -1.0
        if self.value is None or sign * (self.value - value) > self.config.min_delta:
            self.value, self.step, self.since = value, step, 0
            return True
        self.since += 1
        return False

    @property
    def should_stop(self) -> bool:
        return bool(self.config.patience) and self.since >= self.config.patience

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value, "step": self.step, "since": self.since, "solved": self.solved}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value, self.step, self.since = state["value"], int(state["step"]), int(state["since"])
        self.solved = state.get("solved")  # absent from checkpoints written before eval.target existed
