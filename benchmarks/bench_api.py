"""API load from a second process: job-status GETs and submissions, p50/p99 latency and throughput,
idle and while an audit runs.

Usage: ``python benchmarks/bench_api.py [--runner ray|inprocess] [--client wrk|httpx] [--seconds 15]``.

Starts ``python -m service serve`` on a loopback port (SQLite under a temp dir; ``--runner ray``, the
default as in ``mlac-audit serve``, starts a local Ray; ``inprocess`` is ``serve --no-ray``), creates a
synthetic dataset and a probe job, then drives the API from other processes:

- ``--client wrk`` (default when ``wrk`` is on PATH; ``apt-get install wrk``): the C load generator, one
  thread, ``--concurrency`` keep-alive connections. On a 2-core machine an async Python client spends
  more CPU per request than the server does and becomes the bottleneck.
- ``--client httpx``: ``--procs`` processes, each an async httpx loop.

Prints one JSON line per phase with requests/s, p50/p99 (ms), errors (non-2xx and socket errors) and the
API process's CPU time per request (user+sys from /proc, Linux: a number that does not depend on what
else loads the machine). The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.health
from tests.health import wait_healthy

ADMIN = "bench-admin-key-0123456789"
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    """user+sys CPU seconds of one process (0 where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- httpx client (several processes) ---------------------------------------------------------------------

async def _httpx_loop(url: str, method: str, path: str, body: dict | None, seconds: float, concurrency: int) -> dict:
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, limits=limits, timeout=30) as c:
        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t = time.perf_counter()
                try:
                    ok = (await c.request(method, path, json=body)).status_code < 400
                except httpx.HTTPError:
                    ok = False
                lat.append(time.perf_counter() - t)
                errors += 0 if ok else 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"lat": lat, "errors": errors}


def _httpx_proc(args: tuple[str, str, str, dict | None, float, int], q: Any) -> None:
    q.put(asyncio.run(_httpx_loop(*args)))


def load_httpx(url: str, method: str, path: str, body: dict | None, seconds: float, concurrency: int, procs: int) -> dict:
    q: Any = mp.get_context("spawn").Queue()
    per = max(1, concurrency // procs)
    workers = [mp.get_context("spawn").Process(target=_httpx_proc, args=((url, method, path, body, seconds, per), q))
               for _ in range(procs)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    parts = [q.get() for _ in workers]
    wall = time.perf_counter() - started
    for w in workers:
        w.join()
    lat = sorted(x for p in parts for x in p["lat"])
    q_ms = lambda p: round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 2)  # noqa: E731
    return {"client": f"httpx x{procs}", "requests": len(lat), "errors": sum(p["errors"] for p in parts),
            "rps": round(len(lat) / wall, 1), "p50_ms": q_ms(0.50), "p99_ms": q_ms(0.99)}


# -- wrk ----------------------------------------------------------------------------------------------------

def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(text)
    return round(float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)], 2)


def load_wrk(url: str, method: str, path: str, body: dict | None, seconds: float, concurrency: int) -> dict:
    script = None
    if method != "GET":
        fd, script = tempfile.mkstemp(suffix=".lua")
        with os.fdopen(fd, "w") as fh:
            fh.write(f'wrk.method = "{method}"\nwrk.body = {json.dumps(json.dumps(body))}\n'
                     'wrk.headers["Content-Type"] = "application/json"\n')
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s",
           "-H", f"Authorization: Bearer {ADMIN}", *(["-s", script] if script else []), url + path]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finally:
        if script:
            os.unlink(script)
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"client": "wrk", "requests": requests,
            "errors": (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0),
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            "p50_ms": _ms(re.search(r"\s50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
            "p99_ms": _ms(re.search(r"\s99%\s+(\S+)", out).group(1))}  # type: ignore[union-attr]


# -- the benchmark --------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runner", choices=("ray", "inprocess"), default="ray")
    ap.add_argument("--client", choices=("wrk", "httpx"), default="wrk" if shutil.which("wrk") else "httpx")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--procs", type=int, default=2, help="load processes of the httpx client")
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
    h = {"Authorization": f"Bearer {ADMIN}"}

    def load(method: str, path: str, body: dict | None, seconds: float, concurrency: int) -> dict:
        cpu0, t0 = _cpu_s(proc.pid), time.perf_counter()
        out = (load_wrk(url, method, path, body, seconds, concurrency) if args.client == "wrk"
               else load_httpx(url, method, path, body, seconds, concurrency, args.procs))
        cpu, wall = _cpu_s(proc.pid) - cpu0, time.perf_counter() - t0
        return {**out, "api_cpu_us_per_request": round(1e6 * cpu / max(1, out["requests"]), 1),
                "api_cpu_share": round(cpu / wall, 2)}

    def job(job_id: str) -> dict:
        return httpx.get(f"{url}/v1/jobs/{job_id}", headers=h, timeout=30).json()

    print(json.dumps({"uptime_before": os.getloadavg()}), flush=True)
    try:
        wait_healthy(url, lambda: proc.poll() is None, lambda: f"exit code {proc.returncode}", timeout_s=300)
        ds = httpx.post(f"{url}/v1/datasets/synthetic", json={"n_bios": 800}, headers=h, timeout=120).json()["id"]
        probe = {"kind": "audit", "dataset_id": ds, "preset": "smoke", "audit": {"baselines": ["random"], "tiny_base": True}}
        first = httpx.post(f"{url}/v1/jobs", json={**probe, "audit": {**probe["audit"], "sizes": [20]}}, headers=h).json()["id"]
        # idle: the probed job is cancelled at once (nothing runs while the idle phases measure)
        httpx.post(f"{url}/v1/jobs/{first}/cancel", headers=h, timeout=60)
        for _ in range(600):
            if job(first)["state"] in TERMINAL:
                break
            time.sleep(0.5)
        out = {"runner": args.runner, "concurrency": args.concurrency, "seconds": args.seconds}
        print(json.dumps({**out, "phase": "idle", "load": "GET /v1/jobs/{id}",
                          **load("GET", f"/v1/jobs/{first}", None, args.seconds, args.concurrency)}), flush=True)
        body = {**probe, "audit": {**probe["audit"], "seeds": [7]}}
        print(json.dumps({**out, "phase": "idle", "load": "POST /v1/jobs", **load("POST", "/v1/jobs", body, 5, 8)}),
              flush=True)
        # cancel the jobs the submissions queued, then start one quick audit and measure while it runs
        while items := httpx.get(f"{url}/v1/jobs", params={"state": "QUEUED", "limit": 200}, headers=h, timeout=60).json()["items"]:
            for j in items:
                httpx.post(f"{url}/v1/jobs/{j['id']}/cancel", headers=h, timeout=60)
        while httpx.get(f"{url}/v1/jobs", params={"state": "RUNNING"}, headers=h, timeout=60).json()["total"]:
            time.sleep(0.5)
        busy = httpx.post(f"{url}/v1/jobs", json={**probe, "preset": "quick", "audit": {**probe["audit"], "sizes": [20, 100]}},
                          headers=h).json()["id"]
        for _ in range(600):
            if job(busy)["progress"].get("stage") == "search":
                break
            time.sleep(0.5)
        stage = job(busy)["progress"].get("stage")
        result = load("GET", f"/v1/jobs/{busy}", None, args.seconds, args.concurrency)
        after = job(busy)
        print(json.dumps({**out, "phase": "during audit", "load": "GET /v1/jobs/{id}", **result,
                          "audit_stage": f"{stage} -> {after['progress'].get('stage')}", "audit_state_after": after["state"],
                          "trials_done_after": after["progress"].get("trials_done")}), flush=True)
    finally:
        print(json.dumps({"uptime_after": os.getloadavg()}), flush=True)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
