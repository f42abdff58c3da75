"""Does the MLM base carry gender under full fine-tuning? ``python -m experiments.replication.mlm_check OUT``.

``OUT`` is a finished ``cpu``-scale run (its dataset is reused). Retrains the MLM base of the ``cpu``
scale and fully fine-tunes it and its random re-initialisation on the harmful task (200 steps, batch 24,
n in {100, 500}, lr in {3e-4, 1e-3}, attacker seeds 0 and 1); writes ``OUT/mlm_check.json``.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import torch

from experiments.replication.mlm import pretrain_mlm, raw_corpus
from experiments.replication.scales import make_scale
from experiments.replication.setup import synth_config
from mlac.censor import finetune_attack
from mlac.data import load_saved_dataset, make_splits
from mlac.data.encoded import encode_split
from mlac.models import default_tokenizer, random_reinit


def main(argv: list[str] | None = None) -> int:
    """Run the check into ``OUT/mlm_check.json``."""
    out = Path((argv if argv is not None else sys.argv[1:])[0])
    torch.set_num_threads(1)
    scale, tok = make_scale("cpu"), default_tokenizer()
    ds, task = load_saved_dataset(out / "data" / "bios.parquet")
    sp = make_splits(ds, 0)
    pool = encode_split(sp.attack_pool, tok, task, scale.max_length)
    rep = encode_split(sp.report.select(range(400)), tok, task, scale.max_length)
    corpus = raw_corpus(synth_config(scale, seed=1000, n_bios=scale.corpus_bios, noun_cue_rate=0.5,
                                     specialty_rate=0.3, max_sentences=3))
    mlm, log = pretrain_mlm(corpus, tok, num_beneficial=task.num_labels("beneficial"), steps=scale.mlm_steps,
                            batch_size=scale.mlm_batch, lr=scale.mlm_lr, max_length=scale.max_length)
    result: dict[str, object] = {"mlm_final": log[-1]}
    for name, model in (("mlm", mlm), ("random", random_reinit(mlm, 1))):
        for n in (100, 500):
            for lr in (3e-4, 1e-3):
                accs = []
                for seed in (0, 1):
                    rows = sorted(random.Random(f"rows:{seed}:{n}").sample(range(len(pool)), n))
                    accs.append(finetune_attack(model, pool.subset(rows), rep, steps=200, lr=lr, batch_size=24,
                                                seed=seed).accuracy)
                result[f"{name} n={n} lr={lr}"] = accs
                print(name, n, lr, accs, flush=True)
    (out / "mlm_check.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
