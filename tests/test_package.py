"""`rnnlab` exports what the README and a user need, by explicit name."""

import rnnlab
import rnnlab.errors
import rnnlab.training
import rnnlab.training.config as cfg

CONFIGS = (
    "TrainConfig",
    "TaskConfig",
    "ModelConfig",
    "OptimConfig",
    "ScheduleConfig",
    "BPTTConfig",
    "ClipConfig",
    "GuardConfig",
    "EvalConfig",
    "CheckpointConfig",
    "DiagnosticsConfig",
    "NumericsConfig",
)


def test_every_config_class_and_the_user_errors_come_from_rnnlab():
    for name in (*CONFIGS, "UserError", "ConfigError"):
        assert name in rnnlab.__all__, name
        owner = rnnlab.errors if name.endswith("Error") else rnnlab.training
        assert getattr(rnnlab, name) is getattr(owner, name), name


def test_the_config_sections_are_the_exported_classes():
    config = rnnlab.TrainConfig()
    sections = {type(getattr(config, s)).__name__ for s in cfg.SECTIONS if s != "task"}
    assert sections <= set(rnnlab.__all__)
    assert isinstance(config.task, rnnlab.TaskConfig)  # the [task] section: the settings of the task named


def test_star_import_gives_exactly_all():
    names: dict = {}
    exec("from rnnlab import *", names)
    assert set(names) - {"__builtins__"} == set(rnnlab.__all__)
    assert all(hasattr(rnnlab, name) for name in rnnlab.__all__)
