"""Prometheus metrics of one app instance (its own registry, so tests can build many apps)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class ServiceMetrics:
    """Counters and histograms the routes, dispatcher and webhooks update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("mlac_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("mlac_http_request_duration_seconds", "HTTP request latency", ["route"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
        self.jobs_submitted = Counter("mlac_jobs_submitted_total", "jobs created", ["kind"], registry=self.registry)
        self.jobs_finished = Counter("mlac_jobs_finished_total", "jobs ended", ["state"], registry=self.registry)
        self.uploads_rejected = Counter("mlac_uploads_rejected_total", "uploads refused", ["code"], registry=self.registry)
        self.webhooks = Counter("mlac_webhook_deliveries_total", "webhook deliveries", ["outcome"], registry=self.registry)
        self.jobs_by_state = Gauge("mlac_jobs", "jobs by state (at scrape time)", ["state"], registry=self.registry)

    def render(self, job_counts: dict[str, int]) -> bytes:
        """The exposition text, with the job gauge refreshed."""
        for state, n in job_counts.items():
            self.jobs_by_state.labels(state=state).set(n)
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware: counts requests and times them by route template (cheap, no body buffering)."""

    def __init__(self, app: Any, metrics: Callable[[], ServiceMetrics | None]) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            m = self.metrics()
            if m is not None:
                route = scope.get("route")
                path = getattr(route, "path", "unmatched")
                m.requests.labels(method=scope["method"], route=path, status=str(status["code"])).inc()
                m.latency.labels(route=path).observe(time.perf_counter() - started)
