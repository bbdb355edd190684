"""The rnnlab command line. Each subcommand is one `add_<name>` function registering its parser and handler.

    rnnlab demo                                           # six models on the adding problem, a report
    rnnlab train --task adding --task.length 1000         # the task's recipe, on a task setting of its own
    rnnlab train --task adding --help                     # the flags, with the adding task's settings
    rnnlab train --resume runs/sine --steps 1000          # continue that run to step 1000
    rnnlab compare --task adding --model.cell=rnn,lstm,gru --seeds 3 --out cmp/   # a grid, ranked
    rnnlab evaluate runs/x [--input FILE] [--json]        # the test split's metrics, or a file's
    rnnlab predict runs/x --input FILE --out preds.csv    # a prediction per sequence of a file
    rnnlab diagnose runs/x | --config FILE                # the verdict of one probe, with remedies as flags
    rnnlab report runs/a runs/b --out report.html         # one self-contained page of several runs
    rnnlab export runs/x --out model.onnx                 # ONNX or TorchScript, checked against the model
    rnnlab forecast --csv sales.csv --target sales --horizon 12 --out fc/   # backtest + forecast
    rnnlab generate runs/charlm-... --prompt "ROMEO:"      # text from a character-level model
    rnnlab translate runs/seq2seq-... "4711"              # an encoder-decoder's translation
    rnnlab data list                                      # the packaged data sets, here or not

Conventions, every command:
- a usage error (an unknown flag or choice, a bad value, a missing argument; `ConfigError`): one line that
  names it and, where there are some, the valid choices; exit status 2;
- a runtime error the user can fix (a data file, a checkpoint, a run folder, a file not found: the other
  `UserError`s and `OSError`; a run that diverged beyond repair): one line, no traceback, exit status 1;
- anything else is a bug in rnnlab: its traceback, then a line saying so, exit status 1.
`--debug` (anywhere on the line) or RNNLAB_TRACEBACK=1 shows the traceback of the user's errors too. Existing
outputs are never replaced without `--overwrite`; `--quiet` leaves out progress bars and commentary.

Ctrl-C or SIGTERM during a run ends its step, writes a checkpoint and the summary, prints
`interrupted at step N; resume with: rnnlab train --resume DIR` and exits with 130 (SIGINT) or 143
(SIGTERM); a second signal stops at once, in one line, with the same status.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from rnnlab.errors import ConfigError, Interrupted, UserError

Handler = Callable[[argparse.Namespace, list[str]], int]


class UsageError(ConfigError):
    """A command line argparse refused: said in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, whose usage errors are one line ("rnnlab train: error: argument --checkpoint: invalid
    choice: 'x' (choose from best, last)") raised as `UsageError` rather than a usage block and `exit(2)`."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rnnlab` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or bool(os.environ.get("RNNLAB_TRACEBACK"))
    argv = [a for a in argv if a != "--debug"]
    command = next((a for a in argv if not a.startswith("-")), "")
    if command not in {add.__name__.removeprefix("add_") for add in commands_in_order()}:
        command = ""  # a misspelt one: argparse names the valid choices
    try:
        parser = build_parser(argv)
        args, extra = parser.parse_known_args(argv)
        args.argv = argv  # what a command that starts others (train --nproc) passes on
        if not hasattr(args, "handler"):
            parser.print_help(sys.stderr)
            return 2
        command = args.command
        return int(args.handler(args, extra))
    except Interrupted as e:  # the run saved what it could and says how to go on
        print(e, file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        print(f"rnnlab {command}: interrupted".replace("  ", " "), file=sys.stderr)
        return 130
    except (UserError, OSError) as e:
        rank = os.environ.get("RANK", "0")  # a process of a distributed run (torchrun)
        if debug:
            traceback.print_exc()
        if rank == "0" or not isinstance(e, ConfigError):  # a config error is every rank's: rank 0 says it
            where = "" if rank == "0" else f" (rank {rank})"
            sys.stderr.write(f"{_prog(command)}{where}: error: {e}\n")  # one write: ranks do not interleave
        return 2 if isinstance(e, ConfigError) else 1
    except Exception:
        traceback.print_exc()
        print(
            f"{_prog(command)}: this is a bug in rnnlab, not in your input; "
            "please report it with the traceback above",
            file=sys.stderr,
        )
        return 1


def _prog(command: str) -> str:
    return f"rnnlab {command}" if command else "rnnlab"


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; `argv` is read ahead for the task it names, whose own settings the flags then list."""
    from rnnlab import __version__

    parser = Parser(
        prog="rnnlab",
        description=(
            "Recurrent networks on long sequences, the gradient through time made visible. "
            "Start with `rnnlab demo`. --debug shows the traceback of an error."
        ),
    )
    parser.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", parser_class=Parser)
    for add in commands_in_order():
        add(commands, argv)
    return parser


def commands_in_order() -> list[Callable[[Any, Sequence[str]], None]]:
    """The subcommands, in the order `rnnlab --help` lists them, each `add_<its name>`; each gets the
    subparsers and the argv."""
    from rnnlab.cli import data, runs, train

    return [
        train.add_demo,
        train.add_train,
        train.add_compare,
        runs.add_evaluate,
        runs.add_predict,
        runs.add_diagnose,
        runs.add_report,
        runs.add_export,
        data.add_forecast,
        data.add_generate,
        data.add_translate,
        data.add_data,
    ]


def add_common(p: argparse.ArgumentParser, *, overwrite: bool = False) -> None:
    """The flags every command has: --quiet, and --overwrite for the commands that write outputs."""
    p.add_argument("--quiet", action="store_true", help="no progress bars or commentary (for scripts)")
    if overwrite:
        p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")


def commentary(args: argparse.Namespace) -> Callable[[str], None]:
    """Where a command says what it is doing: a line on stderr, or nowhere with --quiet."""
    if getattr(args, "quiet", False):
        return lambda line: None
    return lambda line: print(line, file=sys.stderr)


__all__ = ["UsageError", "build_parser", "main"]


if __name__ == "__main__":
    sys.exit(main())
