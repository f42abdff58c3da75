#!/usr/bin/env python3
"""Container health check of the mlac-audit images: exit 0 when this container's role answers healthy.

Usage: ``mlac-healthcheck [api|ray-head|ray-worker]``. Without an argument the role is the one the
entry point wrote to ``MLAC_ROLE_FILE`` (default ``/tmp/mlac-role``), so the image's single HEALTHCHECK
fits every role. Standard library only: the check must work even when the project's imports are slow.

- ``api``: ``GET /v1/health`` of the service on 127.0.0.1 (``MLAC_PORT``, default 8000).
- ``ray-head`` and ``ray-worker``: ``GET /api/healthz`` of the node's Ray dashboard agent on 127.0.0.1
  (``RAY_DASHBOARD_AGENT_PORT``, default 52365). It checks the local raylet (and the GCS on the head)
  and is one of the few Ray HTTP paths that token authentication leaves open, so no token is needed.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

ROLES = ("api", "ray-head", "ray-worker")


def health_url(role: str) -> str:
    """The loopback URL whose 200 answer means ``role`` is healthy."""
    if role == "api":
        return f"http://127.0.0.1:{os.environ.get('MLAC_PORT', '8000')}/v1/health"
    if role in ("ray-head", "ray-worker"):
        return f"http://127.0.0.1:{os.environ.get('RAY_DASHBOARD_AGENT_PORT', '52365')}/api/healthz"
    raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")


def current_role(argv: list[str]) -> str:
    """The role named on the command line, else the one the entry point recorded, else ``api``."""
    if argv:
        return argv[0]
    role_file = os.environ.get("MLAC_ROLE_FILE", "/tmp/mlac-role")
    try:
        with open(role_file, encoding="utf-8") as handle:
            return handle.read().strip() or "api"
    except FileNotFoundError:
        return "api"


def check(url: str, timeout: float) -> str | None:
    """None when ``url`` answers 200, otherwise the reason it is unhealthy."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status == 200:
                return None
            return f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(exc)


def main(argv: list[str]) -> int:
    """Exit status for Docker: 0 healthy, 1 unhealthy, 2 misuse."""
    role = current_role(argv)
    try:
        url = health_url(role)
    except ValueError as exc:
        print(f"mlac-healthcheck: {exc}", file=sys.stderr)
        return 2
    reason = check(url, timeout=float(os.environ.get("MLAC_HEALTHCHECK_TIMEOUT", "5")))
    if reason is None:
        return 0
    print(f"mlac-healthcheck: {role} unhealthy: {url}: {reason}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
