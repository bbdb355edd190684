"""The objects of a run, built from its config: seeds, device, model, optimiser, learning-rate schedule."""

from __future__ import annotations

import math
import os
import random
import warnings
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from rnnlab import init as initialisers
from rnnlab.cells import CELLS, cell_type
from rnnlab.errors import ConfigError
from rnnlab.models import SequenceModel, cell_options
from rnnlab.training.config import ModelConfig, OptimConfig, ScheduleConfig

Scheduler = torch.optim.lr_scheduler.LambdaLR | torch.optim.lr_scheduler.ReduceLROnPlateau


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices); optionally allow only deterministic algorithms."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (code beside rnnlab may draw from NumPy's global generator)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when present, else CPU; anything else must be a device torch knows and has."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: expected auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} asked for, but CUDA is not available here (use auto or cpu)")
    return device


def build_model(config: ModelConfig, task: Any) -> SequenceModel:
    """A SequenceModel shaped for `task` (input_size, output_size, output) with every `[model]` option.

    An option the chosen cell does not have (`nonlinearity` for lstm, `recurrent_max` for gru) and an
    unknown initialiser are ConfigErrors naming the field."""
    try:
        cell = cell_type(config.cell)
    except ValueError as e:
        raise ConfigError(f"model.cell: {e}") from None
    options: dict[str, Any] = {
        "num_layers": config.num_layers,
        "bias": config.bias,
        "dropout": config.dropout,
        "bidirectional": config.bidirectional,
        "forget_bias": config.forget_bias,
        "chrono": config.chrono,
        "spectral_radius": config.spectral_radius,
        "execution": config.execution,
    }
    for name in ("nonlinearity", "recurrent_max"):
        value = getattr(config, name)
        if value is None:
            continue  # the cell's own default
        if name not in cell_options(cell):
            having = [n for n, c in CELLS.items() if name in cell_options(c)]
            raise ConfigError(
                f"model.{name}: the {config.cell} cell has no {name} option (cells with one: "
                f"{', '.join(having)}); leave it unset"
            )
        options[name] = value
    for name in ("init", "input_init", "recurrent_init"):
        spec = getattr(config, name)
        if spec:
            try:
                initialisers.resolve(spec)
            except ValueError as e:
                raise ConfigError(f"model.{name}: {e}") from None
    if config.input_init or config.recurrent_init:  # separate initialisers; an empty one is as `init`
        options["init"] = {
            "input": config.input_init or config.init,
            "recurrent": config.recurrent_init or config.init,
        }
    elif config.init != "default":
        options["init"] = config.init
    try:
        return SequenceModel(
            task.input_size,
            config.hidden_size,
            task.output_size,
            cell=cell,
            output=task.output,
            **options,
        )
    except ValueError as e:  # a combination the layer refuses, e.g. forget_bias on a cell without gates
        raise ConfigError(f"model: {e}") from None


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    """The `torch.optim` optimiser named by `config.name` with its hyper-parameters."""
    params, c = model.parameters(), config
    if c.name == "sgd":
        return torch.optim.SGD(
            params, c.lr, momentum=c.momentum, nesterov=c.nesterov, weight_decay=c.weight_decay
        )
    if c.name == "adam":
        return torch.optim.Adam(params, c.lr, betas=c.betas, eps=c.eps, weight_decay=c.weight_decay)
    if c.name == "adamw":
        return torch.optim.AdamW(params, c.lr, betas=c.betas, eps=c.eps, weight_decay=c.weight_decay)
    if c.name == "rmsprop":
        return torch.optim.RMSprop(
            params, c.lr, alpha=c.alpha, eps=c.eps, weight_decay=c.weight_decay, momentum=c.momentum
        )
    raise ConfigError(f"optim.name: unknown optimiser {c.name!r}")


def lr_factor(config: ScheduleConfig, steps: int) -> Any:
    """step -> factor on the base learning rate, for the step and cosine schedules (with linear warm-up)."""
    c = config
    total = c.total_steps or steps

    def factor(step: int) -> float:
        if step < c.warmup_steps:
            return (step + 1) / c.warmup_steps
        if c.name == "step":
            return c.gamma ** (step // c.step_size)
        if c.name == "cosine":
            progress = min(1.0, (step - c.warmup_steps) / max(1, total - c.warmup_steps))
            return c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: ScheduleConfig, steps: int, mode: str
) -> Scheduler:
    """The learning-rate schedule, stepped once per update (`plateau`: once per evaluation, by `mode`)."""
    if config.name == "plateau":
        direction: Literal["min", "max"] = "max" if mode == "max" else "min"
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=direction, factor=config.factor, patience=config.patience
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, steps))


def step_schedule(scheduler: Scheduler) -> None:
    """Step the schedule once per step, skipped steps included, so that it follows the step counter."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        return  # stepped by the validation metric instead
    with warnings.catch_warnings():  # torch warns if a skipped step comes first; the order is meant
        warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler.step\(\)` before", UserWarning)
        scheduler.step()


def scale_lr(optimizer: torch.optim.Optimizer, scheduler: Scheduler, factor: float) -> None:
    """Multiply the learning rate by `factor` for the rest of the run (the schedule's base too)."""
    for group in optimizer.param_groups:
        group["lr"] *= factor
    if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
        scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
