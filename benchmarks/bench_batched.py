"""Batched trials vs one trial after the other (not a timed test), side by side in one run.

Run from the repository root::

    .venv/bin/python benchmarks/bench_batched.py --out /tmp/bench_batched [--sizes 1,4,8,16,32] [--kinds full,lora]
        [--device cpu|cuda] [--steps 30] [--presets quick]

Part 1, trial groups: for each attack kind and N, N trials of the tiny BERT (differing in lr, seed and data
subset, as a search's trials do) run serially (``run_attack_trial`` each) and batched (``run_trials_batched``,
one group). Reported: trials per minute, the speed-up, and the achieved FLOP/s (the trials' own cost model,
``TrialOutcome.flops``: 6 x trunk parameters x tokens per step, 2 x for evaluation, attention scores not counted)
as a share of this machine's matmul peak, measured in the same run (a large float32 ``torch.mm`` with every
thread). Part 2, presets: a whole ``P`` audit (as ``mlac-audit audit --base tiny --baselines random,base``) with trials
serial (``--max-group 1``), batched as by default (probes in groups) and with trunk kinds grouped on the CPU too,
same inputs, one after the other in this run; the result JSONs are compared too (timings aside).

Writes ``bench_batched.json`` in ``--out`` and prints the tables (for ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from mlac.attacks import AttackParams, run_attack_trial
from mlac.attacks.batched import TrialMember, run_trials_batched
from mlac.audit.trial import TrialSpec, WorkerContext

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_audit import make_inputs


def matmul_peak(device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a ``size``-square float32 matmul on ``device`` (best of ``repeats``)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return 2.0 * size**3 / best


def _members(ctx: WorkerContext, base: Path, data_path: Path, kind: str, count: int, steps: int,
             device: torch.device) -> list[TrialMember]:
    """``count`` trials like a search's: lr, seed and the n=100 subset differ per trial."""
    loaded = ctx.model(str(base), device)
    members = []
    for i in range(count):
        spec = TrialSpec(checkpoint=str(base), dataset=str(data_path), task="harmful", n=100, subset_seed=i, params={},
                         trial_seed=i, selection_max=150, report_max=300)
        data = ctx.attack_data(spec, loaded)
        params = AttackParams(kind=kind, lr=(1e-4, 3e-4, 1e-3)[i % 3], steps=steps, batch_size=12, lora_r=8)
        members.append(TrialMember(loaded.model, ctx.model_key(loaded), data, "harmful", 2, params, 1000 + i))
    return members


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_group(ctx: WorkerContext, base: Path, data_path: Path, kind: str, count: int, steps: int,
                device: torch.device, peak: float) -> dict[str, Any]:
    """Serial and batched wall time of ``count`` trials of ``kind``; FLOP/s share of ``peak``."""
    members = _members(ctx, base, data_path, kind, count, steps, device)
    cache = ctx.features if kind == "probe" else None  # probes train on cached features, serial and batched alike
    if cache is not None:  # fill the cache first: both sides then read it
        run_trials_batched(members, eval_every=10, feature_cache=cache, device=device)
    _sync(device)
    started = time.perf_counter()
    serial = [run_attack_trial(m.model, m.data, m.task, m.num_labels, m.params, m.seed, eval_every=10, device=device,
                               feature_cache=cache, model_key=m.model_key)
              for m in members]
    _sync(device)
    serial_s = time.perf_counter() - started
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    batched = run_trials_batched(members, eval_every=10, feature_cache=cache, device=device)
    _sync(device)
    batched_s = time.perf_counter() - started
    flops = sum(o.flops for o in serial)
    same_steps = all(a.best_step == b.best_step for a, b in zip(serial, batched, strict=True))
    max_diff = max(abs((a.report_accuracy or 0.0) - (b.report_accuracy or 0.0)) for a, b in zip(serial, batched, strict=True))
    row: dict[str, Any] = {
        "kind": kind, "n_trials": count, "steps": steps, "serial_s": serial_s, "batched_s": batched_s,
        "serial_trials_per_min": 60 * count / serial_s, "batched_trials_per_min": 60 * count / batched_s,
        "speedup": serial_s / batched_s, "flops": flops,
        # A probe's cost model counts the trunk features it reads, which the cache computed once: no FLOP share.
        "serial_peak_share": None if cache is not None else flops / serial_s / peak,
        "batched_peak_share": None if cache is not None else flops / batched_s / peak,
        "same_chosen_steps": same_steps, "max_report_diff": max_diff,
    }
    if device.type == "cuda":
        row["peak_memory_per_member_mb"] = torch.cuda.max_memory_allocated(device) / count / 2**20
    return row


def bench_preset(preset: str, data_path: Path, base: Path, out: Path, mode: str) -> dict[str, Any]:
    """Wall time of a whole ``preset`` audit in this process (tiny base and baselines built, as the CLI's
    ``--base tiny --baselines random,base``), with trials ``serial``, ``batched`` (the default: probes in groups)
    or ``batched_trunk`` (trunk kinds in groups on the CPU too)."""
    from mlac.audit.presets import build_request
    from mlac.audit.runner import run_audit
    from mlac.audit.scheduling import InProcessExecutor

    target = out / f"preset_{preset}_{mode}"
    if target.exists():
        shutil.rmtree(target)
    executor = {"serial": InProcessExecutor(batched=False), "batched": InProcessExecutor(),
                "batched_trunk": InProcessExecutor(trunk_on_cpu=True)}[mode]
    request = build_request(preset, dataset=str(data_path), models=(str(base),), base="tiny", baselines=("random", "base"))
    started = time.perf_counter()
    run_audit(request, target, executor=executor)
    return {"preset": preset, "mode": mode, "wall_s": time.perf_counter() - started, "dir": str(target)}


def _strip(obj: Any, root: str) -> Any:
    """A result without timings or its own folder's path."""
    if isinstance(obj, dict):
        return {k: _strip(v, root) for k, v in obj.items() if "wall" not in k and k not in ("timings", "created_at")}
    if isinstance(obj, list):
        return [_strip(v, root) for v in obj]
    return obj.replace(root, "<OUT>") if isinstance(obj, str) else obj


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_batched"))
    parser.add_argument("--sizes", default="1,4,8,16,32")
    parser.add_argument("--kinds", default="full,lora,probe")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--presets", default="quick", help="comma-separated presets to time serial vs batched ('' for none)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    data_path, base = make_inputs(args.out)
    peak = matmul_peak(device)
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                           "platform": platform.platform(), "device": str(device),
                                           "load_avg_start": os.getloadavg()},
                               "matmul_peak_flops": peak, "groups": [], "presets": []}
    print(f"matmul peak: {peak / 1e9:.1f} GFLOP/s", flush=True)
    ctx = WorkerContext()
    for kind in args.kinds.split(","):
        for count in (int(x) for x in args.sizes.split(",")):
            row = bench_group(ctx, base, data_path, kind, count, args.steps, device, peak)
            results["groups"].append(row)
            print(json.dumps(row), flush=True)
    for preset in (p for p in args.presets.split(",") if p):
        runs = {mode: bench_preset(preset, data_path, base, args.out, mode) for mode in ("serial", "batched", "batched_trunk")}
        results_json = {m: _strip(json.loads((Path(r["dir"]) / "result.json").read_text()), r["dir"]) for m, r in runs.items()}
        row = {"preset": preset, **{f"{m}_s": r["wall_s"] for m, r in runs.items()},
               "speedup": runs["serial"]["wall_s"] / runs["batched"]["wall_s"],
               "speedup_trunk": runs["serial"]["wall_s"] / runs["batched_trunk"]["wall_s"],
               "same_result_json": results_json["serial"] == results_json["batched"],
               "same_result_json_trunk": results_json["serial"] == results_json["batched_trunk"]}
        results["presets"].append(row)
        print(json.dumps(row), flush=True)
    results["machine"]["load_avg_end"] = os.getloadavg()
    path = args.out / "bench_batched.json"
    path.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
