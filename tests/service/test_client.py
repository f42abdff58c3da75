"""``service.client.Client`` and the CLI's client commands against the real service over HTTP: uvicorn on a
loopback port in a thread, the in-process runner, SQLite; the smallest audit job (one size, one seed, the harmful
task, one trial)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlac.checkpoint_id import dir_content_id
from mlac.cli.main import main
from service.client import Client, ServiceError
from service.schemas import CheckpointPublic, DatasetPublic, Health, JobPublic
from tests.service.conftest import ADMIN_KEY, make_settings

SMALLEST_AUDIT = {"sizes": [20], "seeds": [0], "tasks": ["harmful"], "max_trials": 1, "reruns": 1}


class _LiveServer:
    """``uvicorn.Server`` on a free loopback port in a thread (the app's lifespan, dispatcher included, runs)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-client-test", daemon=True)

    def __enter__(self) -> _LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(60)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from service.app import create_app

    with _LiveServer(create_app(make_settings(tmp_path_factory.mktemp("client-service")))) as server:
        yield server.url


@pytest.fixture(scope="module")
def dataset_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlac.data import SynthConfig, generate_synthetic, save_dataset

    ds, task = generate_synthetic(SynthConfig(n_bios=300, seed=0))
    return save_dataset(ds, task, tmp_path_factory.mktemp("client-data") / "bios.parquet")


@pytest.fixture
def cli_env(live: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The CLI finds the service and the key in the environment only (no flags)."""
    monkeypatch.setenv("MLAC_URL", live)
    monkeypatch.setenv("MLAC_API_KEY", ADMIN_KEY)
    monkeypatch.setenv("MLAC_CONFIG", str(tmp_path / "absent.toml"))
    return live


def test_client_uploads_submits_waits_and_reads_the_result(live: str, dataset_file: Path,
                                                           tiny_checkpoint: Path) -> None:
    with Client(live, ADMIN_KEY) as c:
        health = c.health()
        assert isinstance(health, Health) and health.status == "ok" and health.runner == "inprocess"
        ds = c.upload_dataset(dataset_file, name="bios")
        assert isinstance(ds, DatasetPublic) and ds.num_rows == 300 and ds.name == "bios"
        assert c.get_dataset(ds.id) == ds and ds.id in [d.id for d in c.list_datasets().items]
        ckpt = c.upload_checkpoint(tiny_checkpoint)
        assert isinstance(ckpt, CheckpointPublic) and ckpt.id == dir_content_id(tiny_checkpoint)
        assert c.get_checkpoint(ckpt.id).id == ckpt.id and ckpt.id in [x.id for x in c.list_checkpoints().items]

        job = c.submit({"kind": "audit", "dataset_id": ds.id, "checkpoint_id": ckpt.id, "audit": SMALLEST_AUDIT},
                       idempotency_key="client-test-1")
        assert isinstance(job, JobPublic) and job.request["preset"] == "smoke"
        again = c.submit({"kind": "audit", "dataset_id": ds.id, "checkpoint_id": ckpt.id, "audit": SMALLEST_AUDIT},
                         idempotency_key="client-test-1")
        assert again.id == job.id  # the retry of one intended job answers with that job
        done = c.wait(job.id, timeout_s=600, poll_s=0.5)
        assert done.state == "SUCCEEDED", done.error
        assert job.id in [j.id for j in c.list_jobs(state="SUCCEEDED").items]
        result = c.result(job.id)
        assert {(row["task"], row["n"]) for row in result["curves"]} == {("harmful", 20)}
        assert b"<html" in c.report(job.id).lower()
        png = c.figure(job.id, "curves")
        assert png is not None and png.startswith(b"\x89PNG")
        assert c.figure(job.id, "no_such_figure") is None
        with pytest.raises(ServiceError) as err:
            c.get_job("job_" + "0" * 20)
        assert err.value.status == 404


def test_cancel_ends_a_job(live: str, dataset_file: Path, tiny_checkpoint: Path) -> None:
    with Client(live, ADMIN_KEY) as c:
        ds = c.upload_dataset(dataset_file)
        ckpt = c.upload_checkpoint(tiny_checkpoint)
        job = c.submit({"kind": "audit", "dataset_id": ds.id, "checkpoint_id": ckpt.id, "audit": SMALLEST_AUDIT})
        cancelled = c.cancel(job.id)
        assert cancelled.cancel_requested or cancelled.state in ("SUCCEEDED", "CANCELLED")
        assert c.wait(job.id, timeout_s=600, poll_s=0.5).state in ("CANCELLED", "SUCCEEDED")


def test_cli_upload_submit_watch_status_result(cli_env: str, dataset_file: Path, tiny_checkpoint: Path,
                                               tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["upload-dataset", str(dataset_file), "--name", "cli-bios"]) == 0
    ds_id = capsys.readouterr().out.strip()
    assert ds_id.startswith("ds_")
    assert main(["upload-checkpoint", str(tiny_checkpoint)]) == 0
    ckpt_id = capsys.readouterr().out.strip()
    assert ckpt_id == dir_content_id(tiny_checkpoint)
    options = tmp_path / "options.json"
    options.write_text('{"audit": {"sizes": [20], "seeds": [0], "tasks": ["harmful"], "max_trials": 1, "reruns": 1}}')
    assert main(["submit", "audit", "--dataset", ds_id, "--checkpoint", ckpt_id, "--options", str(options)]) == 0
    job_id = capsys.readouterr().out.strip()
    assert job_id.startswith("job_")
    assert main(["watch", job_id]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith(f"job {job_id}: SUCCEEDED")
    assert main(["status", job_id]) == 0
    assert '"state": "SUCCEEDED"' in capsys.readouterr().out
    assert main(["result", job_id, "--out", str(tmp_path / "fetched")]) == 0
    assert "harmful" in capsys.readouterr().out and (tmp_path / "fetched" / "report.html").is_file()


def test_cli_service_errors_are_one_line(cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "job_" + "0" * 20]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error [") and "HTTP 404" in err and "\n" not in err
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "weights.pkl").write_bytes(b"\x80\x04N.")
    assert main(["upload-checkpoint", str(tmp_path / "ckpt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error [pickle_refused]: ") and "\n" not in err
    assert main(["upload-dataset", str(tmp_path / "missing.parquet")]) == 2
    assert "no such file" in capsys.readouterr().err
