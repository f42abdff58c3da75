"""Datasets: upload JSONL/parquet with named text and label columns (validated), or generate a synthetic one."""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from mlac.data import (
    SynthConfig,
    dataset_fingerprint,
    generate_synthetic,
    load_dataset_file,
    save_dataset,
    strata_counts,
)
from mlac.errors import DataError, MlacError
from service.deps import PrincipalDep, StateDep
from service.errors import BadUploadError
from service.quotas import check_stored_bytes, declared_bytes
from service.schemas import Column, DatasetPublic, DatasetsPublic, ErrorPublic, SyntheticDatasetCreate
from service.store.records import DatasetRec
from service.store.sql import new_id
from service.uploads import stream_to_dir

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorPublic} for c in (400, 401, 404, 409, 413, 422, 429)}
DATA_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet")
DatasetIdPath = Annotated[str, PathParam(pattern=r"^ds_[0-9a-f]{20}$")]
MULTIPART_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file"], "properties": {"file": {"type": "string", "format": "binary"}},
        }}},
    }
}


def public(d: DatasetRec) -> DatasetPublic:
    """API view of a dataset row."""
    return DatasetPublic(id=d.id, name=d.name, source=d.source, num_rows=d.num_rows, fingerprint=d.fingerprint,
                         beneficial_names=list(d.info.get("beneficial_names", [])),
                         harmful_names=list(d.info.get("harmful_names", [])), created_at=d.created_at)


def _allowed(name: str) -> None:
    if not name.lower().endswith(DATA_SUFFIXES):
        raise BadUploadError(f"{name}: upload a .jsonl, .json or .parquet file")


def _store_dataset(state: Any, owner: str, name: str, source: str, ds: Any, task: Any, extra: dict[str, Any]) -> DatasetRec:
    dataset_id = new_id("ds")
    path = save_dataset(ds, task, state.settings.artifact_root / "datasets" / dataset_id / "data.parquet")
    for written in path.parent.iterdir():  # a tenant's data: owner-only, like the uploads
        written.chmod(0o600)
    size = sum(f.stat().st_size for f in path.parent.iterdir() if f.is_file())
    try:
        check_stored_bytes(state.store, state.settings, owner, size, "this dataset")
    except MlacError:
        shutil.rmtree(path.parent, ignore_errors=True)  # a fresh folder of this request only: nothing else goes
        raise
    info = {"beneficial_names": list(task.beneficial_names), "harmful_names": list(task.harmful_names),
            "strata_counts": strata_counts(ds), **extra}  # lets a submission check its sizes against the attack pool
    row = DatasetRec(id=dataset_id, owner=owner, name=name, source=source, path=str(path), num_rows=len(ds),
                     fingerprint=dataset_fingerprint(ds), info=info, created_at=time.time(), size_bytes=size)
    return state.store.add_dataset(row)  # type: ignore[no-any-return]


@router.post("", status_code=201, response_model=DatasetPublic, responses=ERRORS, openapi_extra=MULTIPART_BODY)
async def upload_dataset(
    request: Request, state: StateDep, principal: PrincipalDep,
    text_column: Annotated[Column, Query()] = "text",
    beneficial_column: Annotated[Column, Query()] = "profession",
    harmful_column: Annotated[Column, Query()] = "gender",
    name: Annotated[str, Query(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]*$")] = "upload",
) -> DatasetPublic:
    """Upload one JSONL/JSON/parquet file (multipart ``file``) with a text column and two integer label columns.

    Pronouns are scrubbed and the first sentence dropped as for Bias in Bios. A file that is not strict JSON /
    readable parquet, lacks a column, has a non-string text, labels that are not whole numbers, a beneficial
    label outside 0..999, a harmful label other than 0/1, or fewer than two classes per label gives 422
    ``invalid_dataset`` (limits: :class:`mlac.limits.DatasetLimits`).
    """
    state.limiter.hit(principal.key_id, "upload")
    if beneficial_column == harmful_column:
        raise DataError("beneficial_column and harmful_column must name different columns")
    await run_in_threadpool(check_stored_bytes, state.store, state.settings, principal.key_id,
                            declared_bytes(request.headers.get("content-length")), "an upload")  # 413 before reading
    staging = state.staging_dir / f"data-{secrets.token_hex(8)}"
    staged = await stream_to_dir(request.stream(), request.headers.get("content-type"), request.headers.get("content-length"),
                                 staging, state.settings.dataset_max_bytes, allowed=_allowed, max_files=1)
    try:
        (filename,) = staged.files
        ds, task = await run_in_threadpool(load_dataset_file, staging / filename, text_column, (beneficial_column, harmful_column))
        if len(ds) < 20:
            raise DataError(f"{filename}: {len(ds)} rows; an audit needs at least 20")
        return public(await run_in_threadpool(_store_dataset, state, principal.key_id, name, "upload", ds, task,
                                              {"file": filename, "text_column": text_column}))
    except MlacError as exc:
        state.metrics.uploads_rejected.labels(code=exc.code).inc()
        raise
    finally:
        staged.discard()


@router.post("/synthetic", status_code=201, response_model=DatasetPublic, responses=ERRORS)
def create_synthetic(body: SyntheticDatasetCreate, state: StateDep, principal: PrincipalDep) -> DatasetPublic:
    """Generate seeded synthetic biographies (same parameters -> byte-identical data). Rate-limited before the body
    is read (:mod:`service.guards`)."""
    params = body.model_dump(exclude={"name"})
    ds, task = generate_synthetic(SynthConfig(**params))
    return public(_store_dataset(state, principal.key_id, body.name, "synthetic", ds, task, {"generator": params}))


@router.get("", response_model=DatasetsPublic, responses=ERRORS)
def list_datasets(state: StateDep, principal: PrincipalDep, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                  offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> DatasetsPublic:
    """Your datasets, newest first (the admin sees all)."""
    items, total = state.store.list_datasets(principal.owner_filter, limit, offset)
    return DatasetsPublic(items=[public(d) for d in items], total=total, limit=limit, offset=offset)


@router.get("/{dataset_id}", response_model=DatasetPublic, responses=ERRORS)
def get_dataset(dataset_id: DatasetIdPath, state: StateDep, principal: PrincipalDep) -> DatasetPublic:
    """One dataset."""
    return public(state.store.get_dataset(dataset_id, principal.owner_filter))


@router.delete("/{dataset_id}", status_code=204, responses=ERRORS)
def delete_dataset(dataset_id: DatasetIdPath, state: StateDep, principal: PrincipalDep) -> Response:
    """Delete a dataset (409 while a queued or running job or a schedule uses it)."""
    row = state.store.delete_dataset(dataset_id, principal.owner_filter)
    folder = Path(row.path).parent
    if folder.parent == state.settings.artifact_root / "datasets":
        shutil.rmtree(folder, ignore_errors=True)
    return Response(status_code=204)
