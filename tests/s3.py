"""A local S3 server for tests: ``moto`` in server mode on a free loopback port, with a bucket, and the AWS
environment variables that point boto3/s3fs at it (fake credentials; nothing leaves the machine)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

MOTO_SERVER = str(Path(sys.executable).with_name("moto_server"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def s3_server(bucket: str = "mlac-test", log: Path | None = None) -> Iterator[dict[str, str]]:
    """Start moto, create ``bucket``; yields the environment a client needs (``AWS_ENDPOINT_URL`` and fake keys)."""
    port = _free_port()
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen([MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.put(f"{env['AWS_ENDPOINT_URL']}/{bucket}", timeout=5).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        yield env
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
        if log is not None and not isinstance(out, int):
            out.close()
