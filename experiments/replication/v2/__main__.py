"""``python -m experiments.replication.v2 --scale {ci,cpu,gpu} --out DIR``: the MiniLM study (issue 17)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from experiments.replication.runenv import configure


def main(argv: list[str] | None = None) -> int:
    """Run the v2 study; finished pieces in ``--out`` are reused."""
    parser = argparse.ArgumentParser(prog="python -m experiments.replication.v2", description=__doc__)
    parser.add_argument("--scale", choices=("ci", "cpu", "gpu"), default="ci", help="sizes and budgets (scales.py)")
    parser.add_argument("--out", type=Path, required=True, help="output folder; finished pieces there are reused")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)
    configure(args.threads)
    from experiments.replication.v2.run import run

    started = time.monotonic()
    summary = run(args.out, args.scale)
    logging.getLogger("replication").info("done in %.1fs (%d pieces computed, %d reused); tables in %s",
                                          time.monotonic() - started, len(summary["pieces"]["computed"]),
                                          len(summary["pieces"]["reused"]), args.out / "tables.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
