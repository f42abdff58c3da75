"""Webhooks: the caller's signing secret (read, rotate) and the caller's deliveries (why one did not arrive)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from service.deps import PrincipalDep, StateDep
from service.schemas import (
    ErrorPublic,
    WebhookDeliveriesPublic,
    WebhookDeliveryPublic,
    WebhookSecretPublic,
    WebhookState,
)
from service.store.records import WEBHOOK_PENDING, WebhookDelivery
from service.webhooks import new_secret

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorPublic} for c in (401, 422)}


def public(row: WebhookDelivery) -> WebhookDeliveryPublic:
    """API view of an outbox row (the body and claim bookkeeping stay inside)."""
    return WebhookDeliveryPublic(
        id=row.id, owner=row.owner, job_id=row.job_id, url=row.url, event=row.event, state=row.state,  # type: ignore[arg-type]
        attempts=row.attempts, next_attempt_at=row.next_attempt_at if row.state == WEBHOOK_PENDING else None,
        last_status=row.last_status, last_error=row.last_error, created_at=row.created_at, updated_at=row.updated_at,
        delivered_at=row.delivered_at)


@router.get("/secret", response_model=WebhookSecretPublic, responses=ERRORS)
def get_secret(state: StateDep, principal: PrincipalDep) -> WebhookSecretPublic:
    """Your key's signing secret (created on first use); every delivery for your jobs is signed with it."""
    row = state.store.webhook_secret(principal.key_id, new_secret())
    return WebhookSecretPublic(secret=row.secret, created_at=row.created_at)


@router.post("/secret/rotate", response_model=WebhookSecretPublic, responses=ERRORS)
def rotate_secret(state: StateDep, principal: PrincipalDep) -> WebhookSecretPublic:
    """Replace your signing secret; attempts from now on (retries of pending deliveries included) use the new one."""
    row = state.store.rotate_webhook_secret(principal.key_id, new_secret())
    return WebhookSecretPublic(secret=row.secret, created_at=row.created_at)


@router.get("/deliveries", response_model=WebhookDeliveriesPublic, responses=ERRORS)
def list_deliveries(state: StateDep, principal: PrincipalDep,
                    job_id: Annotated[str | None, Query(pattern=r"^job_[0-9a-f]{20}$")] = None,
                    delivery_state: Annotated[WebhookState | None, Query(alias="state")] = None,
                    limit: Annotated[int, Query(ge=1, le=200)] = 50,
                    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> WebhookDeliveriesPublic:
    """Your webhook deliveries (the admin sees all), newest first, filtered by job or state."""
    items, total = state.store.list_webhooks(principal.owner_filter, job_id=job_id, state=delivery_state,
                                             limit=limit, offset=offset)
    return WebhookDeliveriesPublic(items=[public(r) for r in items], total=total, limit=limit, offset=offset)
