"""Training: the loop (`train`), truncated BPTT, clipping, the non-finite guard, checkpoints, run folders.

loop.py        train(model, task, config) -> History: the one loop, top to bottom
config.py      TrainConfig and its sections; TOML files and `section.key=value` overrides
tbptt.py       windows of the time axis, carrying and detaching the state
clipping.py    none, value, global norm, adaptive
guard.py       skip non-finite steps, roll back after too many
checkpoint.py  atomic, weights-only checkpoints; the last K and the best
resume.py      what a resumed run keeps and what it changes on top of the restored state
lock.py        one writer per run folder (an OS file lock)
signals.py     Ctrl-C and SIGTERM: stop after the step, never inside a checkpoint write
evaluate.py    validation and the best result
build.py       seeds, device, model, optimiser and schedule from the config
run.py         the run folder: metrics.jsonl, TensorBoard, summary.json, loss.png
events.py      TensorBoard's event file, written in the loop's thread and buffered
record.py      what the run folder says about the model and the task it trained
diagnostics.py rnnlab.watch every N steps, into the run folder
precursor.py   a gradient-norm spike or climb, warned before anything is non-finite
progress.py    the progress bar
"""

from rnnlab.errors import CheckpointError, ConfigError, DataError, DivergedError, RunFolderError
from rnnlab.tasks.config import TaskConfig
from rnnlab.training.build import build_model, seed_everything
from rnnlab.training.config import (
    BPTTConfig,
    CheckpointConfig,
    ClipConfig,
    DiagnosticsConfig,
    DistributedConfig,
    EvalConfig,
    GuardConfig,
    ModelConfig,
    NumericsConfig,
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
)
from rnnlab.training.evaluate import evaluate
from rnnlab.training.loop import History, train, train_config
from rnnlab.training.run import RunDir

__all__ = [
    "BPTTConfig",
    "CheckpointConfig",
    "CheckpointError",
    "ClipConfig",
    "ConfigError",
    "DataError",
    "DiagnosticsConfig",
    "NumericsConfig",
    "DistributedConfig",
    "DivergedError",
    "evaluate",
    "EvalConfig",
    "GuardConfig",
    "History",
    "ModelConfig",
    "OptimConfig",
    "RunDir",
    "RunFolderError",
    "ScheduleConfig",
    "TaskConfig",
    "TrainConfig",
    "build_model",
    "seed_everything",
    "train",
    "train_config",
]
