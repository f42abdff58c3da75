"""Checkpoints: multipart upload of an HF encoder directory (streamed, capped, validated), list, get, delete."""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from mlac.errors import CheckpointError, MlacError
from mlac.models import validate_checkpoint_dir
from mlac.models.checkpoint import PICKLE_SUFFIXES
from service.deps import PrincipalDep, StateDep
from service.errors import BadUploadError
from service.schemas import CheckpointPublic, CheckpointsPublic, ErrorPublic
from service.store.records import Checkpoint
from service.uploads import stream_to_dir

router = APIRouter(prefix="/v1/checkpoints", tags=["checkpoints"])

CHECKPOINT_FILES = frozenset({
    "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
    "merges.txt", "special_tokens_map.json", "added_tokens.json", "provenance.json", "spiece.model",
    "sentencepiece.bpe.model", "generation_config.json",
})
ShaPath = Annotated[str, PathParam(pattern=r"^[0-9a-f]{64}$")]
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorPublic} for c in (400, 401, 404, 409, 413, 422, 429)}
MULTIPART_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["files"],
            "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
        }}},
    }
}


def allowed_file(name: str) -> None:
    """Refuse anything but the files of an HF encoder directory; a pickle is named as such."""
    if name in CHECKPOINT_FILES:
        return
    if name.endswith(PICKLE_SUFFIXES):
        raise CheckpointError(f"{name}: pickle-based weights are never loaded; upload model.safetensors", code="pickle_refused")
    raise BadUploadError(f"unexpected file {name!r}; allowed: {', '.join(sorted(CHECKPOINT_FILES))}")


def public(c: Checkpoint) -> CheckpointPublic:
    """API view of a checkpoint row."""
    info = c.info
    return CheckpointPublic(id=c.sha256, sha256=c.sha256, name=c.name, size_bytes=c.size_bytes, model_type=info.get("model_type"),
                            hidden_size=info.get("hidden_size"), num_parameters=info.get("num_parameters"),
                            num_beneficial=info.get("num_beneficial"), created_at=c.created_at)


def _place(staging: Path, final: Path) -> None:
    """Move a validated staging dir to its content address (an existing copy wins)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staging, final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)


@router.post("", status_code=201, response_model=CheckpointPublic, responses=ERRORS, openapi_extra=MULTIPART_BODY)
async def upload_checkpoint(
    request: Request, response: Response, state: StateDep, principal: PrincipalDep,
    name: Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]*$")] = None,
) -> CheckpointPublic:
    """Upload config.json, model.safetensors and the tokenizer files as multipart ``files``.

    The body is streamed to disk with the size cap enforced on the way (413), the weights are hashed
    while streaming (the checkpoint's id is that sha256), and the directory is validated without
    unpickling anything (422 with a specific ``code`` such as ``header_too_large`` or ``shape_mismatch``).
    Uploading the same weights again answers 200 with the existing checkpoint.
    """
    state.limiter.hit(principal.key_id, "upload")
    staging = state.staging_dir / f"ckpt-{secrets.token_hex(8)}"
    try:
        staged = await stream_to_dir(request.stream(), request.headers.get("content-type"),
                                     request.headers.get("content-length"), staging, state.settings.upload_max_bytes,
                                     allowed=allowed_file)
    except MlacError as exc:
        state.metrics.uploads_rejected.labels(code=exc.code).inc()
        raise
    try:
        info = await run_in_threadpool(validate_checkpoint_dir, staging)
        streamed_sha = staged.files.get("model.safetensors", (0, ""))[1]
        if streamed_sha != info.sha256:
            raise CheckpointError("the weights changed between upload and validation", code="sha_mismatch")
        final = state.settings.artifact_root / "checkpoints" / info.sha256
        await run_in_threadpool(_place, staging, final)
    except MlacError as exc:
        staged.discard()
        state.metrics.uploads_rejected.labels(code=exc.code).inc()
        raise
    except BaseException:
        staged.discard()
        raise
    size = sum(s for s, _ in staged.files.values())
    row = Checkpoint(sha256=info.sha256, owner=principal.key_id, name=name or f"checkpoint-{info.sha256[:12]}", path=str(final),
                     size_bytes=size, info={"model_type": info.model_type, "hidden_size": info.hidden_size,
                                            "num_parameters": info.num_parameters, "num_beneficial": info.num_beneficial,
                                            "files": sorted(staged.files)}, created_at=time.time())
    saved, created = await run_in_threadpool(state.store.add_checkpoint, row)
    response.status_code = 201 if created else 200
    return public(saved)


@router.get("", response_model=CheckpointsPublic, responses=ERRORS)
def list_checkpoints(state: StateDep, principal: PrincipalDep, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                     offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> CheckpointsPublic:
    """Your checkpoints, newest first (the admin sees all)."""
    items, total = state.store.list_checkpoints(principal.owner_filter, limit, offset)
    return CheckpointsPublic(items=[public(c) for c in items], total=total, limit=limit, offset=offset)


@router.get("/{sha256}", response_model=CheckpointPublic, responses=ERRORS)
def get_checkpoint(sha256: ShaPath, state: StateDep, principal: PrincipalDep) -> CheckpointPublic:
    """One checkpoint by the sha256 of its weights."""
    return public(state.store.get_checkpoint(sha256, principal.owner_filter))


@router.delete("/{sha256}", status_code=204, responses=ERRORS)
def delete_checkpoint(sha256: ShaPath, state: StateDep, principal: PrincipalDep) -> Response:
    """Delete a checkpoint (409 while a queued or running job or a schedule uses it)."""
    ckpt = state.store.get_checkpoint(sha256, principal.owner_filter)
    remaining = state.store.delete_checkpoint(sha256, principal.owner_filter)
    stored = state.settings.artifact_root / "checkpoints" / sha256
    if remaining == 0 and Path(ckpt.path) == stored:
        shutil.rmtree(stored, ignore_errors=True)
    return Response(status_code=204)
