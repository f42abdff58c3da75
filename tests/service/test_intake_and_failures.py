"""Intake refuses what would fail a job late (custom code, bad tokenizers, float64 weights) with a 422 and stores
nothing; a job that fails in the worker shows a one-line ``error`` and its traceback in ``error_detail``."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from safetensors.torch import load_file, save_file

from mlac.contracts import JobOutcome
from mlac.job_failure import JobFailure
from service.runners import InProcessRunner

from .conftest import auth, checkpoint_files


def _json_edit(name: str, edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / name
        doc = json.loads(path.read_text(encoding="utf-8"))
        edit(doc)
        path.write_text(json.dumps(doc), encoding="utf-8")
    return apply


def _float64(folder: Path) -> None:
    weights = folder / "model.safetensors"
    save_file({k: v.double() for k, v in load_file(str(weights)).items()}, str(weights))


def _truncated_tokenizer(folder: Path) -> None:
    path = folder / "tokenizer.json"
    path.write_bytes(path.read_bytes()[:1000])


def _stored_files(client: TestClient) -> list[Path]:
    data = client.app.state.ctx.settings.data_dir
    return [p for d in (data / "staging", data / "artifacts" / "checkpoints") if d.exists()
            for p in d.rglob("*") if p.is_file()]


@pytest.mark.parametrize(("change", "code", "words"), [
    (_json_edit("tokenizer_config.json", lambda d: d.update(auto_map={"AutoTokenizer": ["tok.Evil", None]})),
     "custom_code_refused", "auto_map"),
    (_json_edit("config.json", lambda d: d.update(auto_map={"AutoModel": "modeling.Evil"})), "custom_code_refused", "auto_map"),
    (_truncated_tokenizer, "bad_tokenizer", "tokenizer.json"),
    (_json_edit("tokenizer.json", lambda d: d["model"]["vocab"].update(zz=30600)), "vocab_mismatch", "token id 30600"),
    (_float64, "bad_dtype", "float64"),
    (_json_edit("config.json", lambda d: d.update(padding="x" * (2 * 1024 * 1024))), "bad_config", "bytes"),  # 2 MiB config
])
def test_checkpoints_that_would_fail_a_job_are_refused_at_upload(client: TestClient, tiny_checkpoint: Path, tmp_path: Path,
                                                                  change, code: str, words: str) -> None:
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    change(folder)
    r = client.post("/v1/checkpoints", files=checkpoint_files(folder), headers=auth())
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == code and words in error["message"] and "\n" not in error["message"], error
    assert str(client.app.state.ctx.settings.data_dir) not in error["message"]
    assert client.get("/v1/checkpoints", headers=auth()).json()["total"] == 0
    assert _stored_files(client) == []


def _wait_terminal(client: TestClient, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=auth()).json()
        if job["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def test_a_job_that_fails_in_the_worker_has_a_one_line_cause_and_the_traceback_apart(client: TestClient) -> None:
    ctx = client.app.state.ctx
    ds = client.post("/v1/datasets/synthetic", json={"n_bios": 100}, headers=auth()).json()["id"]
    ctx.dispatcher.max_running = 0  # hold the job while its dataset file goes bad under it
    job = client.post("/v1/jobs", json={"kind": "audit", "dataset_id": ds, "preset": "smoke",
                                        "audit": {"baselines": ["random"], "tiny_base": True, "sizes": [8]}},
                      headers=auth())
    assert job.status_code in (200, 201, 202), job.text
    Path(ctx.store.get_dataset(ds, None).path).write_bytes(b"PAR1 this is not parquet PAR1")
    ctx.dispatcher.max_running = 1
    ctx.dispatcher.wake()
    shown = _wait_terminal(client, job.json()["id"])
    assert shown["state"] == "FAILED"
    assert shown["error"].startswith("DataError [invalid_dataset]: ") and "not a readable parquet file" in shown["error"]
    assert "\n" not in shown["error"] and "Traceback" not in shown["error"]
    assert str(ctx.settings.data_dir) not in shown["error"]
    assert "Traceback (most recent call last)" in shown["error_detail"] and "load_saved_dataset" in shown["error_detail"]


class _Sink:
    def __init__(self) -> None:
        self.failure: JobFailure | None = None
        self.state: str | None = None
        self.done = threading.Event()

    def event(self, job_id: str, event: dict[str, Any]) -> None:
        pass

    def finished(self, job_id: str, outcome: JobOutcome) -> None:
        self.state, self.failure = outcome.state, outcome.failure
        self.done.set()


def test_an_unexpected_exception_is_reported_by_its_last_line(tmp_path: Path) -> None:
    runner = InProcessRunner(tmp_path / "data" / "artifacts")
    sink = _Sink()
    bad = str(tmp_path / "data" / "artifacts" / "datasets" / "ds_1" / "x.parquet")
    runner.submit("job_1", "audit", {"request": [("dataset", bad), ("unknown",)]}, sink)  # dict() of it: ValueError
    assert sink.done.wait(30)
    assert sink.state == "FAILED" and sink.failure is not None
    assert sink.failure.cause.startswith("ValueError: ") and "\n" not in sink.failure.cause
    assert sink.failure.detail is not None and "Traceback (most recent call last)" in sink.failure.detail


def test_the_store_keeps_the_cause_and_the_detail_apart(store) -> None:
    from service.store.records import NewJob

    job, _ = store.create_job(NewJob(owner="key_a", kind="audit", spec={"x": 1}, spec_hash="h", idempotency_key=None))
    store.start_job(job.id, "proc", time.time() + 60)
    done = store.finish_job(job.id, "FAILED", error="ValueError: boom", error_detail="Traceback (most recent call last):\n...")
    assert done.error == "ValueError: boom" and done.error_detail.startswith("Traceback")
    assert store.get_job(job.id, None).error_detail == done.error_detail
