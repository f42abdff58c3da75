"""Outgoing webhooks: a persistent outbox, delivered by a background loop, signed with each tenant's secret.

Signature header: ``X-MLAC-Signature: sha256=<hex>`` over ``<timestamp>.<body>`` with the timestamp in
``X-MLAC-Timestamp`` (receivers reject old timestamps to stop replays) and the secret of the job owner's API
key (``GET /v1/webhooks/secret``). ``X-MLAC-Delivery`` is the outbox row id: delivery is at-least-once (a
process that dies between sending and recording sends again after its claim expires), so receivers dedupe on it.

* **Outbox**: :meth:`WebhookSender.enqueue` writes a row (``mlac_webhook_outbox``); nothing is sent inline, so
  a crash loses nothing: rows still pending are delivered by the next process.
* **Egress policy** (:mod:`service.egress`): the host is resolved and every address checked right before each
  attempt; the connection goes to the checked address (pinned; ``Host`` and TLS SNI keep the name). A refused
  destination is never contacted: its row ends ``refused`` with the reason. Redirects are not followed.
* **Retries**: a timeout, connection error, 408, 429 or 5xx is retried ``retries`` times with back-off
  ``backoff_s * 2**(n-1)`` (capped at one hour); another 3xx/4xx gives up at once (``failed``).
* **Isolation**: at most one delivery in flight per destination (``host:port``) and a destination whose last
  attempt failed is skipped until its back-off ends, so a slow or dead receiver only delays its own deliveries;
  the pool (``workers``) serves the other destinations meanwhile.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

import httpx

from mlac.errors import MlacError
from service.background import WakeableLoop
from service.egress import (
    EgressDeniedError,
    EgressPolicy,
    EgressResolveError,
    PinnedTarget,
    parse_destination,
)
from service.metrics import ServiceMetrics
from service.store import JobStore
from service.store.records import (
    WEBHOOK_DELIVERED,
    WEBHOOK_FAILED,
    WEBHOOK_PENDING,
    WEBHOOK_REFUSED,
    NewWebhook,
    WebhookDelivery,
    WebhookOutcome,
)

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 3600.0
RETRYABLE_4XX = frozenset({408, 429})


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, timestamp + '.' + body)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def new_secret() -> str:
    """A fresh signing secret (256 bits)."""
    return "whsec_" + secrets.token_urlsafe(32)


def pinned_request(client: httpx.Client, target: PinnedTarget, url: str, body: bytes,
                   headers: dict[str, str]) -> httpx.Request:
    """A POST to ``url`` that connects to the checked address, with the URL's name as ``Host`` and TLS SNI."""
    original = httpx.URL(url)
    pinned = original.copy_with(host=str(target.address))
    extensions = {"sni_hostname": target.destination.host} if target.destination.scheme == "https" else {}
    return client.build_request("POST", pinned, content=body, extensions=extensions,
                                headers={**headers, "Host": target.destination.host_header})


class WebhookSender:
    """The outbox's delivery loop: claims due rows, delivers each on a pool thread, records the outcome."""

    def __init__(self, store: JobStore, policy: EgressPolicy, *, timeout_s: float = 10.0, retries: int = 5,
                 backoff_s: float = 1.0, workers: int = 8, poll_s: float = 1.0, metrics: ServiceMetrics | None = None,
                 transport: httpx.BaseTransport | None = None, clock: Callable[[], float] = time.time,
                 instance: str | None = None) -> None:
        self.store, self.policy, self.metrics, self.clock = store, policy, metrics, clock
        self.timeout_s, self.retries, self.backoff_s, self.workers, self.poll_s = timeout_s, retries, backoff_s, workers, poll_s
        self.instance = instance or f"webhooks:{secrets.token_hex(6)}"
        self.claim_s = 4 * timeout_s + 30  # longer than any attempt (connect + write + read) can take
        self._client = httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False, trust_env=False)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook")
        self._lock = threading.Lock()
        self._inflight: dict[str, Future[None]] = {}  # destination -> its one delivery in flight
        self._backoff: dict[str, float] = {}  # destination -> skip it until then (its last attempt failed)
        self._loop = WakeableLoop("mlac-webhooks", self.run_once, poll_s)

    # -- producing
    def enqueue(self, owner: str, url: str, event: str, payload: dict[str, Any], job_id: str | None = None) -> WebhookDelivery:
        """Write a pending delivery (one per job and event) and wake the loop; nothing is sent here."""
        try:
            destination = parse_destination(url).key
        except EgressDeniedError:
            destination = "invalid"
        body = json.dumps({"event": event, **payload}, sort_keys=True, default=str)
        row, _ = self.store.enqueue_webhook(NewWebhook(owner=owner, url=url, destination=destination, event=event,
                                                       body=body, job_id=job_id), self.clock())
        self._loop.wake()
        return row

    # -- the loop
    def start(self) -> None:
        """Run :meth:`run_once` every ``poll_s`` seconds (or when woken) in a daemon thread."""
        self._loop.start()

    def wake(self) -> None:
        """Look for due deliveries now."""
        self._loop.wake()

    def run_once(self) -> list[Future[None]]:
        """Claim due rows for free workers and idle destinations, and start their deliveries."""
        now = self.clock()
        with self._lock:
            self._inflight = {d: f for d, f in self._inflight.items() if not f.done()}
            self._backoff = {d: t for d, t in self._backoff.items() if t > now}
            skip = frozenset(self._inflight) | frozenset(self._backoff)
            free = self.workers - len(self._inflight)
        if free <= 0 or self._loop.stopping.is_set():
            return []
        rows = self.store.claim_webhooks(self.instance, now, now + self.claim_s, free, skip)
        started: list[Future[None]] = []
        for row in rows:
            future = self._pool.submit(self._attempt, row)
            with self._lock:
                self._inflight[row.destination] = future
            future.add_done_callback(lambda _f: self._loop.wake())
            started.append(future)
        return started

    def _attempt(self, row: WebhookDelivery) -> None:
        try:
            outcome = self.deliver(row)
        except Exception as exc:  # never lose the row to a bug: it is retried like a transport error
            log.exception("webhook %s crashed", row.id)
            outcome = self._retry_or_fail(row, None, f"internal error: {type(exc).__name__}")
        if outcome.state == WEBHOOK_PENDING and outcome.next_attempt_at is not None:
            with self._lock:
                self._backoff[row.destination] = outcome.next_attempt_at
        try:
            self.store.record_webhook_attempt(row.id, self.instance, outcome, self.clock())
        except MlacError:
            log.exception("could not record the outcome of webhook %s", row.id)
        if outcome.state != WEBHOOK_DELIVERED:
            log.warning("webhook %s (%s to %s) attempt %d: %s: %s", row.id, row.event, row.destination, row.attempts + 1,
                        outcome.state, outcome.error)
        if self.metrics is not None:
            label = "retried" if outcome.state == WEBHOOK_PENDING else outcome.state
            self.metrics.webhooks.labels(outcome=label).inc()

    def deliver(self, row: WebhookDelivery) -> WebhookOutcome:
        """One attempt: check the destination (nothing is sent when refused), sign with the owner's secret, POST."""
        try:
            target = self.policy.resolve(row.url)
        except EgressDeniedError as exc:
            return WebhookOutcome(state=WEBHOOK_REFUSED, error=str(exc))
        except EgressResolveError as exc:
            return self._retry_or_fail(row, None, str(exc))
        body = row.body.encode()
        ts = str(int(time.time()))
        secret = self.store.webhook_secret(row.owner, new_secret()).secret
        headers = {"Content-Type": "application/json", "X-MLAC-Event": row.event, "X-MLAC-Delivery": row.id,
                   "X-MLAC-Timestamp": ts, "X-MLAC-Signature": sign(secret, ts, body), "User-Agent": "mlac-audit-webhook/2"}
        try:
            request = pinned_request(self._client, target, row.url, body, headers)
            response = self._client.send(request, stream=True)  # the receiver's body is never read
            response.close()
        except httpx.HTTPError as exc:
            return self._retry_or_fail(row, None, f"{type(exc).__name__}: {exc}"[:500])
        code = response.status_code
        if 200 <= code < 300:
            return WebhookOutcome(state=WEBHOOK_DELIVERED, status=code)
        if code >= 500 or code in RETRYABLE_4XX:
            return self._retry_or_fail(row, code, f"HTTP {code}")
        why = "redirects are not followed" if 300 <= code < 400 else "the receiver refused it: retrying will not help"
        return WebhookOutcome(state=WEBHOOK_FAILED, status=code, error=f"HTTP {code}: {why}")

    def _retry_or_fail(self, row: WebhookDelivery, status: int | None, error: str) -> WebhookOutcome:
        attempt = row.attempts + 1
        if attempt > self.retries:
            return WebhookOutcome(state=WEBHOOK_FAILED, status=status, error=f"{error} (gave up after {attempt} attempts)")
        delay = min(MAX_BACKOFF_S, self.backoff_s * 2 ** (attempt - 1))
        return WebhookOutcome(state=WEBHOOK_PENDING, status=status, error=error, next_attempt_at=self.clock() + delay)

    def close(self, wait_s: float | None = None) -> None:
        """Stop the loop, give in-flight deliveries up to ``wait_s`` (default: one timeout), release idle claims."""
        self._loop.stop()
        with self._lock:
            pending = list(self._inflight.values())
        wait_futures(pending, timeout=self.timeout_s if wait_s is None else wait_s)
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            still = any(not f.done() for f in self._inflight.values())
        if not still:  # a stuck delivery keeps its claim (it may still send): the next process waits it out
            try:
                self.store.release_webhook_claims(self.instance)
            except MlacError:
                log.exception("could not release webhook claims")
        self._client.close()
