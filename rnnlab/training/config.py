"""Training configuration: typed dataclasses, read from TOML, overridden by `key=value`, validated.

    steps = 2000                 TrainConfig.steps          --steps=2000
    [optim]
    name = "adamw"               TrainConfig.optim.name     --optim.name=adamw
    lr = 3e-4                    TrainConfig.optim.lr       --optim.lr=3e-4

Every field is declared with `rnnlab.settings.option(default, help, ...)`, which also records its allowed
values and range, so the CLI flags, the TOML reader and the error messages all come from the dataclasses
below (and the [task] section, whose fields are the `Settings` of the task it names: the tasks own their
settings, see `rnnlab.tasks.config`). An unknown key, a wrong type
or a value out of range raises `ConfigError` naming the field and what is allowed. Every number must be
finite (no NaN or Inf), and a TOML file must give each value its type (`steps = "5"` is an error; the
command line's values are text, read as TOML literals).

Bounds that are not about meaning but about arithmetic: the numbers that scale the weights or their updates
(`optim.lr`, `optim.weight_decay`, `optim.eps`, `clip.max_value`, `model.recurrent_max`) are at most `BIG`
= 1e6. That is orders of magnitude past any setting that trains (word_language_model's SGD uses lr 20),
and small enough that no optimiser overflows float32 (3.4e38) when it multiplies them by its own factors
(Adam's lr / (1 - β₁ᵗ) for any β₁ < 1); torch fails with a traceback there. The initialisers' numbers are
bounded where larger ones change nothing or overflow the weights: `|forget_bias| <= 100` (sigmoid(100) is 1
in float32 already), `spectral_radius <= 100` (ρᵗ overflows float32 within 20 steps), `chrono <= 1e9`
steps.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import types
import typing
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from rnnlab.cells import CELLS, ORTHOGONAL_MAPS
from rnnlab.errors import ConfigError
from rnnlab.layers import EXECUTIONS
from rnnlab.settings import option
from rnnlab.tasks import TASKS, SineTask, TaskConfig, task_settings

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")

#: the bound on the numbers that scale the weights or their updates (see the module docstring).
BIG = 1e6


@dataclass
class ModelConfig:
    """The `rnnlab.SequenceModel` to build (`build_model`); every option of the model has a field here."""

    cell: str = option("lstm", "cell type", choices=tuple(CELLS))
    hidden_size: int = option(32, "units per layer", min=1)
    num_layers: int = option(1, "stacked layers", min=1)
    bias: bool = option(True, "bias parameters in every cell")
    dropout: float = option(0.0, "dropout between layers", min=0.0, max=0.99)
    bidirectional: bool = option(False, "run a second layer over reversed time")
    embedding_dim: int = option(64, "size of the token embedding, for tasks whose inputs are tokens", min=1)
    embedding_dropout: float = option(
        0.0, "dropout on the token embeddings, for tasks whose inputs are tokens", min=0.0, max=0.99
    )
    init: str = option(
        "default", "weight initialiser (orthogonal, xavier_uniform, identity, normal(0.01), ...)"
    )
    input_init: str = option("", "initialiser of the input weights W_ih (empty: as init)")
    recurrent_init: str = option("", "initialiser of the recurrent weights W_hh (empty: as init)")
    forget_bias: float | None = option(
        None, "initial bias of the gate that keeps the past (LSTM f, GRU z)", min=-100.0, max=100.0
    )
    chrono: float | None = option(
        None, "chrono initialisation of that gate for dependencies up to this many steps", gt=2.0, max=1e9
    )
    spectral_radius: float | None = option(
        None, "rescale recurrent weights to this spectral radius", gt=0.0, max=100.0
    )
    nonlinearity: str | None = option(
        None,
        "activation of rnn and indrnn cells (none: the cell's own, tanh for rnn, relu for indrnn)",
        choices=("tanh", "relu"),
    )
    recurrent_max: float | None = option(
        None, "bound on |recurrent weight| of indrnn cells (none: the cell's default)", gt=0.0, max=BIG
    )
    orthogonal_map: str | None = option(
        None,
        "how orthogonal cells keep W_hh orthogonal (none: the cell's default, matrix_exp)",
        choices=ORTHOGONAL_MAPS,
    )
    execution: str = option(
        "auto", "torch's fused kernel when nothing watches, or the unrolled scan", choices=EXECUTIONS
    )


@dataclass
class OptimConfig:
    name: str = option("adam", "optimiser from torch.optim", choices=OPTIMIZERS)
    lr: float = option(1e-3, "learning rate", gt=0.0, max=BIG)
    weight_decay: float = option(0.0, "L2 penalty (decoupled for adamw)", min=0.0, max=BIG)
    momentum: float = option(0.0, "momentum (sgd, rmsprop)", min=0.0, max=1.0)
    nesterov: bool = option(False, "Nesterov momentum (sgd; needs momentum > 0)")
    betas: tuple[float, float] = option((0.9, 0.999), "Adam's averaging coefficients", min=0.0, lt=1.0)
    eps: float = option(1e-8, "added to denominators (adam, adamw, rmsprop)", gt=0.0, max=BIG)
    alpha: float = option(0.99, "smoothing constant (rmsprop)", min=0.0, max=1.0)


@dataclass
class ScheduleConfig:
    name: str = option(
        "constant", "learning-rate schedule", choices=("constant", "step", "cosine", "plateau")
    )
    warmup_steps: int = option(0, "linear warm-up from 0 (step, cosine)", min=0)
    step_size: int = option(1000, "steps between decays (step)", min=1)
    gamma: float = option(0.1, "decay factor (step)", gt=0.0, max=1.0)
    total_steps: int = option(0, "length of the cosine (0: the run's steps)", min=0)
    min_lr_ratio: float = option(0.0, "final lr / initial lr (cosine)", min=0.0, max=1.0)
    factor: float = option(0.5, "lr factor on a plateau of the validation loss (plateau)", gt=0.0, max=0.99)
    patience: int = option(3, "evaluations without improvement before lowering the lr (plateau)", min=0)


@dataclass
class BPTTConfig:
    mode: str = option(
        "full", "backpropagate through whole sequences or truncate", choices=("full", "truncated")
    )
    k1: int = option(0, "truncated: update every k1 steps (0: the whole sequence)", min=0)
    k2: int = option(0, "truncated: backpropagate k2 steps, k2 >= k1 (0: k2 = k1)", min=0)
    stateful: bool = option(False, "carry the state across consecutive batches of a stream")


@dataclass
class ClipConfig:
    mode: str = option("none", "gradient clipping", choices=("none", "value", "norm", "adaptive"))
    max_norm: float = option(1.0, "global-norm threshold (norm)", gt=0.0)
    max_value: float = option(1.0, "bound on every gradient entry (value)", gt=0.0, max=BIG)
    multiple: float = option(2.0, "threshold = multiple x running mean of the norm (adaptive)", gt=0.0)
    beta: float = option(0.98, "decay of that running mean (adaptive)", min=0.0, max=0.9999)


@dataclass
class GuardConfig:
    max_consecutive: int = option(
        3, "non-finite steps in a row before rolling back to the last checkpoint", min=1
    )
    lr_factor: float = option(0.5, "learning-rate factor applied at each rollback", gt=0.0, max=1.0)
    max_rollbacks: int = option(5, "rollbacks before giving up with an error", min=0)


@dataclass
class EvalConfig:
    every: int = option(100, "evaluate on the validation batches every N steps (0: only at the end)", min=0)
    metric: str = option("loss", "validation metric for the best checkpoint and early stopping")
    mode: str = option("min", "whether smaller or larger is better", choices=("min", "max"))
    patience: int = option(0, "evaluations without improvement before stopping (0: never stop early)", min=0)
    min_delta: float = option(0.0, "smallest change that counts as an improvement", min=0.0)
    target: float | None = option(
        None, "stop when the validation metric reaches this (<= for mode min, >= for max): 'solved at step N'"
    )
    restore_best: bool = option(
        False,
        "at the end, go back to the weights of the best validation result before scoring the test split",
    )


@dataclass
class CheckpointConfig:
    every: int = option(100, "write a checkpoint every N steps (and at the end)", min=1)
    keep: int = option(3, "most recent checkpoints kept (plus the best)", min=1)


@dataclass
class DiagnosticsConfig:
    every: int = option(
        0,
        "probe the gradient flow at the first step and every N steps into diagnostics.jsonl (0: never)",
        min=0,
    )
    jacobian: bool = option(True, "add the Jacobian analysis to each probe: growth per step, memory horizon")
    plots: bool = option(True, "draw the diagnostics figures into <run>/diagnostics/ at the end")


@dataclass
class NumericsConfig:
    flush_denormal: bool = option(
        True,
        "flush denormal floats to zero on the CPU during the run (a vanishing gradient is then ~10x faster "
        "on x86; the caller's setting is restored afterwards)",
    )


@dataclass
class DistributedConfig:
    timeout_s: float = option(
        600.0,
        "under torchrun: how long a process waits for the others at a collective before it gives up "
        "(a rank that fails ends the others' wait at once on the CPU)",
        min=1.0,
    )


@dataclass
class TrainConfig:
    """Everything a run needs; saved as the run's `config.toml`.

    [task] and [model] say which task and model the command line builds; `rnnlab.train` given a task and a
    model built in Python writes theirs into the run's config.toml instead (see `training/record.py`)."""

    steps: int = option(1000, "optimiser updates to run (a resumed run continues up to this)", min=1)
    seed: int = option(0, "seed of the model, dropout and data order", min=0)
    device: str = option("auto", "auto (CUDA when present, else CPU), cpu, cuda, cuda:1, ...")
    deterministic: bool = option(False, "use deterministic algorithms only")
    precision: str = option(
        "fp32",
        "the forward's precision: fp32, or autocast to bf16 (CPU, CUDA) or fp16 (CUDA, with a GradScaler)",
        choices=("fp32", "bf16", "fp16"),
    )
    log_every: int = option(1, "write a metrics row every N steps", min=1)
    out: str = option("", "run folder (empty: runs/<task>-<time>)")
    task: TaskConfig = field(default_factory=SineTask.Settings)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    bptt: BPTTConfig = field(default_factory=BPTTConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    numerics: NumericsConfig = field(default_factory=NumericsConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


# ------------------------------------------------------------------------------------------------ fields


def fields(config: Any = None, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field[Any], Any]]:
    """Every leaf field of `config` (a TrainConfig or a section of one; the defaults for None) as
    (dotted name, field, type): ("steps", ...), ("optim.lr", ...), ...; the [task] fields are those of the
    task that `config.task` names."""
    config = TrainConfig() if config is None else config
    hints = _hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            yield from fields(value, prefix + f.name + ".")
        else:
            yield prefix + f.name, f, hints[f.name]


_HINTS: weakref.WeakKeyDictionary[type, dict[str, Any]] = weakref.WeakKeyDictionary()


def _hints(cls: type) -> dict[str, Any]:
    """`typing.get_type_hints(cls)`, once per class: evaluating the string annotations costs ~0.1 s a
    config, which every run pays several times (config.toml, each checkpoint's record of it)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _type_name(tp: Any) -> str:
    args = typing.get_args(tp)
    if _is_optional(tp):
        return f"{_type_name(next(a for a in args if a is not type(None)))} or none"
    if typing.get_origin(tp) is tuple:
        return f"a list of {len(args)} {_type_name(args[0]).split()[-1]}s"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _is_text(tp: Any) -> bool:
    """Whether a field holds text (str, or str or none)."""
    return tp is str or (_is_optional(tp) and str in typing.get_args(tp))


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def allowed(f: dataclasses.Field[Any], tp: Any) -> str:
    """What a field accepts, in words: 'a number > 0', 'one of: sgd, adam'."""
    m = f.metadata
    if m.get("choices"):
        return "one of: " + ", ".join(map(str, m["choices"])) + (" or none" if _is_optional(tp) else "")
    marks = {"gt": ">", "min": ">=", "max": "<=", "lt": "<"}
    bounds = [f"{mark} {_bound(m[key])}" for key, mark in marks.items() if m.get(key) is not None]
    return " ".join([_type_name(tp), " and ".join(bounds)]).strip()


def _bound(x: float) -> str:
    """A bound as written in a message: 0.0, 0.9999, 100.0, 1e6."""
    return f"{x:.0e}".replace("e+0", "e").replace("e+", "e") if abs(x) >= 1e5 else str(x)


def _coerce(name: str, value: Any, f: dataclasses.Field[Any], tp: Any, text: bool = True) -> Any:
    """`value` as the field's type, checked against its choices and range; a ConfigError otherwise.

    With `text` (the command line) a string for a field that is not text is read as a TOML literal; without
    (a TOML file, Python), it is the wrong type."""

    def bad(why: str = "") -> ConfigError:
        return ConfigError(f"{name}: expected {allowed(f, tp)}, got {value!r}{why}")

    if isinstance(value, str) and _is_optional(tp) and value.lower() in ("none", "null", ""):
        return None  # TOML has no null: the command line's way to unset an optional field
    if isinstance(value, str) and not _is_text(tp) and not text:
        raise bad(" (text: write the value without quotes)")
    if isinstance(value, str) and not _is_text(tp):  # from the command line: a TOML literal
        try:
            value = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            raise bad() from None
    if value is None and _is_optional(tp):
        return None
    if _is_optional(tp):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(tp) is tuple:
        items = typing.get_args(tp)
        if not isinstance(value, list | tuple) or len(value) != len(items):
            raise bad()
        return tuple(_coerce(name, v, f, t, text) for v, t in zip(value, items, strict=True))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if tp is int and isinstance(value, float):
        raise bad(" (write an integer without a decimal point)")
    if type(value) is not tp:
        raise bad()
    if tp is float and not math.isfinite(value):
        raise bad(" (a number must be finite)")
    m = f.metadata
    out_of_range = (
        (m.get("choices") and value not in m["choices"])
        or (m.get("gt") is not None and not value > m["gt"])
        or (m.get("min") is not None and not value >= m["min"])
        or (m.get("max") is not None and not value <= m["max"])
        or (m.get("lt") is not None and not value < m["lt"])
    )
    if out_of_range:
        raise bad()
    return value


# ----------------------------------------------------------------------------------- dict, TOML, overrides

SECTIONS = tuple(
    f.name for f in dataclasses.fields(TrainConfig) if f.default_factory is not dataclasses.MISSING
)


def to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain nested dict of the config, without unset optional fields (TOML has no null)."""
    out: dict[str, Any] = {}
    for name, value in _flatten(dataclasses.asdict(config)):
        if value is not None:
            *section, key = name.split(".")
            target = out.setdefault(section[0], {}) if section else out
            target[key] = list(value) if isinstance(value, tuple) else value
    return out


def from_dict(data: Mapping[str, Any], source: str = "config") -> TrainConfig:
    """A validated TrainConfig from a nested dict (a parsed TOML file); missing fields keep their defaults."""
    for key, value in data.items():
        if key in SECTIONS and not isinstance(value, Mapping):
            raise ConfigError(f"{source}: [{key}] must be a table of settings, got {value!r}")
    return _build(dict(_flatten(data)), source, text=False)


def override(config: TrainConfig, overrides: Mapping[str, Any], source: str = "override") -> TrainConfig:
    """A new config with `{"optim.lr": 3e-4, "steps": "200"}` applied; strings are parsed as TOML values.
    Naming another task (`"task.name"`) starts its [task] settings from that task's defaults."""
    base = dict(_flatten(to_dict(config)))
    if "task.name" in overrides and overrides["task.name"] != config.task.name:
        base = {k: v for k, v in base.items() if not k.startswith("task.")}
    return _build({**base, **overrides}, source)


def with_recipe(recipe: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a task's `recipe` that the user's settings `given` (flat) leave to it: every one not
    given, and none of the recipe's [model] when `given` picks another cell, since the recipe's
    initialisers and sizes were measured with its own."""
    other_cell = "model.cell" in given and given["model.cell"] != recipe.get("model.cell")
    return {k: v for k, v in recipe.items() if k not in given and not (other_cell and k.startswith("model."))}


def compose(given: Mapping[str, Any], source: str = "command line") -> tuple[TrainConfig, dict[str, Any]]:
    """The config of a new run from the user's settings `given` (flat: a config file's and the flags'):
    the defaults, then the recipe of the task named (`Task.recipe`) for each setting not given, then
    `given`. Returns the config and the recipe's settings it used.

    Example:
        >>> config, used = compose({"task.name": "adding", "task.length": "1000", "optim.lr": "1e-3"})
        >>> config.optim.lr, used["model.cell"]
        (0.001, 'lstm')
    """
    task = override(TrainConfig(), given, source).task  # the recipe may depend on the task's settings
    used = with_recipe(TASKS[task.name].recipe_for(task) if task.name in TASKS else {}, given)
    return override(TrainConfig(), {**used, **given}, source), used


def _build(flat: Mapping[str, Any], source: str, text: bool = True) -> TrainConfig:
    config = TrainConfig(task=_task_section(flat, source, text))
    known = {name: (f, tp) for name, f, tp in fields(config)}
    for name, value in flat.items():
        if name not in known:
            raise ConfigError(f"{source}: unknown setting {name!r}; {_suggest(name, known, config)}")
        *section, key = name.split(".")
        target = getattr(config, section[0]) if section else config
        setattr(target, key, _coerce(name, value, *known[name], text=text))
    return validate(config)


def _task_section(flat: Mapping[str, Any], source: str, text: bool) -> TaskConfig:
    """The [task] section `flat` names ("task.name"; the default task without one), before its values are
    set: a registered task's `Settings`, or the recorded values of a task built in Python."""
    name_field = next(f for f in dataclasses.fields(TaskConfig) if f.name == "name")
    name = _coerce("task.name", flat.get("task.name", name_field.default), name_field, str, text)
    if name in TASKS:
        return task_settings(name)
    return task_settings(
        name, **{k[5:]: v for k, v in flat.items() if k.startswith("task.") and k != "task.name"}
    )


def _suggest(name: str, known: Mapping[str, Any], config: TrainConfig) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.8)
    if close:
        return f"did you mean {close[0]!r}?"
    section = name.split(".")[0]
    if section == "task":
        own = [k.split(".", 1)[1] for k in known if k.startswith("task.") and k != "task.name"]
        return f"the {config.task.name} task has the settings: {', '.join(own)}"
    if section in SECTIONS:
        return f"[{section}] has: " + ", ".join(
            k.split(".", 1)[1] for k in known if k.startswith(section + ".")
        )
    top = [k for k in known if "." not in k]
    return f"the settings are {', '.join(top)} and the sections {', '.join(SECTIONS)}"


def _flatten(d: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        if isinstance(v, Mapping):
            yield from _flatten(v, prefix + k + ".")
        else:
            yield prefix + k, v


def validate(config: TrainConfig) -> TrainConfig:
    """Check every field's type and range and the rules between fields; returns the config, coerced."""
    _check_task_section(config)
    for name, f, tp in fields(config):
        *section, key = name.split(".")
        target = getattr(config, section[0]) if section else config
        value = getattr(target, key)
        if isinstance(value, str) and not _is_text(tp):
            raise ConfigError(f"{name}: expected {allowed(f, tp)}, got {value!r}")
        setattr(target, key, _coerce(name, value, f, tp))
    b, o = config.bptt, config.optim
    if b.mode == "truncated" and b.k2 and b.k2 < b.k1:
        raise ConfigError(
            f"bptt.k2: must be >= bptt.k1 = {b.k1} (backpropagate at least over the steps since the last "
            f"update, as in Williams & Peng's BPTT(h; h')), got {b.k2}"
        )
    if b.mode == "full" and (b.k1 or b.k2):
        raise ConfigError(
            f"bptt.k1, bptt.k2: only used with bptt.mode = 'truncated', got mode 'full', k1={b.k1}"
        )
    if o.nesterov and (o.name != "sgd" or o.momentum <= 0):
        raise ConfigError("optim.nesterov: needs optim.name = 'sgd' and optim.momentum > 0")
    return config


def _check_task_section(config: TrainConfig) -> None:
    """A registered task's [task] must be its own `Settings`; a bare `TaskConfig(name=...)` becomes the
    defaults of the task it names."""
    task = config.task
    if not isinstance(task, TaskConfig):
        raise ConfigError(f"task: expected the settings of a task (rnnlab.tasks.task_settings), got {task!r}")
    name = task.name
    own = TASKS[name].Settings if name in TASKS else None
    if own is None or isinstance(task, own):
        return
    if type(task) is TaskConfig:
        config.task = task_settings(name)
        return
    raise ConfigError(
        f"task: {type(task).__qualname__} are not the settings of the {name} task; build them with "
        f"rnnlab.tasks.task_settings({name!r}, ...)"
    )


def read(path: str | Path) -> dict[str, Any]:
    """The settings a TOML config file gives, flat ({"optim.lr": 0.001, ...}), checked as `load` checks
    them; errors name the file and the field."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    from_dict(data, source=str(path))
    return dict(_flatten(data))


def load(path: str | Path) -> TrainConfig:
    """Read a TOML config file; errors name the file and the field."""
    return _build(read(path), str(path), text=False)


def dumps(config: TrainConfig) -> str:
    """The config as TOML text (what `load` reads back)."""
    return tomli_w.dumps(to_dict(config))
