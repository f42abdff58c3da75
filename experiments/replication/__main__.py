"""``python -m experiments.replication --scale {ci,cpu,gpu} --out DIR [--only exp1,exp2,...]``."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from experiments.replication.runenv import configure


def main(argv: list[str] | None = None) -> int:
    """Run the replication study; finished pieces in ``--out`` are reused."""
    parser = argparse.ArgumentParser(prog="python -m experiments.replication", description=__doc__)
    parser.add_argument("--scale", choices=("ci", "cpu", "gpu"), default="ci")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", default="", help="comma-separated subset of calibration,exp1,...,exp5")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    configure(args.threads)
    from experiments.replication.experiments import run_all

    started = time.monotonic()
    only = tuple(s for s in args.only.split(",") if s)
    results = run_all(args.out, args.scale, only)
    logging.getLogger("replication").info(
        "done in %.1fs (%d pieces computed, %d reused); summary in %s", time.monotonic() - started,
        len(results["pieces"]["computed"]), len(results["pieces"]["reused"]), args.out / "summary.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
