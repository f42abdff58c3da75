"""Custom Ray metrics, shown in the Ray dashboard's metrics view (Prometheus/Grafana)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ray.util import metrics


@lru_cache(maxsize=1)
def audit_metrics() -> dict[str, Any]:
    """Counters/gauges created once per process (Ray metrics must not be re-registered)."""
    return {
        "started": metrics.Counter("mlac_trials_started", description="attack trials started", tag_keys=("job",)),
        "finished": metrics.Counter("mlac_trials_finished", description="attack trials finished", tag_keys=("job",)),
        "failed": metrics.Counter("mlac_trials_failed", description="attack trials failed", tag_keys=("job",)),
        "best_harmful": metrics.Gauge(
            "mlac_best_harmful_accuracy", description="best harmful report accuracy found so far", tag_keys=("job",)
        ),
    }
