"""Is the audit's searched attacker at least as strong as the fixed reference grid? (CPU scale.)

For two models on a synthetic dataset (the tiny supervised base, and an MLAC-defended model trained from it
with the behaviour test's recipe, ``w_adv`` 1) and each (n, attacker seed), on the harmful task:

- ``grid``: :func:`~mlac.audit.grid.run_grid` (kinds probe / full / LoRA x lr in ``GRID_LRS``, Adam, constant
  schedule, batch 12), each member one run of **300** steps (the full reference grid goes to 1000: a CPU cap)
  keeping its best checkpoint on the selection split every 50 steps; the member best on selection is scored;
- ``searched``: a :class:`~mlac.audit.study.StudyDriver` on the same kinds, lr 1e-5..3e-2 and 100..300 steps,
  with the ``strong`` preset's other dimensions (Adam / AdamW / SGD, constant / warm-up, weight decay 0 / 0.01,
  batch 12 / 24), ``grid_start`` (the grid enqueued first, same trial seeds), no pruning, ``grid size + 8``
  trials, patience = the budget, TPE from the grid on, 3 reruns of the winner (its point: their mean);
- ``searched_no_grid``: the same budget without the grid, 2 TPE start-up trials (the old quick/smoke presets).

One executor per process memoises trials by their spec (trials are deterministic), so the search's grid
members reuse the grid's runs. Selection capped at 300 rows, report at 600. One JSON line per (model, n, seed,
attacker) goes to ``--out``, written as each cell ends; a second run with the same ``--out`` skips the cells
already there (an interrupted run continues). ``--summary`` prints the tables of ``benchmarks/RESULTS.md``.

    HF_HUB_OFFLINE=1 PYTHONPATH=. nice -n 10 .venv/bin/python benchmarks/bench_search_vs_grid.py \\
        --out runs/search_vs_grid.jsonl --sizes 20,100 --jobs 2
    .venv/bin/python benchmarks/bench_search_vs_grid.py --summary runs/search_vs_grid.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("base", "mlac")
#: Report accuracy the searched attacker may fall below the grid's choice, per seed.
TOLERANCE = 0.03
STEPS_CAP = 300
N_BIOS = 4000  # train 2,000 / attack pool 800 / selection 600 (capped 300) / report 600
SELECTION_MAX, REPORT_MAX = 300, 600
EXTRA_TRIALS, RERUNS, EVAL_EVERY = 8, 3, 50


def spaces() -> tuple[Any, Any]:
    """(grid space, searched space): the grid is the same inside both (asserted)."""
    from mlac.audit.space import SearchSpace, reference_grid

    common = {"lr_low": 1e-5, "lr_high": 3e-2, "steps_min": 100, "steps_max": STEPS_CAP, "steps_step": 100,
              "kinds": ("probe", "full", "lora")}
    grid = SearchSpace(batch_sizes=(12,), **common)
    searched = SearchSpace(batch_sizes=(12, 24), optimizers=("adam", "adamw", "sgd"),
                           schedules=("constant", "warmup_linear"), weight_decays=(0.0, 0.01), **common)
    assert reference_grid(grid) == reference_grid(searched)
    return grid, searched


def build_inputs(work: Path) -> tuple[Path, Path]:
    """The synthetic dataset and the tiny base (150 Adam steps, harmful loss x3: the quick preset's), cached."""
    import torch

    from mlac.data import SynthConfig, generate_synthetic, make_splits, save_dataset
    from mlac.data.encoded import encode_split
    from mlac.models import default_tokenizer, save_checkpoint
    from mlac.models.base_model import make_base_model

    data, base = work / "bios.parquet", work / "base"
    if data.exists() and (base / "model.safetensors").exists():
        return data, base
    t0 = time.monotonic()
    ds, task = generate_synthetic(SynthConfig(n_bios=N_BIOS, seed=0))
    save_dataset(ds, task, data)
    tok = default_tokenizer()
    torch.manual_seed(0)
    model = make_base_model(encode_split(make_splits(ds, 0).train, tok, task), tok,
                            num_beneficial=len(task.beneficial_names), steps=150, batch_size=32, harmful_weight=3.0, seed=0)
    save_checkpoint(model, tok, base, beneficial_names=task.beneficial_names)
    print(f"built dataset and base in {time.monotonic() - t0:.0f} s", flush=True)
    return data, base


def build_mlac(work: Path, data: Path, base: Path) -> Path:
    """The base censored by MLAC with the behaviour recipe (``tests/behaviour/setting.py``), ``w_adv`` 1, cached."""
    from mlac.censor.train import train_mlac
    from mlac.data import load_saved_dataset, make_splits
    from mlac.models import load_checkpoint
    from tests.behaviour.setting import RECIPE

    out = work / "mlac"
    if (out / "model.safetensors").exists():
        return out
    t0 = time.monotonic()
    ds, task = load_saved_dataset(data)
    loaded = load_checkpoint(str(base))
    result = train_mlac(loaded.model, loaded.tokenizer, make_splits(ds, 0).train, task, RECIPE.replace(seed=0, w_adv=1.0),
                        out_dir=out, parent_sha256=loaded.sha256)
    print(f"built the MLAC model in {time.monotonic() - t0:.0f} s (best step {result.best_step}, "
          f"{result.skipped_nonfinite} non-finite steps)", flush=True)
    return out


class Memo:
    """An in-process executor that runs each distinct spec once (trials are deterministic)."""

    concurrency = 1

    def __init__(self) -> None:
        from mlac.audit.scheduling import InProcessExecutor

        self.inner = InProcessExecutor()
        self.memo: dict[str, dict[str, Any]] = {}
        self.hits = 0

    def map(self, specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run the specs not seen before; reuse the others' results."""
        out = []
        for spec in specs:
            key = json.dumps(spec, sort_keys=True)
            if key in self.memo:
                self.hits += 1
            else:
                self.memo[key] = self.inner.map([spec])[0]
            out.append(self.memo[key])
        return out


def run_cell(model: str, checkpoint: Path, data: Path, n: int, seed: int, ex: Memo) -> list[dict[str, Any]]:
    """The three attackers on one (model, n, seed); one row each."""
    from mlac.audit.grid import grid_specs, run_grid
    from mlac.audit.runner import subset_seed
    from mlac.audit.space import SearchConfig, reference_grid
    from mlac.audit.study import StudyDriver
    from mlac.audit.trial import TrialSpec
    from mlac.contracts import StudyKey

    grid_space, space = spaces()
    size = len(reference_grid(space))
    key = StudyKey(model, str(checkpoint), "harmful", n, seed)
    spec = TrialSpec(checkpoint=str(checkpoint.resolve()), dataset=str(data.resolve()), task="harmful", n=n,
                     subset_seed=subset_seed(seed, n), params={}, trial_seed=0, eval_every=EVAL_EVERY,
                     selection_max=SELECTION_MAX, report_max=REPORT_MAX, device="cpu",
                     tag={"model": model, "task": "harmful", "n": n, "seed": seed})
    common = {"model": model, "n": n, "seed": seed}
    rows = []

    t0, before = time.monotonic(), len(ex.memo)
    grid = run_grid(key, spec, grid_space, ex, reruns=RERUNS)
    members = ex.map([s.to_dict() for s in grid_specs(key, spec, grid_space)])
    rows.append({**common, "attacker": "grid", "report_accuracy": grid.report_accuracy,
                 "chosen_run_report_accuracy": grid.chosen_run_report_accuracy, "rerun_accuracies": grid.rerun_accuracies,
                 "selection_accuracy": grid.selection_accuracy, "params": grid.params.to_dict(),
                 "best_step": grid.best_step, "trials": grid.runs, "executed": len(ex.memo) - before,
                 "attacker_wall_s": sum(float(r.get("wall_s", 0.0)) for r in members),
                 "wall_s": time.monotonic() - t0,
                 "majority_rate": max(float(r.get("report_majority_rate", 0.0)) for r in members)})

    budget = size + EXTRA_TRIALS
    configs = {"searched": SearchConfig(max_trials=budget, patience=budget, reruns=RERUNS, eval_every=EVAL_EVERY,
                                        tpe_startup_trials=size, prune=False, grid_start=True),
               "searched_no_grid": SearchConfig(max_trials=budget, patience=budget, reruns=RERUNS, eval_every=EVAL_EVERY,
                                                tpe_startup_trials=2, prune=False, grid_start=False)}
    for name, cfg in configs.items():
        t0, before = time.monotonic(), len(ex.memo)
        driver = StudyDriver(key, spec, space, cfg, model_sha=f"bench-{model}", data_fingerprint="bench-search-vs-grid",
                             storage=None, executor=ex)
        res = driver.run()
        best = driver.best_trial()
        outcome = best.user_attrs.get("outcome", {})
        rows.append({**common, "attacker": name, "report_accuracy": res.report_accuracy,
                     "selection_accuracy": float(best.value or 0.0), "rerun_accuracies": res.rerun_accuracies,
                     "rerun_selection_accuracy": res.selection_accuracy,
                     "winner_report_accuracy": outcome.get("report_accuracy"), "winner_trial": best.number,
                     "winner_in_grid": cfg.grid_start and best.number < size, "params": res.best_params,
                     "trials": res.trials_run, "executed": len(ex.memo) - before, "failed": res.failed_trials,
                     "attacker_wall_s": res.attacker_wall_s, "wall_s": time.monotonic() - t0,
                     "majority_rate": res.majority_rate,
                     "selection_at_least_grid": float(best.value or 0.0) >= grid.selection_accuracy})
    return rows


def finished_cells(out: Path) -> set[tuple[str, int, int]]:
    """(model, n, seed) cells with all three attackers' rows already in ``out`` (a rerun skips them)."""
    seen: dict[tuple[str, int, int], set[str]] = {}
    if out.exists():
        for line in out.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                seen.setdefault((r["model"], r["n"], r["seed"]), set()).add(r["attacker"])
    return {k for k, v in seen.items() if {"grid", "searched", "searched_no_grid"} <= v}


def run_child(model: str, work: Path, sizes: list[int], seeds: list[int], out: Path, deadline: float | None) -> None:
    """Build ``model`` if needed, then run its cells (n outer, seed inner) not already in ``out`` and append their
    rows to ``out`` (so an interrupted run continues where it stopped)."""
    import optuna
    import torch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    data, base = work / "bios.parquet", work / "base"
    checkpoint = base if model == "base" else build_mlac(work, data, base)
    ex = Memo()
    done = finished_cells(out)
    last = 0.0  # seconds the previous cell took: a cell that would end past the deadline is not started
    for n in sizes:
        for seed in seeds:
            if (model, n, seed) in done:
                continue
            if deadline is not None and time.time() + last > deadline:
                print(f"{model}: would pass the deadline, skipping n={n} seed={seed}", flush=True)
                continue
            t0 = time.monotonic()
            for row in run_cell(model, checkpoint, data, n, seed, ex):
                with out.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
            last = time.monotonic() - t0
            print(f"{model} n={n} seed={seed}: {last:.0f} s ({len(ex.memo)} trials run, {ex.hits} reused)", flush=True)


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def summary(path: Path) -> str:
    """Markdown: per (model, n) means over seeds and the pass/fail; then per-seed detail."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    cells: dict[tuple[str, int, int], dict[str, dict[str, Any]]] = {}
    for r in rows:
        cells.setdefault((r["model"], r["n"], r["seed"]), {})[r["attacker"]] = r
    complete = {k: v for k, v in cells.items() if {"grid", "searched", "searched_no_grid"} <= set(v)}
    groups = sorted({(m, n) for m, n, _ in complete}, key=lambda g: (MODELS.index(g[0]) if g[0] in MODELS else 9, g[1]))
    lines = [f"| model | n | seeds | grid | searched | searched_no_grid | searched - grid: mean / min | "
             f"no_grid - grid: mean / min | searched winner's own run - grid's chosen run: mean | pass (every seed: searched >= grid - {TOLERANCE}) | trials grid / search | "
             "attacker wall s: grid / searched / no_grid | report majority |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m, n in groups:
        cs = [complete[k] for k in sorted(complete) if k[:2] == (m, n)]

        def acc(att: str, cs: list[dict[str, dict[str, Any]]] = cs) -> list[float]:
            return [c[att]["report_accuracy"] for c in cs]

        grid, s, ng = acc("grid"), acc("searched"), acc("searched_no_grid")
        d = [a - b for a, b in zip(s, grid, strict=True)]
        dn = [a - b for a, b in zip(ng, grid, strict=True)]
        own = [c["searched"]["winner_report_accuracy"]
               - c["grid"].get("chosen_run_report_accuracy", c["grid"]["report_accuracy"]) for c in cs]

        def wall(att: str, cs: list[dict[str, dict[str, Any]]] = cs) -> str:
            return f"{statistics.fmean(c[att]['attacker_wall_s'] for c in cs):.0f}"

        ok = min(d) >= -TOLERANCE
        lines.append(f"| {m} | {n} | {len(cs)} | {_fmt(statistics.fmean(grid))} | {_fmt(statistics.fmean(s))} | "
                     f"{_fmt(statistics.fmean(ng))} | {_fmt(statistics.fmean(d), True)} / {_fmt(min(d), True)} | "
                     f"{_fmt(statistics.fmean(dn), True)} / {_fmt(min(dn), True)} | {_fmt(statistics.fmean(own), True)} | "
                     f"{'pass' if ok else '**fail**'} | "
                     f"{cs[0]['grid']['trials']} / {cs[0]['searched']['trials']} | "
                     f"{wall('grid')} / {wall('searched')} / {wall('searched_no_grid')} | "
                     f"{_fmt(max(c['grid']['majority_rate'] for c in cs))} |")
    lines += ["", "| model | n | seed | grid: choice, selection / report | searched: winner, selection / reruns mean "
              "(winner's own run) | searched_no_grid: winner, selection / reruns mean |",
              "| --- | --- | --- | --- | --- | --- |"]

    def choice(r: dict[str, Any]) -> str:
        p = r["params"]
        extra = "" if (p["optimizer"], p["schedule"], p["weight_decay"], p["batch_size"]) == ("adam", "constant", 0.0, 12) \
            else f" {p['optimizer']} {p['schedule']} wd {p['weight_decay']:g} b{p['batch_size']}"
        where = " (grid member)" if r.get("winner_in_grid") else ""
        return f"{p['kind']} lr {p['lr']:.2g} {p['steps']} st{extra}{where}"

    for k in sorted(complete, key=lambda k: (MODELS.index(k[0]) if k[0] in MODELS else 9, k[1], k[2])):
        c = complete[k]
        g, s, ng = c["grid"], c["searched"], c["searched_no_grid"]
        flag = "" if s.get("selection_at_least_grid", True) else " **selection below grid**"
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {choice(g)} (best step {g['best_step']}), {_fmt(g['selection_accuracy'])} / "
                     f"{_fmt(g['report_accuracy'])} | {choice(s)}, {_fmt(s['selection_accuracy'])} / "
                     f"{_fmt(s['report_accuracy'])} ({_fmt(s.get('winner_report_accuracy'))}){flag} | "
                     f"{choice(ng)}, {_fmt(ng['selection_accuracy'])} / {_fmt(ng['report_accuracy'])} |")
    missing = sorted(set(cells) - set(complete))
    if missing:
        lines.append(f"\nIncomplete cells (not in the tables): {missing}")
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="JSON lines file to append rows to")
    parser.add_argument("--work", type=Path, help="where the dataset and checkpoints are cached (default: next to --out)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of base,mlac")
    parser.add_argument("--sizes", default="20,100,200")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--jobs", type=int, default=1, help="processes (one model each, one torch thread each)")
    parser.add_argument("--max-minutes", type=float,
                        help="start no cell that would end past this many minutes (judged by the previous cell)")
    parser.add_argument("--child", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--summary", type=Path, help="print the tables of a finished run and exit")
    args = parser.parse_args()
    if args.summary:
        print(summary(args.summary))
        return
    if args.out is None:
        parser.error("--out is required")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    work = args.work or args.out.parent / "search_vs_grid_work"
    work.mkdir(parents=True, exist_ok=True)
    sizes, seeds = _ints(args.sizes), _ints(args.seeds)
    if args.child:
        run_child(args.child, work, sizes, seeds, args.out, args.deadline)
        return
    started = time.monotonic()
    deadline = time.time() + 60 * args.max_minutes if args.max_minutes else None
    build_inputs(work)
    models = [m for m in args.models.split(",") if m]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

    def cmd(model: str) -> list[str]:
        out = [sys.executable, __file__, "--child", model, "--out", str(args.out), "--work", str(work),
               "--sizes", args.sizes, "--seeds", args.seeds]
        return out + (["--deadline", str(deadline)] if deadline is not None else [])

    for start in range(0, len(models), max(1, args.jobs)):
        procs = [subprocess.Popen(cmd(m), env=env, cwd=ROOT) for m in models[start : start + max(1, args.jobs)]]
        codes = [p.wait() for p in procs]
        if any(codes):
            raise SystemExit(f"a child failed: exit codes {codes}")
    print(f"total {time.monotonic() - started:.0f} s\n")
    print(summary(args.out))


if __name__ == "__main__":
    main()
