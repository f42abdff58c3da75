"""API load from a second process: job-status GETs and submissions, p50/p99 latency and throughput,
idle and while an audit runs. Usage: ``python benchmarks/bench_api.py [--runner ray|inprocess] [--seconds 15]``.

Starts ``python -m service serve`` on a loopback port (SQLite under a temp dir), creates a synthetic
dataset and a tiny base checkpoint, then drives the API with an async httpx loop (``--concurrency``
connections). Prints one JSON line per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ADMIN = "bench-admin-key-0123456789"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _load(url: str, paths: list[tuple[str, str, dict | None]], seconds: float, concurrency: int) -> dict:
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, limits=limits, timeout=30) as c:
        async def worker(i: int) -> None:
            nonlocal errors
            k = i
            while time.perf_counter() < stop:
                method, path, body = paths[k % len(paths)]
                k += 1
                t = time.perf_counter()
                try:
                    r = await c.request(method, path, json=body)
                    ok = r.status_code < 400
                except httpx.HTTPError:
                    ok = False
                lat.append(time.perf_counter() - t)
                errors += 0 if ok else 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        wall = time.perf_counter() - started
    lat.sort()
    q = lambda p: round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 2)  # noqa: E731
    return {"requests": len(lat), "errors": errors, "rps": round(len(lat) / wall, 1), "p50_ms": q(0.50), "p99_ms": q(0.99)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runner", choices=("ray", "inprocess"), default="inprocess")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mlac-bench-"))
    port = _port()
    env = {**os.environ, "MLAC_ADMIN_KEY": ADMIN, "MLAC_SCHEDULER_ENABLED": "false", "RAY_USAGE_STATS_ENABLED": "0",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MLAC_RATE_SUBMIT_PER_MIN": "1000000",
           "MLAC_RATE_BURST": "100000", "MLAC_MAX_RUNNING_JOBS": "1"}
    cmd = [sys.executable, "-m", "service", "serve", "--data-dir", str(root / "data"), "--port", str(port)]
    if args.runner == "inprocess":
        cmd.append("--no-ray")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(180):
            try:
                if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        h = {"Authorization": f"Bearer {ADMIN}"}
        ds = httpx.post(f"{url}/v1/datasets/synthetic", json={"n_bios": 800}, headers=h, timeout=120).json()["id"]
        probe = {"kind": "audit", "dataset_id": ds, "preset": "smoke", "audit": {"baselines": ["random"], "tiny_base": True}}
        job = httpx.post(f"{url}/v1/jobs", json={**probe, "audit": {**probe["audit"], "sizes": [20]}}, headers=h).json()["id"]
        time.sleep(1)
        status = [("GET", f"/v1/jobs/{job}", None)]
        submit = [("POST", "/v1/jobs", {**probe, "audit": {**probe["audit"], "seeds": [i % 1000]}}) for i in range(50)]
        # idle: the probe job above finishes first (wait), then measure
        for _ in range(600):
            if httpx.get(f"{url}/v1/jobs/{job}", headers=h).json()["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                break
            time.sleep(1)
        out = {"runner": args.runner, "concurrency": args.concurrency, "seconds": args.seconds}
        print(json.dumps({**out, "phase": "idle", "load": "status GET", **asyncio.run(_load(url, status, args.seconds, args.concurrency))}))
        print(json.dumps({**out, "phase": "idle", "load": "submit POST", **asyncio.run(_load(url, submit, 5, 8))}), flush=True)
        # cancel the jobs the submissions queued, then start one quick audit and measure while it runs
        jobs = httpx.get(f"{url}/v1/jobs", params={"state": "QUEUED", "limit": 200}, headers=h).json()
        while jobs["items"]:
            for j in jobs["items"]:
                httpx.post(f"{url}/v1/jobs/{j['id']}/cancel", headers=h)
            jobs = httpx.get(f"{url}/v1/jobs", params={"state": "QUEUED", "limit": 200}, headers=h).json()
        busy = httpx.post(f"{url}/v1/jobs", json={**probe, "preset": "quick", "audit": {**probe["audit"], "sizes": [20, 100]}},
                          headers=h).json()["id"]
        for _ in range(300):
            if httpx.get(f"{url}/v1/jobs/{busy}", headers=h).json()["progress"].get("stage") in ("search", "baselines"):
                break
            time.sleep(0.5)
        print(json.dumps({**out, "phase": "during audit", "load": "status GET",
                          **asyncio.run(_load(url, [("GET", f"/v1/jobs/{busy}", None)], args.seconds, args.concurrency)),
                          "audit_stage": httpx.get(f"{url}/v1/jobs/{busy}", headers=h).json()["progress"].get("stage")}))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
