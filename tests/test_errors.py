"""One error hierarchy: what is the user's to fix is a UserError, and stays catchable as before."""

import pytest
import torch

import rnnlab
from rnnlab import errors
from rnnlab.tasks import Batch
from rnnlab.training import checkpoint, guard, run, tbptt
from rnnlab.training import config as cfg


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (errors.ConfigError, ValueError),
        (errors.CheckpointError, ValueError),
        (errors.RunFolderError, ValueError),
        (errors.DataError, ValueError),
        (errors.DivergedError, RuntimeError),
    ],
)
def test_every_users_error_is_a_user_error_and_its_builtin_kind(error, builtin):
    assert issubclass(error, errors.UserError) and issubclass(error, builtin)


def test_the_modules_that_raise_them_give_the_same_classes():
    assert cfg.ConfigError is rnnlab.ConfigError is errors.ConfigError
    assert checkpoint.CheckpointError is errors.CheckpointError
    assert run.RunFolderError is errors.RunFolderError
    assert guard.DivergedError is errors.DivergedError
    assert rnnlab.UserError is errors.UserError


def test_bad_data_is_a_data_error_naming_the_batch():
    x = torch.zeros(2, 3, 1)
    x[1, 2, 0] = float("inf")
    with pytest.raises(errors.DataError, match="batch 4: inputs contain NaN or Inf"):
        tbptt.check_batch(Batch(x, torch.zeros(2, 1)), "batch 4")
    with pytest.raises(errors.DataError, match=r"inputs must be \(batch, time, features\)"):
        tbptt.check_batch(Batch(torch.zeros(2, 3), torch.zeros(2, 1)), "batch 0")


def test_a_checkpoint_that_is_missing_is_a_user_error(tmp_path):
    with pytest.raises(errors.UserError, match="checkpoint not found"):
        checkpoint.load(tmp_path / "nope.pt")


def test_an_interrupted_run_is_a_keyboard_interrupt_with_the_shells_exit_status():
    import signal

    stop = errors.Interrupted(signal.SIGTERM, step=4, resume="rnnlab train --resume runs/x")
    assert isinstance(stop, KeyboardInterrupt) and not isinstance(stop, errors.UserError)
    assert stop.status == 143 and errors.Interrupted(signal.SIGINT).status == 130
    assert str(stop) == "interrupted at step 4; resume with: rnnlab train --resume runs/x"
    at_once = errors.Interrupted(signal.SIGINT, at_once=True, step=4, resume="rnnlab train --resume runs/x")
    assert str(at_once) == (
        "stopped at once by a second SIGINT after step 4; resume from its last checkpoint with: "
        "rnnlab train --resume runs/x"
    )
