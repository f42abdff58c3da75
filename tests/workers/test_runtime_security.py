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


LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def _ray_listeners() -> set[tuple[str, str, int]]:
    """(process name, address, port) of every listening socket of this driver and the Ray processes it started."""
    me = psutil.Process()
    found = set()
    for proc in [me, *me.children(recursive=True)]:
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.add((proc.name(), conn.laddr.ip, conn.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_no_ray_port_listens_beyond_loopback(ray_cluster) -> None:
    """GCS, raylet, dashboard, agents, workers and this driver: every listening socket is on loopback."""
    assert ray.is_initialized()
    listeners = _ray_listeners()
    names = {name for name, _, _ in listeners}
    assert {"gcs_server", "raylet"} <= names, f"expected Ray's servers among {names}"
    exposed = {entry for entry in listeners if entry[1] not in LOOPBACK}
    assert not exposed, f"Ray listens beyond loopback: {sorted(exposed)}"
    dash_port = int(ray_cluster.dashboard_url.rsplit(":", 1)[1])
    assert any(port == dash_port for _, _, port in listeners)
