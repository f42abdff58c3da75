"""Everything the routes need, built once in the app's lifespan (tests pass their own pieces)."""

from __future__ import annotations

import functools
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from service.auth import KEY_PREFIX, KeyResolver, hash_key
from service.dispatcher import Dispatcher
from service.metrics import ServiceMetrics
from service.ratelimit import RateLimiter
from service.redact import PathRedactor
from service.runners import Runner
from service.scheduler import Scheduler
from service.settings import Settings
from service.store import JobStore
from service.webhooks import WebhookSender

log = logging.getLogger(__name__)


@dataclass
class AppState:
    """The service's live objects."""

    settings: Settings
    store: JobStore
    runner: Runner
    keys: KeyResolver
    limiter: RateLimiter
    metrics: ServiceMetrics
    webhooks: WebhookSender
    dispatcher: Dispatcher
    scheduler: Scheduler
    extra: dict[str, object] = field(default_factory=dict)

    @functools.cached_property
    def redactor(self) -> PathRedactor:
        """Takes server paths out of what clients read (errors, results, reports)."""
        return PathRedactor(self.settings.data_dir, self.settings.artifact_root)

    @property
    def staging_dir(self) -> Path:
        """Where uploads stream to before they are validated."""
        return self.settings.data_dir / "staging"


def secret_file(path: Path, prefix: str = "") -> str:
    """Read a secret from ``path``, creating it (0600, random, with ``prefix``) the first time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(prefix + secrets.token_urlsafe(32))
    return path.read_text(encoding="utf-8").strip()


def bootstrap_admin(store: JobStore, settings: Settings) -> str:
    """Make sure the admin key exists: ``MLAC_ADMIN_KEY`` or a generated one in ``<data_dir>/admin_key`` (0600).

    A database left without any active admin key (possible before the store refused to revoke the last one)
    gets the configured key back, so that the operator is never locked out for good.
    """
    raw = settings.admin_key or secret_file(settings.data_dir / "admin_key", KEY_PREFIX)
    key = store.add_api_key("admin", hash_key(raw), True)
    if key.revoked and not any(k.is_admin and not k.revoked for k in store.list_api_keys()):
        log.warning("no active admin key is left: reinstating the configured admin key %s", key.id)
        store.reinstate_api_key(key.id)
    return raw
