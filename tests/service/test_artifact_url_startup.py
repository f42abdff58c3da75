"""A bad ``MLAC_ARTIFACT_URL`` stops ``serve`` at start-up with one line naming the store, not at the first job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.multinode.cluster import free_port


@pytest.mark.parametrize(("url", "says"), [("nosuchscheme://bucket/prefix", "cannot open the artifact store nosuchscheme://"),
                                           ("file:///proc/1/no/such/dir", "cannot open the artifact store file:///proc")])
def test_serve_refuses_a_store_it_cannot_open(tmp_path: Path, url: str, says: str) -> None:
    env = {**os.environ, "MLAC_ARTIFACT_URL": url, "RAY_USAGE_STATS_ENABLED": "0", "MLAC_SCHEDULER_ENABLED": "false",
           "MLAC_ADMIN_KEY": "startup-test-admin-key-0123456789"}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run([sys.executable, "-m", "service", "serve", "--data-dir", str(tmp_path / "data"),
                           "--port", str(free_port()), "--num-cpus", "1"], env=env, capture_output=True, text=True,
                          timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-2000:]
    assert says in out, out[-2000:]
    assert "Traceback (most recent call last)" not in out, out[-3000:]
