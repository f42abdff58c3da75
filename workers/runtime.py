"""Starting or joining Ray, with token authentication on.

One function, :func:`init_ray`, is used by the service, the CLI and the tests. In the embedded default
it starts a local Ray whose dashboard listens on 127.0.0.1, whose temp dir lives under the project's
data directory, and whose token authentication (Ray 2.60's default) stays on: a token is generated
once into ``<data_dir>/ray/auth_token`` and handed to Ray through ``RAY_AUTH_TOKEN_PATH``.

Loopback only: Ray turns a node IP of 127.0.0.1 into the machine's routable address unless
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` is false (its switch for single-machine clusters); with it off the
node IP stays 127.0.0.1, and then the GCS, raylet, agents and workers all bind loopback instead of
every interface. Ray reads that switch at import, so :func:`init_ray` sets it for the processes it
starts and mirrors it into this process's copy. Joining an
existing cluster (``RAY_ADDRESS``) uses whatever token that cluster was given (``RAY_AUTH_TOKEN_PATH``
or ``RAY_AUTH_TOKEN``), which :func:`auth_headers` then reads.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ray

from workers.settings import RaySettings

log = logging.getLogger(__name__)

TOKEN_FILE = "auth_token"


@dataclass(frozen=True)
class RayHandle:
    """What a caller needs after :func:`init_ray`: where the dashboard is and how to authenticate."""

    dashboard_url: str | None
    gcs_address: str | None
    token_path: Path | None
    started_locally: bool

    def token(self) -> str | None:
        """The cluster's auth token (None when the cluster has none)."""
        return read_token(self.token_path)

    def auth_headers(self) -> dict[str, str]:
        """HTTP headers for the dashboard's REST API."""
        tok = self.token()
        return {"Authorization": f"Bearer {tok}"} if tok else {}


def read_token(path: Path | None) -> str | None:
    """The token from ``path``, else from ``RAY_AUTH_TOKEN``, else None."""
    if path is not None and path.is_file():
        return path.read_text(encoding="utf-8").strip()
    return os.environ.get("RAY_AUTH_TOKEN") or None


def ensure_token(ray_dir: Path) -> Path:
    """Create ``<ray_dir>/auth_token`` (0600) once and return its path; ``ray_dir`` is made 0700 (Ray's session
    folders inside it are world-writable by Ray's own choice, so the folder above them must not be)."""
    ray_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(ray_dir, 0o700)
    path = ray_dir / TOKEN_FILE
    if not path.is_file():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path


def init_ray(settings: RaySettings) -> RayHandle:
    """Connect to ``settings.address`` or start a local Ray; idempotent within a process.

    When this process is already connected, the existing connection is kept as it is: its auth
    settings are not touched (switching the token of a live connection makes Ray abort)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        env_path = os.environ.get("RAY_AUTH_TOKEN_PATH")
        return RayHandle(_dashboard_url(), _gcs_address(), Path(env_path) if env_path else None, started_locally=False)
    if settings.address:
        env_path = os.environ.get("RAY_AUTH_TOKEN_PATH")
        token_path = Path(env_path) if env_path else None
        if token_path is not None or os.environ.get("RAY_AUTH_TOKEN"):
            os.environ.setdefault("RAY_AUTH_MODE", "token")
            _refresh_ray_auth_config()
        if not ray.is_initialized():
            ray.init(address=settings.address, log_to_driver=False)
        return RayHandle(_dashboard_url(), settings.address, token_path, started_locally=False)
    ray_dir = (settings.data_dir / "ray").resolve()
    token_path = ensure_token(ray_dir)
    _single_machine_loopback()
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token_path)
    _refresh_ray_auth_config()
    if not ray.is_initialized():
        temp_dir = short_temp_dir(ray_dir / "t")
        ctx = ray.init(
            num_cpus=settings.num_cpus,
            num_gpus=settings.num_gpus,
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=settings.dashboard_port or None,
            _temp_dir=str(temp_dir),
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
        )
        log.info("started local Ray; dashboard at http://%s", ctx.dashboard_url)
    return RayHandle(_dashboard_url(), _gcs_address(), token_path, started_locally=True)


#: Ray puts AF_UNIX sockets (107-byte limit) ~75 characters below its temp dir.
MAX_TEMP_DIR_LEN = 30


def short_temp_dir(wanted: Path) -> Path:
    """``wanted`` if short enough for Ray's socket paths, else a short symlink to it in the system temp dir.

    The files stay under the data directory either way; only the path Ray is given is shortened.
    """
    wanted.mkdir(parents=True, exist_ok=True)
    if len(str(wanted)) <= MAX_TEMP_DIR_LEN:
        return wanted
    link = Path(tempfile.gettempdir()) / f"mlac-ray-{hashlib.sha256(str(wanted).encode()).hexdigest()[:8]}"
    if link.is_symlink() and Path(os.readlink(link)) != wanted:
        link.unlink()
    if not link.is_symlink():
        link.symlink_to(wanted, target_is_directory=True)
    return link


def _single_machine_loopback() -> None:
    """Keep the embedded node's IP at 127.0.0.1 (see the module docstring) so nothing binds 0.0.0.0."""
    from ray._private import ray_constants

    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def _refresh_ray_auth_config() -> None:
    """Make this process see the auth env set above: Ray caches its config and token at import."""
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]  # Cython module, no stubs

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _dashboard_url() -> str | None:
    from ray._private.worker import global_worker

    node = getattr(global_worker, "node", None)
    url = getattr(node, "webui_url", None) if node is not None else None
    if url and not str(url).startswith("http"):
        url = f"http://{url}"
    return url


def _gcs_address() -> str | None:
    from ray._private.worker import global_worker

    node = getattr(global_worker, "node", None)
    return getattr(node, "gcs_address", None) if node is not None else None


def shutdown_ray() -> None:
    """Disconnect (and stop a locally started Ray)."""
    if ray.is_initialized():
        ray.shutdown()
