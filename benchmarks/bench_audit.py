"""Audit engine benchmarks (not a timed test): engine vs a reference-style loop, probe fast vs slow path,
and the wall time of the ``smoke`` and ``quick`` presets.

Run from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_audit.py --out /tmp/bench_audit [--presets smoke,quick]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_audit.py --out /tmp/bench_audit --only engine --seeds 0,1,2 \\
        [--engine-executor ray --reference-threads 2]

Writes ``bench_audit[_PART].json`` in ``--out`` and prints each part's numbers (for ``benchmarks/RESULTS.md``).

*Reference-style loop* = what the original code does: every trial tokenises to a fixed length of 128
(padding included), the trunk runs on every step even for a frozen-trunk probe (no feature cache),
plain (per-tensor) Adam, no pruning, trials one after the other. It is given the same search budget: it
runs exactly the configurations the engine's TPE chose (same n-subset, selection and report splits),
each to its end.

``--seeds 0,1,2`` repeats the comparison over several search seeds (one TPE trajectory decides how many
full fine-tunes a search draws, which dominates its cost) and reports the pooled ratio.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import torch
import torch.nn.functional as F
from torch import nn

from mlac.attacks import AttackData, AttackParams, labels_of, run_attack_trial
from mlac.audit.features import FeatureCache
from mlac.audit.scheduling import InProcessExecutor
from mlac.audit.space import SearchConfig, SearchSpace, derived_seed
from mlac.audit.study import StudyDriver
from mlac.audit.trial import TrialSpec, WorkerContext
from mlac.contracts import StudyKey
from mlac.models import EncoderClassifier, make_head

optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_inputs(out: Path, n_bios: int = 3000) -> tuple[Path, Path]:
    """An ``n_bios`` synthetic dataset and a tiny BERT base model trained 300 steps on it."""
    from mlac.data import SynthConfig, generate_synthetic, make_splits, save_dataset
    from mlac.data.encoded import encode_split
    from mlac.models import default_tokenizer, save_checkpoint
    from mlac.models.base_model import make_base_model

    data = out / "bios.parquet"
    base = out / "base"
    if not data.is_file():
        ds, task = generate_synthetic(SynthConfig(n_bios=n_bios, seed=0))
        save_dataset(ds, task, data)
    if not (base / "model.safetensors").is_file():
        from mlac.data import load_saved_dataset

        ds, task = load_saved_dataset(data)
        tok = default_tokenizer()
        model = make_base_model(encode_split(make_splits(ds, 0).train, tok, task), tok,
                                num_beneficial=len(task.beneficial_names), steps=300, seed=0)
        save_checkpoint(model, tok, base, beneficial_names=task.beneficial_names)
    return data, base


# ---------------------------------------------------------------- reference-style loop
def _fixed_batch(data: AttackData, split: str, rows: list[int], width: int = 128) -> dict[str, torch.Tensor]:
    enc = {"pool": data.pool, "selection": data.selection, "report": data.report}[split]
    ids = torch.full((len(rows), width), enc.pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, i in enumerate(rows):
        seq = enc.ids[i][:width]
        ids[r, : len(seq)] = torch.as_tensor(seq)
        mask[r, : len(seq)] = 1
    return {"input_ids": ids, "attention_mask": mask}


@torch.no_grad()
def _ref_accuracy(model: EncoderClassifier, head: nn.Module, data: AttackData, split: str, task: str) -> float:
    enc = data.selection if split == "selection" else data.report
    labels = labels_of(enc, task)
    correct = 0
    for start in range(0, len(enc), 32):
        rows = list(range(start, min(start + 32, len(enc))))
        correct += int((head(model(**_fixed_batch(data, split, rows))).argmax(-1) == labels[rows]).sum())
    return correct / len(enc)


def reference_trial(model: EncoderClassifier, data: AttackData, task: str, num_labels: int, p: AttackParams, seed: int,
                    eval_every: int) -> dict[str, Any]:
    """One trial the reference way: padding to 128, trunk forward every step, no pruning, no cache."""
    started = time.perf_counter()
    attacker = copy.deepcopy(model)
    head = make_head(model.hidden_size, num_labels, seed)
    if p.kind == "probe":
        for q in attacker.parameters():
            q.requires_grad_(False)
        params = list(head.parameters())
    else:
        params = list(attacker.trunk.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=p.lr, weight_decay=p.weight_decay)  # the reference's plain Adam
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout masks, as the engine seeds them
    labels = labels_of(data.pool, task)
    best_sel, best_rep = -1.0, 0.0
    for step in range(p.steps):
        rows = [data.pool_rows[i] for i in torch.randint(0, len(data.pool_rows), (p.batch_size,), generator=gen).tolist()]
        attacker.train(p.kind != "probe")
        loss = F.cross_entropy(head(attacker(**_fixed_batch(data, "pool", rows))), labels[rows])
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, p.grad_clip)
        opt.step()
        if (step + 1) % eval_every == 0 or step + 1 == p.steps:
            attacker.eval()
            sel = _ref_accuracy(attacker, head, data, "selection", task)
            if sel > best_sel:  # the reference keeps the best checkpoint's scores
                best_sel, best_rep = sel, _ref_accuracy(attacker, head, data, "report", task)
    return {"best_selection_accuracy": best_sel, "report_accuracy": best_rep, "wall_s": time.perf_counter() - started}


def reference_search(model: EncoderClassifier, data: AttackData, configs: list[dict[str, Any]], seeds: list[int],
                     eval_every: int) -> dict[str, Any]:
    """The configurations the engine's TPE chose, run the reference way one after the other, each to its end,
    with the engine's trial seeds (same head initialisation and training rows, step for step)."""
    started = time.perf_counter()
    best = None
    trials = []
    for config, trial_seed in zip(configs, seeds, strict=True):
        params = AttackParams.from_dict(config)
        out = reference_trial(model, data, "harmful", 2, params, trial_seed, eval_every)
        trials.append({"kind": params.kind, "steps": params.steps, "batch_size": params.batch_size, "lr": params.lr,
                       "wall_s": out["wall_s"], "selection": out["best_selection_accuracy"]})
        if best is None or out["best_selection_accuracy"] > best["best_selection_accuracy"]:
            best = out
    assert best is not None
    return {"wall_s": time.perf_counter() - started, "best_selection_accuracy": best["best_selection_accuracy"],
            "best_report_accuracy": best["report_accuracy"], "trials": trials}


# ---------------------------------------------------------------- engine
def make_executor(kind: str) -> Any:
    """The engine's executor: in-process (one trial at a time), or a local Ray running two trials at a time
    (one CPU and one torch thread each), as the service runs them."""
    if kind == "inprocess":
        return InProcessExecutor(WorkerContext())
    from workers.executor import RayTrialExecutor
    from workers.runtime import init_ray
    from workers.settings import RaySettings

    settings = RaySettings(data_dir=Path(tempfile.mkdtemp(prefix="bench-ray-")), num_cpus=2, trial_cpus=1.0,
                           max_concurrency=2)
    init_ray(settings)
    return RayTrialExecutor.from_settings(settings)


def engine_search(base: Path, data_path: Path, space: SearchSpace, trials: int, seed: int, eval_every: int,
                  executor: str = "inprocess") -> dict[str, Any]:
    """The engine: dynamic padding, length-sorted micro-batches, probe feature cache, median pruning (no
    reruns: same budget). ``executor="ray"`` runs two trials at a time (constant-liar TPE asks two at once)."""
    spec = TrialSpec(checkpoint=str(base), dataset=str(data_path), task="harmful", n=100, subset_seed=seed, params={},
                     trial_seed=0, eval_every=eval_every, selection_max=300, report_max=300)
    cfg = SearchConfig(max_trials=trials, patience=trials, reruns=1, eval_every=eval_every, tpe_startup_trials=5,
                       parallelism=2 if executor == "ray" else 1)
    ex = make_executor(executor)
    started = time.perf_counter()
    driver = StudyDriver(StudyKey("base", str(base), "harmful", 100, seed), spec, space, cfg, model_sha="bench", data_fingerprint="bench",
                         storage=None, executor=ex)
    driver.search()
    wall = time.perf_counter() - started
    best = driver.best_trial()
    pruned = sum(1 for t in driver.study.trials if t.state == optuna.trial.TrialState.PRUNED)
    trials = [{**{k: t.user_attrs["attack_params"][k] for k in ("kind", "steps", "batch_size", "lr")},
               "trial_seed": derived_seed("trial", seed, "harmful", 100, t.number),  # what the engine gave trial t
               "state": t.state.name, "wall_s": t.user_attrs.get("outcome", {}).get("wall_s"), "selection": t.value}
              for t in driver.study.trials]
    return {"wall_s": wall, "best_selection_accuracy": best.value, "best_report_accuracy": best.user_attrs["outcome"]["report_accuracy"],
            "pruned_trials": pruned, "trials": trials}


def bench_engine_vs_reference(base: Path, data_path: Path, trials: int, executor: str = "inprocess", seed: int = 0,
                              reference_threads: int = 1) -> dict[str, Any]:
    """One search seed (its own n-subset and TPE trajectory): the engine's search, then the reference-style
    loop over the same configurations with ``reference_threads`` torch threads."""
    # PROTOCOL's reference space with the steps cut to 50..150 (a reference-style full trial of 1000 steps
    # takes many minutes on 2 shared cores).
    space = SearchSpace(lr_low=1e-5, lr_high=1e-2, steps_min=50, steps_max=150, steps_step=50, batch_sizes=(12, 24, 48),
                        kinds=("probe", "full"))
    ctx = WorkerContext()
    spec = TrialSpec(checkpoint=str(base), dataset=str(data_path), task="harmful", n=100, subset_seed=seed, params={},
                     trial_seed=0, selection_max=300, report_max=300)
    loaded = ctx.model(str(base), torch.device("cpu"))
    data = ctx.attack_data(spec, loaded)
    engine = engine_search(base, data_path, space, trials, seed, 50, executor)
    configs = [{k: v for k, v in t.items() if k in ("kind", "steps", "batch_size", "lr")} for t in engine["trials"]]
    threads = torch.get_num_threads()
    torch.set_num_threads(reference_threads)
    try:
        reference = reference_search(loaded.model, data, configs, [t["trial_seed"] for t in engine["trials"]], 50)
    finally:
        torch.set_num_threads(threads)
    return {"seed": seed, "trials": trials, "executor": executor, "reference_threads": reference_threads,
            "space": space.to_dict(), "engine": engine, "reference": reference,
            "speedup": reference["wall_s"] / engine["wall_s"]}


def summarise_seeds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-seed ratios and the pooled one (total reference seconds over total engine seconds)."""
    engine_s = sum(r["engine"]["wall_s"] for r in runs)
    reference_s = sum(r["reference"]["wall_s"] for r in runs)
    return {
        "seeds": [r["seed"] for r in runs],
        "speedups": [round(r["speedup"], 2) for r in runs],
        "engine_s": engine_s, "reference_s": reference_s, "pooled_speedup": reference_s / engine_s,
        "best_report": [(r["engine"]["best_report_accuracy"], r["reference"]["best_report_accuracy"]) for r in runs],
        "best_selection": [(r["engine"]["best_selection_accuracy"], r["reference"]["best_selection_accuracy"]) for r in runs],
    }


def bench_probe(base: Path, data_path: Path, trials: int) -> dict[str, Any]:
    ctx = WorkerContext()
    spec = TrialSpec(checkpoint=str(base), dataset=str(data_path), task="harmful", n=100, subset_seed=0, params={},
                     trial_seed=0, selection_max=300, report_max=300)
    loaded = ctx.model(str(base), torch.device("cpu"))
    data = ctx.attack_data(spec, loaded)
    params = AttackParams(kind="probe", lr=3e-3, steps=200, batch_size=24)
    cache = FeatureCache()
    timings: dict[str, float] = {}
    accs: dict[str, list[float | None]] = {}
    for name, kw in (("slow", {}), ("fast", {"feature_cache": cache, "model_key": loaded.sha256})):
        started = time.perf_counter()
        accs[name] = [run_attack_trial(loaded.model, data, "harmful", 2, params, seed, eval_every=50, **kw).report_accuracy
                      for seed in range(trials)]
        timings[name] = time.perf_counter() - started
    return {"trials": trials, "steps": 200, "slow_s": timings["slow"], "fast_s": timings["fast"],
            "speedup": timings["slow"] / timings["fast"], "max_abs_report_diff": max(abs((a or 0) - (b or 0)) for a, b in zip(accs["slow"], accs["fast"], strict=True))}


def bench_preset(preset: str, data_path: Path, base: Path, out: Path) -> dict[str, Any]:
    """Wall time of ``mlac-audit audit --preset PRESET`` (a fresh process, tiny base and baselines built)."""
    import shutil
    import subprocess
    import sys

    target = out / f"preset_{preset}"
    if target.exists():
        shutil.rmtree(target)
    cmd = [sys.executable, "-m", "mlac.cli.main", "audit", "--model", str(base), "--base", "tiny", "--data", str(data_path),
           "--baselines", "random,base", "--preset", preset, "--out", str(target), "--quiet", "--exit-zero"]
    started = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if run.returncode != 0:
        raise RuntimeError(f"{preset} audit failed:\n{run.stderr[-3000:]}")
    result = json.loads((target / "result.json").read_text())
    return {"preset": preset, "wall_s": wall, "seed_points": len(result["seed_points"]),
            "trials_run": sum(p["trials_run"] for p in result["seed_points"]),
            "verdict": result["verdict"]["status"], "table": run.stdout}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_audit"))
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--probe-trials", type=int, default=5)
    parser.add_argument("--presets", default="smoke,quick", help="comma-separated presets to time ('' for none)")
    parser.add_argument("--only", choices=("engine", "probe", "presets"), default=None)
    parser.add_argument("--engine-executor", choices=("inprocess", "ray"), default="inprocess",
                        help="run the engine's trials in-process one at a time, or two at a time on a local Ray")
    parser.add_argument("--seeds", default="0", help="comma-separated search seeds (each: its own n-subset and TPE trajectory)")
    parser.add_argument("--reference-threads", type=int, default=1,
                        help="torch threads of the reference-style loop (the engine's in-process trials use the default)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data_path, base = make_inputs(args.out)
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                           "platform": platform.platform(), "load_avg_start": os.getloadavg()}}
    if args.only in (None, "probe"):
        results["probe"] = bench_probe(base, data_path, args.probe_trials)
        print(json.dumps(results["probe"], indent=2), flush=True)
    if args.only in (None, "engine"):
        runs = []
        for seed in (int(x) for x in args.seeds.split(",")):
            runs.append(bench_engine_vs_reference(base, data_path, args.trials, args.engine_executor, seed,
                                                  args.reference_threads))
            print(json.dumps(runs[-1], indent=2), flush=True)
        results["engine_vs_reference"] = {"runs": runs, "summary": summarise_seeds(runs)}
        print(json.dumps(results["engine_vs_reference"]["summary"], indent=2), flush=True)
    presets = [p for p in args.presets.split(",") if p]
    if args.only in (None, "presets") and presets:
        results["presets"] = [bench_preset(p, data_path, base, args.out) for p in presets]
        print(json.dumps(results["presets"], indent=2), flush=True)
    results["machine"]["load_avg_end"] = os.getloadavg()
    path = args.out / f"bench_audit{'_' + args.only if args.only else ''}.json"
    path.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
