"""``mlac-audit export DIR``: an audit's curves, seed points and trials as CSV files (or one table to stdout)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TABLE_NAMES = ("curves", "seed_points", "trials")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``export`` command."""
    cmd = sub.add_parser("export", help="write an audit's curves, seed points and trials as CSV",
                         description="Write an audit's numbers as CSV: curves (one row per model, task and n), "
                                     "seed_points (one per seed) and trials (one per trial of every search).")
    cmd.add_argument("dir", type=Path, help="an audit folder (or its result.json)")
    cmd.add_argument("--table", choices=TABLE_NAMES, default=None,
                     help="print only this table to stdout (default: write all three into --out)")
    cmd.add_argument("--out", type=Path, default=None, help="folder for curves.csv, seed_points.csv, trials.csv "
                                                            "(default: the audit folder)")
    cmd.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from mlac.audit.export import to_csv, write_csvs
    from mlac.audit.result_schema import AuditResult

    path = args.dir / "result.json" if args.dir.is_dir() else args.dir
    result = AuditResult.read(path)
    if args.table is not None:
        sys.stdout.write(to_csv(result, args.table))
        return 0
    for table, written in write_csvs(result, args.out or path.parent).items():
        print(f"{table}: {written}")
    return 0
