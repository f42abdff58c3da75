"""``python -m experiments.replication --scale {ci,cpu,gpu} --out DIR [--only exp1,exp2,...]``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Run the replication study; finished pieces in ``--out`` are reused."""
    parser = argparse.ArgumentParser(prog="python -m experiments.replication", description=__doc__)
    parser.add_argument("--scale", choices=("ci", "cpu", "gpu"), default="ci")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", default="", help="comma-separated subset of calibration,exp1,...,exp5")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    for var, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                       "TOKENIZERS_PARALLELISM": "false", "MPLBACKEND": "Agg"}.items():
        os.environ.setdefault(var, value)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    for noisy in ("optuna", "mlac", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import torch

    torch.set_num_threads(args.threads)
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
