"""How much the MLAC behaviour numbers move between machines, measured on one machine.

The same seeded MLAC training follows another trajectory on another CPU (kernels round differently). This
emulates that spread here: the behaviour test's recipe (``tests/behaviour/setting.py``) for several MLAC seeds,
each with ``w_adv`` 0 and 1, under variants that change only float rounding or an irrelevant detail:

- ``reference``: torch's default thread count and the best kernel path of this CPU;
- ``threads1``: one intra-op thread (other reduction orders);
- ``isa_default``: ``ATEN_CPU_CAPABILITY=default`` (no vectorised kernels: emulates another CPU);
- ``data_order``: the MLAC training rows permuted (other batches and validation rows);
- ``attack_seed``: the reference models attacked with other heads and batches (no retraining).

Each variant runs in its own process (the kernel path is chosen at import). One JSON line per (variant,
seed, w_adv) goes to ``--out``; ``--summary`` prints the spread table of ``benchmarks/RESULTS.md``.

    .venv/bin/python benchmarks/bench_behaviour_spread.py --out runs/spread.jsonl
    .venv/bin/python benchmarks/bench_behaviour_spread.py --summary runs/spread.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "reference": {},
    "threads1": {"threads": 1},
    "isa_default": {"env": {"ATEN_CPU_CAPABILITY": "default"}},
    "data_order": {"data_order": 1},
}
GAP_ATTACKS = ("simulated", "probe", "full")


def run_variant(name: str, seeds: list[int], full: bool, out: Path) -> None:
    """Child process: train and attack every (seed, w_adv) cell of one variant."""
    import torch

    from tests.behaviour.setting import ATTACKS, RECIPE, build_setting, run_cell

    spec = VARIANTS[name]
    if "threads" in spec:
        torch.set_num_threads(int(spec["threads"]))
    started = time.monotonic()
    setting = build_setting()
    attacks = ATTACKS if full else ATTACKS[:3]
    for seed in seeds:
        for w in (0.0, 1.0):
            t0 = time.monotonic()
            cfg = RECIPE.replace(seed=seed, w_adv=w)
            if name == "reference":
                import copy

                from mlac.censor.train import train_mlac
                from tests.behaviour.setting import attack

                model = train_mlac(copy.deepcopy(setting.base), setting.tokenizer, setting.splits["mlac"], setting.task,
                                   cfg).model
                rows = {"reference": attack(model, cfg, setting, seed, attacks),
                        "attack_seed": attack(model, cfg, setting, seed + 1000, ATTACKS[:3])}
            else:
                rows = {name: run_cell(setting, cfg, attacks=ATTACKS[:3], data_order=spec.get("data_order"))}
            for variant, acc in rows.items():
                line = {"variant": variant, "seed": seed, "w_adv": w, **acc, "cell_s": time.monotonic() - t0,
                        "threads": torch.get_num_threads(), "isa": os.environ.get("ATEN_CPU_CAPABILITY", "")}
                with out.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(line) + "\n")
                print(json.dumps(line), flush=True)
    print(f"variant {name}: {time.monotonic() - started:.0f} s", flush=True)


def summary(path: Path) -> str:
    """Markdown: per (variant, seed) gaps, and the spread (sd over variants) per seed and of the seed mean."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    cells = {(r["variant"], r["seed"], r["w_adv"]): r for r in rows}
    variants = sorted({r["variant"] for r in rows}, key=lambda v: (v != "reference", v))
    seeds = sorted({r["seed"] for r in rows})
    lines = ["| variant | seed | w0 simulated / probe | MLAC simulated / probe | sim gap | probe gap | ben. probe w0 / MLAC |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    means: dict[str, dict[str, float]] = {}
    for v in variants:
        gaps: dict[str, list[float]] = {"simulated": [], "probe": [], "w0_probe": [], "w0_sim": []}
        for s in seeds:
            z, m = cells.get((v, s, 0.0)), cells.get((v, s, 1.0))
            if z is None or m is None:
                continue
            sg, pg = z["simulated"] - m["simulated"], z["probe"] - m["probe"]
            gaps["simulated"].append(sg)
            gaps["probe"].append(pg)
            gaps["w0_probe"].append(z["probe"])
            gaps["w0_sim"].append(z["simulated"])
            lines.append(f"| {v} | {s} | {z['simulated']:.3f} / {z['probe']:.3f} | {m['simulated']:.3f} / {m['probe']:.3f} | "
                         f"{sg:.3f} | {pg:.3f} | {z['beneficial_probe']:.3f} / {m['beneficial_probe']:.3f} |")
        if len(gaps["probe"]) == len(seeds):
            means[v] = {k: statistics.fmean(x) for k, x in gaps.items()}
    lines += ["", "| quantity | mean over variants | sd over variants (the spread) |", "| --- | --- | --- |"]
    for k in ("simulated", "probe", "w0_sim", "w0_probe"):
        values = [means[v][k] for v in means]
        if len(values) >= 2:
            lines.append(f"| mean over seeds: {k} | {statistics.fmean(values):.3f} | {statistics.stdev(values):.3f} |")
    for k in ("simulated", "probe"):
        per_seed = []
        for s in seeds:
            vals = [cells[(v, s, 0.0)][k] - cells[(v, s, 1.0)][k] for v in variants if (v, s, 0.0) in cells and (v, s, 1.0) in cells]
            if len(vals) >= 2:
                per_seed.append(statistics.stdev(vals))
        if per_seed:
            lines.append(f"| one seed's {k} gap (sd over variants, mean over seeds) | | {statistics.fmean(per_seed):.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="JSON lines file to append to")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--no-full", action="store_true", help="skip the full fine-tuning attack on the reference")
    parser.add_argument("--summary", type=Path, help="print the spread table of a finished run and exit")
    args = parser.parse_args()
    if args.summary:
        print(summary(args.summary))
        return
    if args.out is None:
        parser.error("--out is required")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.child:
        run_variant(args.child, args.seeds, not args.no_full, args.out)
        return
    for name in args.variants:
        env = {**os.environ, "PYTHONPATH": str(ROOT), **VARIANTS[name].get("env", {})}
        cmd = [sys.executable, __file__, "--child", name, "--out", str(args.out), "--seeds", *map(str, args.seeds)]
        if args.no_full:
            cmd.append("--no-full")
        subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    print(summary(args.out))


if __name__ == "__main__":
    main()
