"""API keys (admin only): create (the key is shown once), list, set quotas, revoke; and ``GET /v1/keys/me``, the
caller's own limits and usage."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from fastapi import Path as PathParam

from service.auth import generate_key, hash_key
from service.deps import AdminDep, PrincipalDep, StateDep
from service.quotas import limits_for
from service.schemas import (
    ApiKeyCreate,
    ApiKeyPublic,
    ApiKeyUpdate,
    ErrorPublic,
    QuotaLimitsPublic,
    QuotaPublic,
    UsagePublic,
)
from service.state import AppState
from service.store.records import ApiKey, KeyQuota

router = APIRouter(prefix="/v1/keys", tags=["keys"])
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorPublic} for c in (401, 403, 404, 409, 422)}
KeyIdPath = Annotated[str, PathParam(pattern=r"^key_[0-9a-f]{20}$")]
QUOTA_FIELDS = ("max_trial_runs_per_job", "max_active_jobs", "max_stored_bytes")


def key_public(key: ApiKey, raw: str | None = None) -> ApiKeyPublic:
    """API view of a key row (``raw``: the secret, only in the answer that created it)."""
    return ApiKeyPublic(id=key.id, name=key.name, is_admin=key.is_admin, created_at=key.created_at, revoked=key.revoked,
                        key=raw, **{f: getattr(key, f) for f in QUOTA_FIELDS})


def quota_public(state: AppState, key: ApiKey) -> QuotaPublic:
    """A key's effective limits and its usage now."""
    limits, usage = limits_for(key, state.settings), state.store.usage(key.id)
    return QuotaPublic(key_id=key.id, overridden=sorted(limits.overridden),
                       limits=QuotaLimitsPublic(max_trial_runs_per_job=limits.max_trial_runs_per_job,
                                                max_active_jobs=limits.max_active_jobs,
                                                max_stored_bytes=limits.max_stored_bytes),
                       usage=UsagePublic(active_jobs=usage.active_jobs, stored_bytes=usage.stored_bytes))


@router.post("", status_code=201, response_model=ApiKeyPublic, responses=ERRORS)
def create_key(body: ApiKeyCreate, state: StateDep, admin: AdminDep) -> ApiKeyPublic:
    """A new key; only its sha256 is stored, so copy ``key`` from this answer."""
    raw = generate_key()
    quota = KeyQuota(**{f: getattr(body, f) for f in QUOTA_FIELDS})
    return key_public(state.store.add_api_key(body.name, hash_key(raw), body.is_admin, quota=quota), raw)


@router.get("/me", response_model=QuotaPublic, responses=ERRORS)
def my_quota(state: StateDep, principal: PrincipalDep) -> QuotaPublic:
    """Your key's limits (its own overrides, else the service defaults) and what it uses now: active jobs and
    stored bytes. Any key may call it."""
    return quota_public(state, state.store.get_api_key(principal.key_id))


@router.patch("/{key_id}", response_model=ApiKeyPublic, responses=ERRORS)
def update_key(key_id: KeyIdPath, body: ApiKeyUpdate, state: StateDep, admin: AdminDep) -> ApiKeyPublic:
    """Set a key's quota overrides: fields you send change (null: back to the service default), the others stay.
    Takes effect at the key's next submission or upload; jobs already accepted are not touched."""
    key = state.store.get_api_key(key_id)
    quota = KeyQuota(**{f: getattr(body, f) if f in body.model_fields_set else getattr(key, f) for f in QUOTA_FIELDS})
    return key_public(state.store.set_api_key_quota(key_id, quota))


@router.get("", response_model=list[ApiKeyPublic], responses=ERRORS)
def list_keys(state: StateDep, admin: AdminDep) -> list[ApiKeyPublic]:
    """Every key (without the secret)."""
    return [key_public(k) for k in state.store.list_api_keys()]


@router.delete("/{key_id}", status_code=204, responses=ERRORS)
def revoke_key(key_id: KeyIdPath, state: StateDep, admin: AdminDep) -> Response:
    """Revoke a key (effective at once in this process, within seconds in others); 409 for the last active admin key."""
    state.store.revoke_api_key(key_id)
    state.keys.forget()
    return Response(status_code=204)
