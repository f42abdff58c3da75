"""Entry point of the ``mlac-audit`` console script.

Sub-commands register themselves through a ``register(subparsers)`` function. The core's own commands
are listed here; the Ray and service layers add theirs through the entry-point group
``mlac_audit.commands`` so that ``mlac`` never imports them. Every :class:`MlacError` is printed as a
one-line message with exit code 2: users never see a traceback for their own mistakes, and a usage error
(a bad flag value) is one line too, not the whole usage. A command's own return value is the exit code
otherwise (``audit`` returns its verdict's: 0 PASS, 1 FAIL, 3 INCONCLUSIVE).

Building the parser imports no heavy package (torch, transformers, datasets, ray, optuna, httpx): every
command module imports those inside its handler, so ``mlac-audit --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any, NoReturn, cast

from mlac import __version__
from mlac.errors import MlacError

ENTRY_POINT_GROUP = "mlac_audit.commands"
BUILTIN_COMMANDS = ("mlac.cli.data_cmd", "mlac.cli.base_cmd", "mlac.cli.censor_cmd", "mlac.cli.audit_cmd",
                    "mlac.cli.compare_cmd", "mlac.cli.export_cmd")

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``PROG: error: MESSAGE (see PROG --help)``, exit 2)
    instead of the whole usage block followed by the message. Sub-parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends `` (default: X)`` to the help of every option whose default means something (not None, not False,
    not already in the text)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class StopOnInterrupt:
    """Ctrl-C as a stop request: the first one asks the run to stop before its next step (train_mlac then saves
    its state and raises StoppedError), a second one interrupts at once (KeyboardInterrupt). Callable as the
    run's ``should_stop``. Outside the main thread (where signals cannot be caught) it never asks to stop."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.requested = False
        self._previous: Any = None

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"Ctrl-C: {self.what} (Ctrl-C again to quit at once, losing what is not saved)", file=sys.stderr,
              flush=True)

    def __enter__(self) -> StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def _registrars() -> list[Register]:
    found: list[Register] = [importlib.import_module(name).register for name in BUILTIN_COMMANDS]
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        found.append(ep.load())
    return found


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every registered sub-command (light: no heavy package is imported)."""
    parser = OneLineParser(
        prog="mlac-audit",
        description="MLAC censoring and few-shot adversarial fine-tuning audits of ML models, locally or "
        "through the mlac-audit service. `mlac-audit COMMAND --help` describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"mlac-audit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level (and Optuna's study lines)")
    # sub-parsers are OneLineParsers (add_subparsers uses the parser's class); commands see plain ArgumentParsers
    sub = cast("argparse._SubParsersAction[argparse.ArgumentParser]",
               parser.add_subparsers(dest="command", metavar="COMMAND"))
    sub.required = True
    for register in _registrars():
        register(sub)
    return parser


def _offline_defaults() -> None:
    """Nothing in this tool fetches from a model hub; say so to the libraries before they load."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; return the process exit code."""
    _offline_defaults()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = args.func(args)
    except MlacError as exc:
        print(f"error [{exc.code}]: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # commands with state to keep (censor, audit) say what was saved themselves
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
