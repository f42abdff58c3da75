"""Checkpoints: multipart upload of an HF encoder directory (streamed, capped, validated), list, get, delete, and
download of their files (streamed, owner-checked): the model a defend job produced comes back this way."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from mlac.checkpoint_id import content_id
from mlac.errors import CheckpointError, MlacError
from mlac.models import validate_checkpoint_dir
from mlac.models.checkpoint import PICKLE_SUFFIXES
from service.checkpoint_store import CHECKPOINT_FILES, checkpoints_root, delete_row, store_upload
from service.deps import PrincipalDep, StateDep
from service.errors import BadUploadError, NotFoundError
from service.quotas import check_stored_bytes, declared_bytes
from service.schemas import (
    CheckpointFilePublic,
    CheckpointFilesPublic,
    CheckpointPublic,
    CheckpointsPublic,
    ErrorPublic,
)
from service.state import AppState
from service.store.records import Checkpoint
from service.uploads import StagedUpload, stream_to_dir

router = APIRouter(prefix="/v1/checkpoints", tags=["checkpoints"])

ShaPath = Annotated[str, PathParam(pattern=r"^[0-9a-f]{64}$", description="checkpoint id")]
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
    return CheckpointPublic(id=c.sha256, sha256=c.sha256, weights_sha256=info.get("weights_sha256"), name=c.name,
                            size_bytes=c.size_bytes, model_type=info.get("model_type"), hidden_size=info.get("hidden_size"),
                            num_parameters=info.get("num_parameters"), num_beneficial=info.get("num_beneficial"),
                            created_at=c.created_at, source_job=info.get("source_job"),
                            parent_checkpoint=info.get("parent_checkpoint"), defense=info.get("defense"))


def _commit(state: AppState, owner: str, name: str | None, staged: StagedUpload) -> tuple[Checkpoint, bool]:
    """Validate the staged directory, place it at its content address and insert the owner's row."""
    info = validate_checkpoint_dir(staged.dir)
    files = {file: sha for file, (_, sha) in staged.files.items()}
    if files.get("model.safetensors") != info.sha256:
        raise CheckpointError("the weights changed between upload and validation", code="sha_mismatch")
    meta = {"model_type": info.model_type, "hidden_size": info.hidden_size, "num_parameters": info.num_parameters,
            "num_beneficial": info.num_beneficial, "weights_sha256": info.sha256, "files": files}
    size = sum(s for s, _ in staged.files.values())
    try:  # the same files again cost nothing more (the answer is the existing row)
        state.store.get_checkpoint(content_id(files), owner)
    except NotFoundError:
        check_stored_bytes(state.store, state.settings, owner, size, "this checkpoint")

    def row_for(checkpoint_id: str, final: Path) -> Checkpoint:
        return Checkpoint(sha256=checkpoint_id, owner=owner, name=name or f"checkpoint-{checkpoint_id[:12]}",
                          path=str(final), size_bytes=size, info=meta, created_at=time.time())

    return store_upload(state.store, checkpoints_root(state.settings.artifact_root), staged.dir, files, row_for)


@router.post("", status_code=201, response_model=CheckpointPublic, responses=ERRORS, openapi_extra=MULTIPART_BODY)
async def upload_checkpoint(
    request: Request, response: Response, state: StateDep, principal: PrincipalDep,
    name: Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]*$")] = None,
) -> CheckpointPublic:
    """Upload config.json, model.safetensors and the tokenizer files as multipart ``files``.

    The body is streamed to disk with the size cap enforced on the way (413), every file is hashed while
    streaming, and the directory is validated without unpickling anything (422 with a specific ``code``
    such as ``header_too_large`` or ``shape_mismatch``). The checkpoint's id is the sha256 of the manifest
    of every file's name and sha256 (``mlac.checkpoint_id``): the same weights with another config or
    tokenizer are another checkpoint. Uploading the same files again answers 200 with your existing row.
    """
    state.limiter.hit(principal.key_id, "upload")
    await run_in_threadpool(check_stored_bytes, state.store, state.settings, principal.key_id,
                            declared_bytes(request.headers.get("content-length")), "an upload")  # 413 before reading
    staging = state.staging_dir / f"ckpt-{secrets.token_hex(8)}"
    try:
        staged = await stream_to_dir(request.stream(), request.headers.get("content-type"),
                                     request.headers.get("content-length"), staging, state.settings.upload_max_bytes,
                                     allowed=allowed_file)
    except MlacError as exc:
        state.metrics.uploads_rejected.labels(code=exc.code).inc()
        raise
    try:
        saved, created = await run_in_threadpool(_commit, state, principal.key_id, name, staged)
    except MlacError as exc:
        staged.discard()
        state.metrics.uploads_rejected.labels(code=exc.code).inc()
        raise
    except BaseException:
        staged.discard()
        raise
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
    """One checkpoint by its id."""
    return public(state.store.get_checkpoint(sha256, principal.owner_filter))


FileName = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_.\-]{1,100}$", description="a file of the checkpoint")]


def _files(state: AppState, sha256: str, owner: str | None) -> tuple[Path, dict[str, str]]:
    """The owner's checkpoint folder and its files (name -> sha256), as stored at upload or registration."""
    ckpt = state.store.get_checkpoint(sha256, owner)  # another key's checkpoint is a 404
    files = ckpt.info.get("files")
    if not isinstance(files, dict) or not files:  # rows from before file manifests were kept: list what is there
        files = {p.name: "" for p in sorted(Path(ckpt.path).iterdir()) if p.is_file() and p.name in CHECKPOINT_FILES}
    return Path(ckpt.path), {str(k): str(v) for k, v in files.items()}


@router.get("/{sha256}/files", response_model=CheckpointFilesPublic, responses=ERRORS)
def list_checkpoint_files(sha256: ShaPath, state: StateDep, principal: PrincipalDep) -> CheckpointFilesPublic:
    """The checkpoint's files with their sizes and sha256 (download each from ``files/{name}``)."""
    folder, files = _files(state, sha256, principal.owner_filter)
    return CheckpointFilesPublic(id=sha256, files=[
        CheckpointFilePublic(name=name, sha256=sha or None, size_bytes=(folder / name).stat().st_size,
                             href=f"/v1/checkpoints/{sha256}/files/{name}")
        for name, sha in sorted(files.items()) if (folder / name).is_file()])


@router.get("/{sha256}/files/{name}", response_class=FileResponse,
            responses={**ERRORS, 200: {"content": {"application/octet-stream": {}}}})
def download_checkpoint_file(sha256: ShaPath, name: FileName, state: StateDep, principal: PrincipalDep) -> FileResponse:
    """One file of the checkpoint, streamed (``ETag`` = its sha256 where known)."""
    folder, files = _files(state, sha256, principal.owner_filter)
    if name not in files or not (folder / name).is_file():
        raise NotFoundError(f"checkpoint {sha256[:12]} has no file {name!r}; its files: {', '.join(sorted(files))}")
    headers = {"ETag": f'"{files[name]}"'} if files[name] else {}
    return FileResponse(folder / name, media_type="application/octet-stream", filename=name, headers=headers)


@router.delete("/{sha256}", status_code=204, responses=ERRORS)
def delete_checkpoint(sha256: ShaPath, state: StateDep, principal: PrincipalDep) -> Response:
    """Delete a checkpoint (409 while a queued or running job or a schedule uses it); its files go with the last row."""
    delete_row(state.store, checkpoints_root(state.settings.artifact_root), sha256, principal.owner_filter)
    return Response(status_code=204)
