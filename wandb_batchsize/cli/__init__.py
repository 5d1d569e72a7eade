"""The ``wandb-batchsize`` command.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable
taking the parsed arguments and returning the exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence

from wandb_batchsize import __version__

# module names in this package, in the order ``--help`` lists them
SUBCOMMANDS = ("analyze", "dashboard", "sweep")

#: an error message longer than this is cut (it may quote a huge input line).
MAX_MESSAGE = 400


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """``message`` on one line, cut to ``limit`` characters with a note of how many more."""
    text = " ".join(message.split())
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def _stdout_closed() -> int:
    """The reader of stdout went away (``| head``): stop quietly, as ``cat`` does."""
    with contextlib.suppress(OSError, ValueError):  # ValueError: stdout has no descriptor
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # exit flush cannot fail
    return 141  # 128 + SIGPIPE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wandb-batchsize",
        description="Which batch size should this run use? Analyse losses, sweeps and "
        "memory, and show the evidence on W&B.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except UsageError as exc:
        print(f"wandb-batchsize {args.command}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
