"""Waiting for a service process started by a test to answer ``GET /v1/health``."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx


def wait_healthy(url: str, alive: Callable[[], bool], describe: Callable[[], str], timeout_s: float) -> None:
    """Block until ``url/v1/health`` answers 200; AssertionError (with ``describe()``) if the process exits
    (``alive()`` false) or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert alive(), f"the service exited: {describe()}"
        try:
            if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the service did not come up in {timeout_s:.0f} s: {describe()}")
