"""Per-key rate limits: one token bucket per (key, action), refilled continuously.

In-memory and per process: ``mlac-audit serve`` runs one API process (no ``uvicorn --workers``), so on one
host the limit is exact; with N API replicas on one database each enforces it on its own, so a key gets at
most N times the rate (benchmarks/RESULTS.md, "API load"). A refused request gets 429 with ``Retry-After``
(seconds until a token).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from service.errors import RateLimitedError


class RateLimiter:
    """Token buckets: ``rate_per_min`` tokens per minute, at most ``burst`` saved up."""

    def __init__(self, limits: dict[str, float], burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = dict(limits)
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key_id: str, action: str) -> None:
        """Take one token or raise :class:`RateLimitedError` with the wait in seconds."""
        rate = self.limits[action] / 60.0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get((key_id, action), (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[(key_id, action)] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / rate)
                raise RateLimitedError(f"too many {action} requests for this API key; retry in {wait} s", retry_after=wait)
            self._buckets[(key_id, action)] = (tokens - 1.0, now)
