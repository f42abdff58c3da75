"""Audits in-process vs through Ray, side by side (not a timed test).

Run from the repository root (it starts its own local Ray; give it the whole machine)::

    RAY_USAGE_STATS_ENABLED=0 .venv/bin/python benchmarks/bench_ray.py --out /tmp/bench_ray [--presets smoke,quick]

Configurations, each a fresh audit folder (no resume) of the same request (one model under audit,
both tasks, the preset's sizes/seeds/space/budget):

- ``in-process``: :class:`~mlac.audit.scheduling.InProcessExecutor`, torch on all ``--cpus`` threads;
- ``ray c=1``: :class:`~workers.executor.RayTrialExecutor`, one trial at a time asking for all ``--cpus``
  (same compute as in-process: the difference is Ray's overhead);
- ``ray c=2``: two trials at once, one CPU each (the runner keeps two searches in flight);
- ``in-process 1t`` (control, not in the default list): in-process with one torch thread.

Reports the audit's wall time, the time from the first finished trial to the report stage
(``search_s``: it leaves out start-up, data loading and the first trial, which computes the probe
features), trial runs executed, trial runs per minute of the whole audit wall time (and of
``search_s``), and checks that every configuration produced
the same seed points (results must not depend on the executor). Writes ``bench_ray.json`` in ``--out``
and prints a Markdown table for ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import optuna
import torch
from bench_audit import make_inputs  # same cached inputs as the audit benchmark (run from benchmarks/)

from mlac.audit.presets import build_request
from mlac.audit.runner import STUDIES_FILE, run_audit
from mlac.audit.scheduling import InProcessExecutor

optuna.logging.set_verbosity(optuna.logging.WARNING)


def seed_points(run_dir: Path) -> list[tuple[Any, ...]]:
    """(model, task, n, seed, report accuracy) of every search, rounded (the determinism check)."""
    records = json.loads((run_dir / STUDIES_FILE).read_text(encoding="utf-8"))
    return sorted((r["model"], r["task"], int(r["n"]), int(r["seed"]), round(float(r["report_accuracy"]), 6)) for r in records)


def timed_audit(request: Any, run_dir: Path, executor: Any) -> dict[str, Any]:
    """Run one audit into a fresh folder; wall times of the whole audit and of its search phase."""
    shutil.rmtree(run_dir, ignore_errors=True)
    marks: dict[str, float] = {}

    def progress(event: dict[str, Any]) -> None:
        stage = event.get("stage")
        if stage == "search":
            marks.setdefault("search", time.perf_counter())
        elif stage == "report":
            marks.setdefault("report", time.perf_counter())

    started = time.perf_counter()
    run_audit(request, run_dir, progress=progress, executor=executor)
    wall = time.perf_counter() - started
    search = marks.get("report", started + wall) - marks.get("search", started)
    runs = int(executor.executed)
    return {"wall_s": round(wall, 2), "search_s": round(search, 2), "trial_runs": runs,
            "trial_runs_per_min": round(60.0 * runs / max(wall, 1e-9), 1),
            "trial_runs_per_min_after_first": round(60.0 * runs / max(search, 1e-9), 1), "points": seed_points(run_dir)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_ray"))
    parser.add_argument("--presets", default="smoke,quick")
    parser.add_argument("--configs", default="in-process,ray c=1,ray c=2")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--bios", type=int, default=3000)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    args.out.mkdir(parents=True, exist_ok=True)
    data, base = make_inputs(args.out, args.bios)

    from workers.executor import RayTrialExecutor
    from workers.runtime import init_ray, shutdown_ray
    from workers.settings import RaySettings

    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    rows: list[dict[str, Any]] = []
    starts: list[float] = []
    for preset in [p.strip() for p in args.presets.split(",") if p.strip()]:
        request = build_request(preset, dataset=str(data.resolve()), models=(str(base.resolve()),), device="cpu")
        for config in configs:
            torch.set_num_threads(args.cpus)
            if config == "in-process":
                executor: Any = InProcessExecutor()
            elif config == "in-process 1t":  # control: one torch thread (what each trial gets at c=2)
                torch.set_num_threads(1)
                executor = InProcessExecutor()
            elif config in ("ray c=1", "ray c=2"):
                # A fresh Ray per configuration: no worker keeps another run's model and feature caches.
                shutdown_ray()
                t0 = time.perf_counter()
                init_ray(RaySettings(data_dir=args.out / "raydata", num_cpus=args.cpus))
                starts.append(time.perf_counter() - t0)
                executor = (RayTrialExecutor(num_cpus=float(args.cpus), concurrency=1) if config == "ray c=1"
                            else RayTrialExecutor(num_cpus=max(1.0, args.cpus / 2), concurrency=2))
            else:
                raise SystemExit(f"unknown configuration {config!r}")
            row = {"preset": preset, "config": config, **timed_audit(request, args.out / f"{preset}-{config.replace(' ', '')}", executor)}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "points"}), flush=True)
    shutdown_ray()
    ray_start_s = sum(starts) / max(1, len(starts))
    for row in rows:
        ref = next(r for r in rows if r["preset"] == row["preset"])
        row["same_points_as_" + ref["config"].replace(" ", "_")] = row["points"] == ref["points"]
        inproc = next((r for r in rows if r["preset"] == row["preset"] and r["config"] == "in-process"), None)
        if inproc is not None:
            row["wall_vs_in_process"] = round(row["wall_s"] / inproc["wall_s"], 3)
    meta = {"cpus": args.cpus, "os_cpus": os.cpu_count(), "load_avg_end": os.getloadavg(), "ray_start_s": round(ray_start_s, 1),
            "python": platform.python_version(), "torch": torch.__version__, "bios": args.bios}
    (args.out / "bench_ray.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str))
    print(f"\nRay start-up {ray_start_s:.1f} s (mean, not in the audit times); load average at the end {os.getloadavg()}\n")
    print("| preset | configuration | audit wall (s) | after 1st trial (s) | trial runs | runs/min (wall) | wall vs in-process | same points |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        same = next(v for k, v in r.items() if k.startswith("same_points_as_"))
        print(f"| {r['preset']} | {r['config']} | {r['wall_s']} | {r['search_s']} | {r['trial_runs']} | "
              f"{r['trial_runs_per_min']} | {r.get('wall_vs_in_process', '-')} | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
