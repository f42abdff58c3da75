"""Time MLAC outer steps on the offline MiniLM-L6 before choosing the study's scale (issue 17's first step).

``python -m experiments.replication.v2.timing [--steps 6] [--threads 2]``: for first and second order at K = 1
and K = 4, ``train_mlac`` runs ``--steps`` outer steps (outer batch 20, inner batch 24, 64 tokens, remap loss)
on 2,000 synthetic bios, and the wall time per outer step is printed, set-up included (loading, tokenising):
an upper bound on the steady-state step, what a planned run of that many steps pays.
"""

from __future__ import annotations

import argparse
import copy
import os
import time


def main(argv: list[str] | None = None) -> int:
    """Print seconds per MLAC outer step on MiniLM for each (K, order)."""
    parser = argparse.ArgumentParser(prog="python -m experiments.replication.v2.timing", description=__doc__)
    parser.add_argument("--steps", type=int, default=6, help="outer steps per setting (default 6)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from mlac.censor import MLACConfig, train_mlac
    from mlac.data import SynthConfig, generate_synthetic, make_splits
    from mlac.models import load_minilm

    torch.set_num_threads(args.threads)
    ds, task = generate_synthetic(SynthConfig(n_bios=2000, seed=0))
    train = make_splits(ds, 0).train
    base = load_minilm(task.num_labels("beneficial"))
    print("| K | order | s per outer step |\n|---|---|---|")
    for k, second in ((1, False), (4, False), (1, True), (4, True)):
        cfg = MLACConfig(inner_steps=k, second_order=second, inner_lr=1e-3, outer_lr=1e-5, outer_steps=args.steps,
                         outer_batch_size=20, inner_batch_sizes=(24,), adv_loss="remap", val_every=10_000,
                         checkpoint_every=10_000, max_length=64, device="cpu")
        started = time.monotonic()
        train_mlac(copy.deepcopy(base.model), base.tokenizer, train, task, cfg)
        print(f"| {k} | {'second' if second else 'first'} | {(time.monotonic() - started) / args.steps:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
