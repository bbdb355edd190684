"""The objects of a run, built from its config: seeds, device, model, optimiser, learning-rate schedule.

A model is sized before it is built: one whose weights and gradients would not fit in this machine's
memory is a ConfigError giving its estimated size (`model_bytes`), not an allocation failure. A resumed
run rebuilds the optimiser and schedule from its (possibly changed) config and restores their state from
the checkpoint; `set_hyper_parameters` and `resume_schedule` then put the config's values on top.
"""

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
from rnnlab.cells import CELLS, Cell, cell_type
from rnnlab.errors import ConfigError
from rnnlab.models import RECORDED_CELL_OPTIONS, SequenceModel, cell_options
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


def build_model(config: ModelConfig, task: Any) -> Any:
    """A SequenceModel shaped for `task` (input_size, output_size, output) with every `[model]` option;
    for a task whose inputs are tokens (`task.vocab_size` set), an embedding of `model.embedding_dim`
    features per token in front of the encoder. A task whose model is another kind builds it
    (`task.build_model(config)`: the seq2seq task's encoder-decoder).

    An option the chosen cell does not have (`nonlinearity` for lstm, `recurrent_max` for gru) and an
    unknown initialiser are ConfigErrors naming the field."""
    own = getattr(task, "build_model", None)
    if callable(own):
        return own(config)
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
    for name in RECORDED_CELL_OPTIONS:
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
    vocab_size = getattr(task, "vocab_size", None)
    if vocab_size is not None:
        options |= {"vocab_size": vocab_size, "embedding_dropout": config.embedding_dropout}
    _check_size(config, cell, task)
    try:
        return SequenceModel(
            task.input_size if vocab_size is None else config.embedding_dim,
            config.hidden_size,
            task.output_size,
            cell=cell,
            output=task.output,
            **options,
        )
    except ValueError as e:  # a combination the layer refuses, e.g. forget_bias on a cell without gates
        raise ConfigError(f"model: {e}") from None


def model_parameters(
    config: ModelConfig, input_size: int, output_size: int, vocab_size: int | None = None
) -> int | None:
    """The parameter count of the SequenceModel `config` describes, computed from its cells' parameter
    shapes without building it (None for a cell whose shapes cannot be had so). With `vocab_size` the
    model embeds tokens: the embedding's vocab_size × embedding_dim weights, and the encoder reads
    embedding_dim features (`input_size` is then not used)."""
    cell = cell_type(config.cell)
    H, D = config.hidden_size, 2 if config.bidirectional else 1
    total = (H * D + 1) * output_size  # the linear head
    if vocab_size is not None:
        total += vocab_size * config.embedding_dim
        input_size = config.embedding_dim
    for layer in range(config.num_layers):
        bare = Cell.__new__(cell)  # attributes only: no parameters allocated
        bare.input_size, bare.hidden_size, bare.bias = (input_size if layer == 0 else H * D), H, config.bias
        try:
            shapes = bare.parameter_shapes()
        except Exception:  # a registered cell whose shapes need more of its __init__
            return None
        total += D * sum(math.prod(shape) for shape in shapes.values())
    return total


def memory_bytes() -> int | None:
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _check_size(config: ModelConfig, cell: type[Cell], task: Any) -> None:
    """A ConfigError naming model.hidden_size when the weights and their gradients, the least that
    training holds, would not fit in memory (the model is built on the CPU first, whatever the device)."""
    count = model_parameters(config, task.input_size, task.output_size, getattr(task, "vocab_size", None))
    memory = memory_bytes()
    if count is None or memory is None:
        return
    size = count * torch.tensor([], dtype=torch.get_default_dtype()).element_size()
    if 2 * size > memory:
        raise ConfigError(
            f"model.hidden_size: a {config.cell} model of {config.num_layers} layer(s) of "
            f"{config.hidden_size} units has about {count:.3g} parameters, {size:.3g} bytes, twice that "
            f"with their gradients; this machine has {memory:.3g} bytes of memory"
        )


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
    if getattr(scheduler, "_step_count", 1) > 1:  # torch's warning below can only come at its first step
        scheduler.step()
        return
    with warnings.catch_warnings():  # torch warns if a skipped step comes first; the order is meant
        warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler.step\(\)` before", UserWarning)
        scheduler.step()


def scale_lr(optimizer: torch.optim.Optimizer, scheduler: Scheduler, factor: float) -> None:
    """Multiply the learning rate by `factor` for the rest of the run (the schedule's base too)."""
    for group in optimizer.param_groups:
        group["lr"] *= factor
    if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
        scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]


#: config fields of the optimisers' hyper-parameters -> their key in torch's param_groups (lr apart).
HYPER_PARAMETERS = ("weight_decay", "betas", "eps", "momentum", "alpha", "nesterov")


def set_hyper_parameters(optimizer: torch.optim.Optimizer, config: OptimConfig) -> None:
    """Put `config`'s hyper-parameters (all but the learning rate, which the schedule owns) on an optimiser
    whose state was loaded from a checkpoint, which brings those of the run that saved it."""
    for group in optimizer.param_groups:
        for key in HYPER_PARAMETERS:
            if key in group:
                value = getattr(config, key)
                group[key] = tuple(value) if isinstance(value, list | tuple) else value


def resume_schedule(
    optimizer: torch.optim.Optimizer,
    scheduler: Scheduler,
    config: ScheduleConfig,
    lr: float | None,
    step: int,
) -> None:
    """Continue the learning rate at `step` as `config` says, on top of the state restored (or, for another
    kind of schedule than the checkpoint's, made fresh); `lr` is a new base learning rate, None to keep
    the run's (its rollbacks included).

    A step or cosine schedule (LambdaLR) takes its factor function from `config`, so the lr of the next
    step is base × factor(step), computed as `LambdaLR.step` computes it; the plateau schedule takes
    `factor` and `patience` from `config` and keeps its count of evaluations without improvement."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.factor, scheduler.patience = config.factor, config.patience
        for group in optimizer.param_groups:
            group["lr"] = group["lr"] if lr is None else lr
        return
    if lr is not None:
        scheduler.base_lrs = [lr for _ in optimizer.param_groups]
        for group in optimizer.param_groups:
            group["initial_lr"] = lr
    scheduler.last_epoch = step
    for group, fn, base in zip(optimizer.param_groups, scheduler.lr_lambdas, scheduler.base_lrs, strict=True):
        group["lr"] = base * fn(step)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
