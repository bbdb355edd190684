"""rnnlab: recurrent networks that train on long sequences, with the gradient through time made visible.

`import rnnlab` loads torch and rnnlab only: matplotlib, TensorBoard and rich load when a figure, a
TensorBoard log or a progress bar is first made.
"""

import rnnlab.tasks as tasks
from rnnlab import init
from rnnlab.cells import (
    Cell,
    GRUCell,
    HiddenState,
    IndRNNCell,
    LayerNormGRUCell,
    LayerNormLSTMCell,
    LSTMCell,
    LSTMState,
    OrthogonalCell,
    RNNCell,
    cell_type,
)
from rnnlab.diagnostics import jacobian_products, time_profile, watch
from rnnlab.errors import ConfigError, UserError
from rnnlab.exporting import export
from rnnlab.layers import GRU, LSTM, RNN, IndRNN, LayerNormGRU, LayerNormLSTM, Recurrent
from rnnlab.models import SequenceModel
from rnnlab.numerics import flush_denormals
from rnnlab.tasks import TaskConfig
from rnnlab.training import (
    BPTTConfig,
    CheckpointConfig,
    ClipConfig,
    DiagnosticsConfig,
    DistributedConfig,
    EvalConfig,
    GuardConfig,
    History,
    ModelConfig,
    NumericsConfig,
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
    evaluate,
    train,
)

__version__ = "0.1.0"

__all__ = [
    # layers and cells
    "GRU",
    "LSTM",
    "RNN",
    "IndRNN",
    "LayerNormGRU",
    "LayerNormLSTM",
    "Recurrent",
    "Cell",
    "GRUCell",
    "HiddenState",
    "IndRNNCell",
    "LSTMCell",
    "LSTMState",
    "OrthogonalCell",
    "LayerNormGRUCell",
    "LayerNormLSTMCell",
    "RNNCell",
    "cell_type",
    "init",
    # models and training
    "SequenceModel",
    "History",
    "evaluate",
    "train",
    "export",
    "tasks",
    # config
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
    "DistributedConfig",
    # errors
    "UserError",
    "ConfigError",
    # diagnostics
    "jacobian_products",
    "time_profile",
    "watch",
    # numerics
    "flush_denormals",
]
