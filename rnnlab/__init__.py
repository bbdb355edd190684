"""rnnlab: recurrent networks that train on long sequences, with the gradient through time made visible."""

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
    RNNCell,
    cell_type,
)
from rnnlab.diagnostics import jacobian_products, time_profile, watch
from rnnlab.layers import GRU, LSTM, RNN, IndRNN, LayerNormGRU, LayerNormLSTM, Recurrent
from rnnlab.models import SequenceModel
from rnnlab.training import (
    BPTTConfig,
    ClipConfig,
    History,
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
    evaluate,
    train,
)

__version__ = "0.1.0"

__all__ = [
    "evaluate",
    "GRU",
    "LSTM",
    "RNN",
    "Cell",
    "GRUCell",
    "HiddenState",
    "IndRNN",
    "IndRNNCell",
    "LSTMCell",
    "LSTMState",
    "LayerNormGRU",
    "LayerNormGRUCell",
    "LayerNormLSTM",
    "LayerNormLSTMCell",
    "RNNCell",
    "Recurrent",
    "SequenceModel",
    "BPTTConfig",
    "ClipConfig",
    "History",
    "OptimConfig",
    "ScheduleConfig",
    "TrainConfig",
    "train",
    "tasks",
    "cell_type",
    "init",
    "jacobian_products",
    "time_profile",
    "watch",
]
