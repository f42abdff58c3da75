"""API keys (admin only): create (the key is shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from fastapi import Path as PathParam

from service.auth import generate_key, hash_key
from service.deps import AdminDep, StateDep
from service.schemas import ApiKeyCreate, ApiKeyPublic, ErrorPublic

router = APIRouter(prefix="/v1/keys", tags=["keys"])
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorPublic} for c in (401, 403, 404, 409, 422)}


@router.post("", status_code=201, response_model=ApiKeyPublic, responses=ERRORS)
def create_key(body: ApiKeyCreate, state: StateDep, admin: AdminDep) -> ApiKeyPublic:
    """A new key; only its sha256 is stored, so copy ``key`` from this answer."""
    raw = generate_key()
    key = state.store.add_api_key(body.name, hash_key(raw), body.is_admin)
    return ApiKeyPublic(id=key.id, name=key.name, is_admin=key.is_admin, created_at=key.created_at, revoked=False, key=raw)


@router.get("", response_model=list[ApiKeyPublic], responses=ERRORS)
def list_keys(state: StateDep, admin: AdminDep) -> list[ApiKeyPublic]:
    """Every key (without the secret)."""
    return [ApiKeyPublic(id=k.id, name=k.name, is_admin=k.is_admin, created_at=k.created_at, revoked=k.revoked)
            for k in state.store.list_api_keys()]


@router.delete("/{key_id}", status_code=204, responses=ERRORS)
def revoke_key(key_id: Annotated[str, PathParam(pattern=r"^key_[0-9a-f]{20}$")], state: StateDep, admin: AdminDep) -> Response:
    """Revoke a key (effective at once in this process, within seconds in others); 409 for the last active admin key."""
    state.store.revoke_api_key(key_id)
    state.keys.forget()
    return Response(status_code=204)
