"""Whose fault an error is: the user's (`UserError`, printed by the CLI in one line) or rnnlab's (a bug).

    UserError                                   the user's to fix; `rnnlab` prints it without a traceback
      ConfigError(UserError, ValueError)        a config value unknown, of the wrong type or out of range
      CheckpointError(UserError, ValueError)    a checkpoint missing, truncated, corrupt, unsafe or not ours
      RunFolderError(UserError, ValueError)     a run folder that exists already, or holds no run to resume
      DataError(UserError, ValueError)          bad data: wrong shape, NaN or Inf in a batch
      DivergedError(UserError, RuntimeError)    training kept producing NaN/Inf after every rollback
    Interrupted(KeyboardInterrupt)              Ctrl-C or SIGTERM stopped a run; its folder can go on

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


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal (SIGINT: Ctrl-C, or SIGTERM), its folder left so that it can go on.

    After the first signal the run finishes its step and writes a checkpoint and its summary first; a
    second one stops it at once (`at_once`), and it resumes from its last checkpoint. A KeyboardInterrupt,
    so that code which stops on Ctrl-C stops on this too; `status` is the exit status a shell gives a
    process killed by that signal (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(
        self, signum: int, *, at_once: bool = False, step: int | None = None, resume: str = ""
    ) -> None:
        super().__init__(signum)
        self.signum, self.at_once, self.step, self.resume = signum, at_once, step, resume

    @property
    def status(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        import signal

        if self.at_once:
            after = "" if self.step is None else f" after step {self.step}"
            how = f"; resume from its last checkpoint with: {self.resume}" if self.resume else ""
            return f"stopped at once by a second {signal.Signals(self.signum).name}{after}{how}"
        where = "" if self.step is None else f" at step {self.step}"
        return f"interrupted{where}" + (f"; resume with: {self.resume}" if self.resume else "")


__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DivergedError",
    "Interrupted",
    "RunFolderError",
    "UserError",
]
