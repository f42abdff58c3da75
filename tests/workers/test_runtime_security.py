"""The embedded Ray keeps token auth on and its dashboard on loopback."""

from __future__ import annotations

import urllib.error
import urllib.request

import psutil
import pytest
import ray

pytestmark = pytest.mark.ray


def _status(url: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_dashboard_job_api_needs_the_token(ray_cluster) -> None:
    url = f"{ray_cluster.dashboard_url}/api/jobs/"
    assert _status(url, {}) == 401
    assert _status(url, {"Authorization": "Bearer not-the-token"}) in (401, 403)
    assert _status(url, ray_cluster.auth_headers()) == 200
    assert ray_cluster.dashboard_url.startswith("http://127.0.0.1:")


def test_token_file_is_private(ray_cluster) -> None:
    assert ray_cluster.token_path.stat().st_mode & 0o077 == 0
    assert len(ray_cluster.token()) >= 32


def _ray_listeners() -> set[tuple[str, str, int]]:
    temp = str(ray_cluster_temp())
    found = set()
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if temp not in cmd:
                continue
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.add((proc.info["name"], conn.laddr.ip, conn.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def ray_cluster_temp() -> str:
    from ray._private.worker import global_worker

    return global_worker.node.get_temp_dir_path()


def test_dashboard_listens_on_loopback_only(ray_cluster) -> None:
    """The dashboard (the HTTP surface people use) is bound to 127.0.0.1 alone.

    Ray 2.60's own gRPC servers (GCS, raylet, core workers) and its internal metrics endpoints bind
    every interface whatever node IP is given; they check the token. README "Security" says so and
    how to fence them (host firewall / private network); this test pins what we control.
    """
    listeners = _ray_listeners()
    assert listeners, "found no Ray process listening"
    dash_port = int(ray_cluster.dashboard_url.rsplit(":", 1)[1])
    on_dash_port = {ip for _, ip, port in listeners if port == dash_port}
    assert on_dash_port == {"127.0.0.1"}
    assert ray.is_initialized()
