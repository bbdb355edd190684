"""Training: the typed configuration of a run (the loop and its parts follow)."""

from rnnlab.training.config import (
    BPTTConfig,
    CheckpointConfig,
    ClipConfig,
    ConfigError,
    EvalConfig,
    GuardConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
    TaskConfig,
    TrainConfig,
)

__all__ = [
    "BPTTConfig",
    "CheckpointConfig",
    "ClipConfig",
    "ConfigError",
    "EvalConfig",
    "GuardConfig",
    "ModelConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TaskConfig",
    "TrainConfig",
]
