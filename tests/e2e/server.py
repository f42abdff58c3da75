"""A real service for end-to-end tests: ``python -m service serve`` (uvicorn) in its own process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.health import wait_healthy

ADMIN = "e2e-admin-key-0123456789"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``python -m service serve`` in its own process group."""

    def __init__(self, data_dir: Path, port: int, *extra_args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir, self.port, self.extra_args, self.extra_env = data_dir, port, extra_args, env or {}
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "MLAC_ADMIN_KEY": ADMIN, "MLAC_LEASE_S": "6", "MLAC_SCHEDULER_ENABLED": "false",
               "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
        env.update(self.extra_env)
        env.pop("RAY_ADDRESS", None)
        log = (self.data_dir.parent / f"server-{time.time():.0f}.log").open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "service", "serve", "--data-dir", str(self.data_dir),
                                      "--port", str(self.port), "--num-cpus", "2", *self.extra_args],
                                     cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_healthy(self.url, lambda: self.proc.poll() is None, lambda: f"see {log.name}", 180)

    def kill(self) -> None:
        """SIGKILL the whole process group (the server and the Ray it started)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


def upload_checkpoint(c: httpx.Client, folder: Path) -> str:
    """Upload a checkpoint directory; its id."""
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in sorted(folder.iterdir()) if p.is_file()]
    r = c.post("/v1/checkpoints", files=files)
    assert r.status_code in (200, 201), r.text
    return str(r.json()["id"])


def wait_job(c: httpx.Client, job_id: str, timeout_s: float = 600) -> dict[str, Any]:
    """Poll the job until it ends; it must have SUCCEEDED."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = c.get(f"/v1/jobs/{job_id}").json()
        if got["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            assert got["state"] == "SUCCEEDED", got["error"]
            return dict(got)
        assert time.monotonic() < deadline, got
        time.sleep(1)
