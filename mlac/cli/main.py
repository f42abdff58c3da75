"""Entry point of the ``mlac-audit`` console script.

Sub-commands register themselves through a ``register(subparsers)`` function. The core's own commands
are listed here; the Ray and service layers add theirs through the entry-point group
``mlac_audit.commands`` so that ``mlac`` never imports them. Every :class:`MlacError` is printed as a
one-line message with exit code 2: users never see a traceback for their own mistakes. A command's own
return value is the exit code otherwise (``audit`` returns its verdict's: 0 PASS, 1 FAIL, 3 INCONCLUSIVE).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata

from mlac import __version__
from mlac.errors import MlacError

ENTRY_POINT_GROUP = "mlac_audit.commands"
BUILTIN_COMMANDS = ("mlac.cli.data_cmd", "mlac.cli.base_cmd", "mlac.cli.censor_cmd", "mlac.cli.audit_cmd")

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _registrars() -> list[Register]:
    found: list[Register] = [importlib.import_module(name).register for name in BUILTIN_COMMANDS]
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        found.append(ep.load())
    return found


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="mlac-audit",
        description="MLAC censoring and few-shot adversarial fine-tuning audits of ML models.",
    )
    parser.add_argument("--version", action="version", version=f"mlac-audit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="verbose logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
