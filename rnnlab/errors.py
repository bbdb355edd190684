"""Whose fault an error is: the user's (`UserError`, printed by the CLI in one line) or rnnlab's (a bug).

    UserError                                   the user's to fix; `rnnlab` prints it without a traceback
      ConfigError(UserError, ValueError)        a config value unknown, of the wrong type or out of range
      CheckpointError(UserError, ValueError)    a checkpoint missing, truncated, corrupt, unsafe or not ours
      RunFolderError(UserError, ValueError)     a run folder that exists already, or holds no run to resume
      DataError(UserError, ValueError)          bad data: wrong shape, NaN or Inf in a batch
      DivergedError(UserError, RuntimeError)    training kept producing NaN/Inf after every rollback

Any other exception is a bug and keeps its traceback. The ValueError and RuntimeError bases let code that
catches the built-in kinds (`except ValueError`) catch these too.
"""

from __future__ import annotations


class UserError(Exception):
    """An error in what the user gave (config, checkpoint, run folder, data), fixed by changing it."""


class ConfigError(UserError, ValueError):
    """A configuration value that is unknown, of the wrong type or out of range."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that is missing, truncated, corrupt, unsafe or not rnnlab's."""


class RunFolderError(UserError, ValueError):
    """A run folder that cannot be used as asked (it exists and is not being resumed, or is missing)."""


class DataError(UserError, ValueError):
    """A batch that the loop cannot train on: the wrong shape, or NaN/Inf in its inputs or targets."""


class DivergedError(UserError, RuntimeError):
    """Training kept producing non-finite values after every allowed rollback."""


__all__ = ["CheckpointError", "ConfigError", "DataError", "DivergedError", "RunFolderError", "UserError"]
