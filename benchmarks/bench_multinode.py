"""One node vs two with the artifact store in the path, and how a 100 MB checkpoint best reaches another node.

Run from the repository root, as root (the second node is a separate machine: a mount namespace, see
``tests/multinode/cluster.py``; it starts its own clusters with ``ray start``, token auth on, and a moto S3 server)::

    nice -n 19 .venv/bin/python benchmarks/bench_multinode.py --out /tmp/bench_multinode [--repeats 1]

**Audits** (the same request as ``bench_ray.py``: 3,000 synthetic bios, a tiny BERT base trained on them, one
model under audit, both tasks, the ``quick`` preset's sizes/seeds/space/budget, no baselines), each through
:class:`workers.jobs.JobRunner` as the service runs it (checkpoint and dataset published to the store, a driver
actor fetching them into its node's cache, trials fetching them into theirs, the job folder mirrored to the store),
two trials at once, one CPU and one ``mlac_trial`` resource each; each configuration a fresh cluster:

- ``1 node x 2 CPU / file://``: the head runs the driver and both trial slots;
- ``2 nodes x 1 CPU / file://``: the head (this process, the API's node) has one trial slot, a separate machine
  the other slot and the driver; it reaches the store through the gateway actor on the head;
- ``2 nodes x 1 CPU / s3://``: the same with ``MLAC_ARTIFACT_URL``-style S3 (moto on loopback).

**Transfer of a 100 MB checkpoint to the separate machine** (a task pinned there; repeated ``--transfers`` times):
the node cache, cold (a fresh cache: fetched from the store through the gateway, or from S3, sha256-verified)
and warm (already cached), against the Ray object store (``ray.put`` of the files' bytes on the head, ``ray.get``
and write in the task: cold, then again on the same node). Writes ``bench_multinode.json`` and prints Markdown
tables for ``benchmarks/RESULTS.md``. On one 2-core machine two nodes cannot be faster than one: the point is
that the store and the second raylet add little.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from bench_audit import make_inputs  # same cached inputs as the audit benchmark (run from benchmarks/)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.multinode
from mlac.audit.presets import build_request
from tests.multinode.cluster import LocalCluster, mount_namespace_refusal, nodes_with
from tests.s3 import s3_server

TRIAL, DRIVER, BUCKET = "mlac_trial", "mlac_driver", "mlac-bench"
MB = 1024**2
#: name -> (cpus of the head, cpus of the separate machine or 0 for none, store)
CONFIGS: dict[str, tuple[int, int, str]] = {
    "1 node x 2 CPU / file://": (2, 0, "file"),
    "2 nodes x 1 CPU / file://": (1, 1, "file"),
    "2 nodes x 1 CPU / s3://": (1, 1, "s3"),
}

#: Short keys of :data:`CONFIGS` for ``--configs``.
KEYS = dict(zip(("1node-file", "2nodes-file", "2nodes-s3"), CONFIGS, strict=True))


def start_cluster(out: Path, head_cpus: int, machine_cpus: int, env: dict[str, str]) -> tuple[LocalCluster, float]:
    """A fresh cluster: the head (this process attaches to it first), then the separate machine if any."""
    from workers.runtime import init_ray
    from workers.settings import RaySettings

    t0 = time.perf_counter()
    shutil.rmtree(out, ignore_errors=True)
    (out / "api" / "cache").mkdir(parents=True)
    (out / "machine" / "cache").mkdir(parents=True)
    cluster = LocalCluster(out / "cluster", object_store_bytes=600 * MB)
    cluster.env.update({**env, "MLAC_CACHE_DIR": str(out / "api" / "cache")})
    os.environ.update({k: cluster.env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "MLAC_CACHE_DIR")})
    try:
        head_res = {TRIAL: float(head_cpus), **({} if machine_cpus else {DRIVER: 1.0})}
        cluster.start_head(cpus=head_cpus, resources=head_res)
        init_ray(RaySettings(address=cluster.address, data_dir=out / "api"))
        if machine_cpus:
            cluster.add_node(cpus=machine_cpus, resources={TRIAL: float(machine_cpus), DRIVER: 1.0},
                             hidden=[out / "api"], env={"MLAC_CACHE_DIR": str(out / "machine" / "cache")})
    except BaseException:
        cluster.stop()
        raise
    return cluster, time.perf_counter() - t0


def audit_through_the_runner(request: Any, out: Path, store_url: str) -> dict[str, Any]:
    """The audit as the service runs it (a driver actor, the store, node caches); its wall time and trials."""
    from workers.artifacts.access import StoreAccess
    from workers.artifacts.store import FsspecStore
    from workers.jobs import JobRunner
    from workers.progress import CallbackSink
    from workers.settings import RaySettings

    settings = RaySettings(data_dir=out / "api", max_concurrency=2, trial_resources={TRIAL: 1.0},
                           driver_resources={DRIVER: 1.0})
    runner = JobRunner(settings, out / "api" / "artifacts", poll_s=0.5, access=StoreAccess.for_url(store_url))
    done, outcome = threading.Event(), {}

    def on_finished(_: str, state: str, result_path: str | None, failure: Any) -> None:
        outcome.update(state=state, result_path=result_path, failure=failure)
        done.set()

    started = time.perf_counter()
    runner.submit("bench", "audit", {"request": request.to_dict()}, CallbackSink(lambda _, __: None, on_finished))
    if not done.wait(3600):
        raise RuntimeError("the audit did not finish in an hour")
    wall = time.perf_counter() - started
    if outcome["state"] != "SUCCEEDED":
        raise RuntimeError(f"the audit ended {outcome['state']}: {outcome['failure']}")
    store = FsspecStore(store_url)
    trials = [json.loads(store.read(k)) for k in store.list("jobs/bench/trials") if k.endswith(".json")]
    result = json.loads((Path(outcome["result_path"]) / "result.json").read_text(encoding="utf-8"))
    curves = sorted((c["model"], c["task"], int(c["n"]), round(float(c["mean"]), 6)) for c in result["curves"])
    return {"wall_s": round(wall, 1), "trial_results": len(trials), "nodes_used": len({t["node_id"] for t in trials}), "curves": curves}


def make_checkpoint(folder: Path, size_mb: int) -> Path:
    """A checkpoint-shaped folder: ``config.json`` and ``model.safetensors`` of ``size_mb`` random megabytes."""
    if (folder / "model.safetensors").is_file() and (folder / "model.safetensors").stat().st_size == size_mb * MB:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")
    with (folder / "model.safetensors").open("wb") as f:
        for _ in range(size_mb):
            f.write(os.urandom(MB))
    return folder


def transfers(checkpoint: Path, store_url: str, repeats: int, scratch: str) -> dict[str, list[float]]:
    """Seconds for the checkpoint to be usable on the separate machine, by way of the node cache (cold, warm)
    and of the Ray object store (cold, again on the same node)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from workers.artifacts.access import StoreAccess, open_store
    from workers.artifacts.gateway import start_gateway
    from workers.artifacts.store import FsspecStore
    from workers.artifacts.trees import TreePublisher

    access = StoreAccess.for_url(store_url)
    if access.gateway:
        start_gateway(store_url)
    t0 = time.perf_counter()
    tree_id = TreePublisher(FsspecStore(store_url)).publish(checkpoint)
    publish_s = time.perf_counter() - t0
    machine = nodes_with_driver()
    there = NodeAffinitySchedulingStrategy(node_id=machine, soft=False)

    @ray.remote(num_cpus=0, scheduling_strategy=there)
    def by_cache(access_dict: dict[str, Any], root: str) -> tuple[float, float]:
        from workers.artifacts.cache import NodeCache

        cache = NodeCache(Path(root))
        store = open_store(StoreAccess.from_dict(access_dict))
        t = time.perf_counter()
        cache.materialise(store, tree_id, "ckpt")
        cold = time.perf_counter() - t
        t = time.perf_counter()
        cache.materialise(store, tree_id, "ckpt")
        warm = time.perf_counter() - t
        shutil.rmtree(root, ignore_errors=True)
        return cold, warm

    @ray.remote(num_cpus=0, scheduling_strategy=there)
    def by_object_store(refs: list[tuple[str, Any]], root: str) -> float:
        t = time.perf_counter()
        folder = Path(root)
        folder.mkdir(parents=True, exist_ok=True)
        for name, ref in refs:
            (folder / name).write_bytes(ray.get(ref))
        took = time.perf_counter() - t
        shutil.rmtree(folder, ignore_errors=True)
        return took

    out: dict[str, list[float]] = {"publish_s": [round(publish_s, 3)], "cache_cold_s": [], "cache_warm_s": [],
                                   "object_put_s": [], "object_get_cold_s": [], "object_get_again_s": []}
    for i in range(repeats):
        cold, warm = ray.get(by_cache.remote(access.to_dict(), f"{scratch}/cache-{i}"))
        out["cache_cold_s"].append(round(cold, 3))
        out["cache_warm_s"].append(round(warm, 4))
        t = time.perf_counter()
        refs = [(p.name, ray.put(p.read_bytes())) for p in sorted(checkpoint.iterdir())]
        out["object_put_s"].append(round(time.perf_counter() - t, 3))
        out["object_get_cold_s"].append(round(ray.get(by_object_store.remote(refs, f"{scratch}/obj-{i}")), 3))
        out["object_get_again_s"].append(round(ray.get(by_object_store.remote(refs, f"{scratch}/obj-{i}b")), 3))
        del refs
    return out


def nodes_with_driver() -> str:
    """The separate machine's node id (the only node with the driver resource in a two-node configuration)."""
    import ray

    ids = [n["NodeID"] for n in ray.nodes() if n.get("Alive") and DRIVER in n.get("Resources", {})]
    if len(ids) != 1:
        raise RuntimeError(f"expected one node with {DRIVER}, found {ids}")
    return str(ids[0])


def run_config(name: str, request: Any, out: Path, s3_env: dict[str, str], ckpt: Path, repeats: int) -> dict[str, Any]:
    from workers.runtime import shutdown_ray

    head_cpus, machine_cpus, store = CONFIGS[name]
    run_dir = out / "run"
    cluster, start_s = start_cluster(run_dir, head_cpus, machine_cpus, s3_env)
    url = f"file://{run_dir / 'api' / 'artifacts'}" if store == "file" else f"s3://{BUCKET}/{time.time_ns()}"
    try:
        row: dict[str, Any] = {"config": name, "cluster_start_s": round(start_s, 1), **audit_through_the_runner(
            request, run_dir, url)}
        if machine_cpus:
            row["machine"] = nodes_with(cluster, DRIVER)[0][:8]
            row["transfer_100mb"] = transfers(ckpt, url, repeats, str(run_dir / "machine" / "scratch"))
        return row
    finally:
        shutdown_ray()
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_multinode"))
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--bios", type=int, default=3000)
    parser.add_argument("--transfers", type=int, default=3, help="repeats of each 100 MB transfer")
    parser.add_argument("--checkpoint-mb", type=int, default=100)
    parser.add_argument("--configs", default=",".join(KEYS), help="comma-separated keys of CONFIGS (1node-file, 2nodes-file, 2nodes-s3)")
    args = parser.parse_args()
    refusal = mount_namespace_refusal(args.out)
    if refusal is not None:
        raise SystemExit(f"bench_multinode: a separate machine needs a mount namespace: {refusal}")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    args.out.mkdir(parents=True, exist_ok=True)
    data, base = make_inputs(args.out, args.bios)
    request = build_request(args.preset, dataset=str(data.resolve()), models=(str(base.resolve()),), device="cpu")
    ckpt = make_checkpoint(args.out / "ckpt", args.checkpoint_mb)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        s3_env = stack.enter_context(s3_server(BUCKET, log=args.out / "moto.log"))
        os.environ.update(s3_env)
        for key in [c.strip() for c in args.configs.split(",") if c.strip()]:
            name = KEYS.get(key, key)
            row = run_config(name, request, args.out, s3_env, ckpt, args.transfers)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "curves"}), flush=True)
    for row in rows:
        row["same_curves"] = row["curves"] == rows[0]["curves"]
    meta = {"preset": args.preset, "started": started, "ended": time.strftime("%Y-%m-%d %H:%M:%S"),
            "os_cpus": os.cpu_count(), "nice": os.nice(0), "load_avg_end": os.getloadavg(),
            "python": platform.python_version(), "torch": torch.__version__, "bios": args.bios,
            "checkpoint_mb": args.checkpoint_mb}
    (args.out / "bench_multinode.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str))
    print(f"\n{meta}\n")
    print("| configuration | cluster start (s) | audit wall (s) | vs 1 node | trial results | nodes used | same curves |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print(f"| {r['config']} | {r['cluster_start_s']} | {r['wall_s']} | {r['wall_s'] / rows[0]['wall_s']:.2f}x | "
              f"{r['trial_results']} | {r['nodes_used']} | {'yes' if r['same_curves'] else 'NO'} |")
    print(f"\n{args.checkpoint_mb} MB checkpoint to the separate machine (seconds; median of {args.transfers}):\n")
    print("| store | publish | node cache, cold | node cache, warm | ray.put | object store get, cold | "
          "object store get, again |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        t = r.get("transfer_100mb")
        if t:
            med = {k: sorted(v)[len(v) // 2] for k, v in t.items()}
            print(f"| {r['config'].split(' / ')[1]} | {med['publish_s']} | {med['cache_cold_s']} | {med['cache_warm_s']} | "
                  f"{med['object_put_s']} | {med['object_get_cold_s']} | {med['object_get_again_s']} |")


if __name__ == "__main__":
    main()
