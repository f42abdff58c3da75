"""Outgoing webhooks: JSON POSTs signed with HMAC-SHA256, retried with exponential back-off.

Signature header: ``X-MLAC-Signature: sha256=<hex>`` over ``<timestamp>.<body>`` with the timestamp in
``X-MLAC-Timestamp`` (receivers reject old timestamps to stop replays). Delivery runs on a small thread
pool so that a slow receiver never blocks the job store.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from service.metrics import ServiceMetrics

log = logging.getLogger(__name__)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, timestamp + '.' + body)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


@dataclass
class Delivery:
    """The outcome of one webhook (kept in memory for inspection)."""

    url: str
    event: str
    attempts: int = 0
    status: int | None = None
    ok: bool = False
    errors: list[str] = field(default_factory=list)


class WebhookSender:
    """Sends signed webhooks with retries (``retries`` extra attempts, back-off ``base * 2**i``, capped at 60 s)."""

    def __init__(self, secret: str, *, timeout_s: float = 10.0, retries: int = 5, backoff_s: float = 1.0,
                 metrics: ServiceMetrics | None = None, sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.secret, self.timeout_s, self.retries, self.backoff_s = secret, timeout_s, retries, backoff_s
        self.metrics, self.sleep, self.transport = metrics, sleep, transport
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="webhook")

    def send(self, url: str, event: str, payload: dict[str, Any]) -> Future[Delivery]:
        """Queue a delivery; the future resolves when it succeeded or gave up."""
        return self._pool.submit(self._deliver, url, event, payload)

    def _deliver(self, url: str, event: str, payload: dict[str, Any]) -> Delivery:
        body = json.dumps({"event": event, **payload}, sort_keys=True, default=str).encode()
        record = Delivery(url=url, event=event)
        with httpx.Client(timeout=self.timeout_s, transport=self.transport, follow_redirects=False) as client:
            for attempt in range(self.retries + 1):
                record.attempts = attempt + 1
                ts = str(int(time.time()))
                headers = {"Content-Type": "application/json", "X-MLAC-Event": event, "X-MLAC-Timestamp": ts,
                           "X-MLAC-Signature": sign(self.secret, ts, body), "User-Agent": "mlac-audit-webhook/1"}
                try:
                    resp = client.post(url, content=body, headers=headers)
                    record.status = resp.status_code
                    if resp.status_code < 300:
                        record.ok = True
                        break
                    record.errors.append(f"HTTP {resp.status_code}")
                    if resp.status_code < 500 and resp.status_code != 429:
                        break  # the receiver refused it: retrying will not help
                except httpx.HTTPError as exc:
                    record.errors.append(f"{type(exc).__name__}: {exc}")
                if attempt < self.retries:
                    self.sleep(min(60.0, self.backoff_s * 2**attempt))
        if not record.ok:
            log.warning("webhook %s to %s failed after %d attempts: %s", event, url, record.attempts, record.errors[-1:])
        if self.metrics is not None:
            self.metrics.webhooks.labels(outcome="ok" if record.ok else "failed").inc()
        with self._lock:
            self.deliveries.append(record)
        return record

    def close(self) -> None:
        """Wait for queued deliveries and stop the pool."""
        self._pool.shutdown(wait=True, cancel_futures=False)
