"""The ``llmspend`` command line. Each command lives in its own module with a ``register``
function that adds its sub-parser; ``--help`` works on every command."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .._version import __version__
from ..exceptions import LLMSpendError

__all__ = ["main", "build_parser"]

# Command modules, in the order --help lists them.
COMMANDS = ("demo", "prices", "batch", "budget", "economics", "report", "scorer", "cache", "cascade")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmspend",
        description="Exact cost of every LLM call, and a pipeline that makes the bill smaller.",
    )
    parser.add_argument("--version", action="version", version=f"llmspend {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # A command group without a sub-command prints its own help.
        (getattr(args, "parser", None) or parser).print_help()
        return 2 if args.command is None else 0
    try:
        return int(func(args) or 0)
    except LLMSpendError as exc:
        print(f"llmspend: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into head
        return 0
