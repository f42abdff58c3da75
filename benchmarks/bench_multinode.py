"""A ``quick`` audit on one Ray node vs two Ray nodes of the same machine, side by side (not a timed test).

Run from the repository root (it starts its own clusters with ``ray start``, token auth on)::

    nice -n 19 .venv/bin/python benchmarks/bench_multinode.py --out /tmp/bench_multinode [--repeats 2]

Configurations (each a freshly started cluster, so no worker keeps another run's caches, and a fresh audit
folder of the same request as ``bench_ray.py``: one model under audit, both tasks, the preset's
sizes/seeds/space/budget, no baselines), both with two trials at once, one CPU each:

- ``1 node x 2 CPU``: ``ray start --head --num-cpus 2``;
- ``2 nodes x 1 CPU``: ``ray start --head --num-cpus 1`` plus ``ray start --address ... --num-cpus 1``.

This process is the Ray driver (``RAY_ADDRESS`` of the cluster); trials ask for one CPU and the custom
resource ``mlac_trial`` every node advertises. On one 2-core machine two nodes cannot be faster than one:
the point is that the second raylet's overhead (its own workers, a second object store, cross-node
scheduling) stays small. ``--repeats`` alternates the configurations (A B A B ...) so that load drifts on
a shared machine hit both alike. Reports the audit's wall time, the time from the first finished trial to
the report stage, trial runs, on how many nodes they ran, and whether both produced the same seed points.
Writes ``bench_multinode.json`` in ``--out`` and prints a Markdown table for ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from bench_audit import make_inputs  # same cached inputs as the audit benchmark (run from benchmarks/)
from bench_ray import timed_audit  # same timing and determinism check as the single-node Ray benchmark

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.multinode
from mlac.audit.presets import build_request
from tests.multinode.cluster import LocalCluster

RESOURCE = "mlac_trial"
CONFIGS: dict[str, list[int]] = {"1 node x 2 CPU": [2], "2 nodes x 1 CPU": [1, 1]}


def start_cluster(root: Path, cpus_per_node: list[int]) -> tuple[LocalCluster, float]:
    """A fresh cluster (head first); returns it and its start-up seconds."""
    t0 = time.perf_counter()
    cluster = LocalCluster(root)
    try:
        cluster.start_head(cpus=cpus_per_node[0], resources={RESOURCE: cpus_per_node[0]})
        for cpus in cpus_per_node[1:]:
            cluster.add_node(cpus=cpus, resources={RESOURCE: cpus})
    except BaseException:
        cluster.stop()
        raise
    return cluster, time.perf_counter() - t0


def run_config(name: str, request: Any, out: Path, run_no: int) -> dict[str, Any]:
    """Start the configuration's cluster, audit through it as a driver, stop everything."""
    from workers.executor import RayTrialExecutor
    from workers.runtime import init_ray, shutdown_ray
    from workers.settings import RaySettings

    cluster, start_s = start_cluster(out / "cluster", CONFIGS[name])
    try:
        os.environ.update({k: cluster.env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")})
        init_ray(RaySettings(address=cluster.address, data_dir=out))
        executor = RayTrialExecutor(num_cpus=1.0, concurrency=2, resources={RESOURCE: 1.0})
        row = timed_audit(request, out / f"run{run_no}-{name.replace(' ', '')}", executor)
        return {"config": name, "run": run_no, "cluster_start_s": round(start_s, 1), "nodes_used": len(executor.nodes), **row}
    finally:
        shutdown_ray()
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_multinode"))
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--bios", type=int, default=3000)
    args = parser.parse_args()
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    args.out.mkdir(parents=True, exist_ok=True)
    data, base = make_inputs(args.out, args.bios)
    request = build_request(args.preset, dataset=str(data.resolve()), models=(str(base.resolve()),), device="cpu")
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    rows: list[dict[str, Any]] = []
    for run_no in range(args.repeats):
        for name in CONFIGS:
            row = run_config(name, request, args.out, run_no)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "points"}), flush=True)
    ref = rows[0]["points"]
    for row in rows:
        row["same_points"] = row["points"] == ref
    meta = {"preset": args.preset, "started": started, "ended": time.strftime("%Y-%m-%d %H:%M:%S"),
            "os_cpus": os.cpu_count(), "nice": os.nice(0), "load_avg_end": os.getloadavg(),
            "python": platform.python_version(), "torch": torch.__version__, "bios": args.bios}
    (args.out / "bench_multinode.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str))
    print(f"\n{meta}\n")
    print("| run | configuration | cluster start (s) | audit wall (s) | after 1st trial (s) | trial runs | nodes used | "
          "runs/min (wall) | same points |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print(f"| {r['run'] + 1} | {r['config']} | {r['cluster_start_s']} | {r['wall_s']} | {r['search_s']} | "
              f"{r['trial_runs']} | {r['nodes_used']} | {r['trial_runs_per_min']} | {'yes' if r['same_points'] else 'NO'} |")
    for name in CONFIGS:
        walls = [r["wall_s"] for r in rows if r["config"] == name]
        print(f"{name}: mean audit wall {sum(walls) / len(walls):.1f} s over {len(walls)} run(s)")


if __name__ == "__main__":
    main()
