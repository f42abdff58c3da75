"""Issue 14, items 9 and Low: no cross-tenant leaks, no server paths, owner-only files, early refusals."""

from __future__ import annotations

import stat
from pathlib import Path

from fastapi.testclient import TestClient

from service.redact import PathRedactor

from .conftest import auth, checkpoint_files, make_settings, new_key


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_another_owners_schedule_neither_blocks_nor_reveals_your_delete(client: TestClient, tiny_checkpoint: Path) -> None:
    alice, bob = new_key(client, "alice"), new_key(client, "bob")
    ids = [client.post("/v1/checkpoints", files=checkpoint_files(tiny_checkpoint), headers=auth(k)).json()["id"]
           for k in (alice, bob)]
    assert ids[0] == ids[1]  # the same files: one id, a row each
    ck = ids[0]
    ds = client.post("/v1/datasets/synthetic", json={"n_bios": 200}, headers=auth(bob)).json()["id"]
    sched = client.post("/v1/schedules", headers=auth(bob), json={
        "name": "bob nightly", "cron": "0 3 * * *",
        "job": {"kind": "censor", "dataset_id": ds, "checkpoint_id": ck}})
    assert sched.status_code == 201, sched.text
    # Bob's own delete is guarded by his schedule ...
    assert client.delete(f"/v1/checkpoints/{ck}", headers=auth(bob)).status_code == 409
    # ... Alice's is not, and she learns nothing about Bob's use of the same files.
    gone = client.delete(f"/v1/checkpoints/{ck}", headers=auth(alice))
    assert gone.status_code == 204, gone.text
    assert client.get(f"/v1/checkpoints/{ck}", headers=auth(alice)).status_code == 404
    assert client.get(f"/v1/checkpoints/{ck}", headers=auth(bob)).status_code == 200  # Bob's files stay
    assert (client.app.state.ctx.settings.artifact_root / "checkpoints" / ck).is_dir()


def test_duplicate_seeds_or_sizes_and_sizes_beyond_the_attack_pool_are_refused_at_submission(client: TestClient) -> None:
    ds = client.post("/v1/datasets/synthetic", json={"n_bios": 200}, headers=auth()).json()["id"]
    client.app.state.ctx.dispatcher.max_running = 0  # accepted jobs stay QUEUED
    base = {"kind": "audit", "dataset_id": ds, "preset": "smoke", "audit": {"baselines": ["random"], "tiny_base": True}}
    for audit, needle in (({"seeds": [0, 0]}, "repeated: [0]"), ({"sizes": [8, 8]}, "repeated: [8]")):
        r = client.post("/v1/jobs", json={**base, "audit": {**base["audit"], **audit}}, headers=auth())
        assert r.status_code == 422 and needle in r.text, r.text
    # 200 bios: the attack pool holds 20% of each gender's rows, 40 here
    from mlac.data import split_sizes

    pool = split_sizes(client.app.state.ctx.store.get_dataset(ds, None).info["strata_counts"])["attack_pool"]
    assert pool == 40
    too_big = client.post("/v1/jobs", json={**base, "audit": {**base["audit"], "sizes": [8, pool + 1]}}, headers=auth())
    assert too_big.status_code == 422 and f"exceed the attack pool ({pool} examples)" in too_big.text, too_big.text
    fits = client.post("/v1/jobs", json={**base, "audit": {**base["audit"], "sizes": [8, pool]}}, headers=auth())
    assert fits.status_code == 201, fits.text  # control: the largest size that fits is accepted
    assert client.get("/v1/jobs", headers=auth()).json()["total"] == 1


def test_split_sizes_match_the_splits_made() -> None:
    from mlac.data import SynthConfig, generate_synthetic, make_splits, split_sizes, strata_counts

    for n, seed in ((57, 0), (200, 1), (333, 2)):
        ds, _ = generate_synthetic(SynthConfig(n_bios=n, seed=seed))
        made = make_splits(ds, seed=seed)
        assert split_sizes(strata_counts(ds)) == {name: len(made.get(name)) for name in
                                                  ("train", "attack_pool", "selection", "report")}


def test_data_dir_database_and_uploads_are_owner_only(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from service.app import create_app

    with TestClient(create_app(make_settings(tmp_path))) as client:
        settings = client.app.state.ctx.settings
        ck = client.post("/v1/checkpoints", files=checkpoint_files(tiny_checkpoint), headers=auth()).json()["id"]
        ds = client.post("/v1/datasets/synthetic", json={"n_bios": 100}, headers=auth()).json()["id"]
        assert _mode(settings.data_dir) == 0o700
        assert _mode(settings.data_dir / "mlac.db") == 0o600
        stored = [*(settings.artifact_root / "checkpoints" / ck).iterdir(),
                  *(settings.artifact_root / "datasets" / ds).iterdir()]
        assert stored and {_mode(p) for p in stored} == {0o600}, {p.name: oct(_mode(p)) for p in stored}


def test_the_ray_folder_is_owner_only(tmp_path: Path) -> None:
    from workers.runtime import ensure_token

    ray_dir = tmp_path / "ray"
    ray_dir.mkdir(mode=0o777)
    ray_dir.chmod(0o777)
    token = ensure_token(ray_dir)
    assert _mode(ray_dir) == 0o700 and _mode(token) == 0o600


def test_server_paths_never_reach_a_client(tmp_path: Path) -> None:
    data = tmp_path / "data"
    redactor = PathRedactor(data, data / "artifacts")
    ck, ds, job = "a" * 64, "ds_" + "1" * 20, "job_" + "2" * 20
    text = (f"bad {data}/artifacts/checkpoints/{ck}/config.json; data {data}/artifacts/datasets/{ds}/data.parquet; "
            f"out {data}/artifacts/jobs/{job}/audit/result.json; staging {data}/staging/x/model.safetensors")
    assert redactor.text(text) == (f"bad checkpoint:{ck}; data dataset:{ds}; out job:{job}/audit/result.json; "
                                   "staging <server>")
    assert str(tmp_path) not in redactor.text(text)
    nested = {"models": [f"{data}/artifacts/checkpoints/{ck}"], "n": 3, f"{data}/k": None}
    assert redactor.json(nested) == {"models": [f"checkpoint:{ck}"], "n": 3, "<server>": None}
    # the relative form runners store (mlac.job_failure strips the data directory) reads the same
    assert redactor.text(f"DataError [x]: artifacts/datasets/{ds}/data.parquet: bad") == f"DataError [x]: dataset:{ds}: bad"
    assert redactor.text(f"in checkpoints/{ck}/config.json") == f"in checkpoint:{ck}"
    # a sibling that merely starts like the data dir is not the data dir
    assert redactor.text(f"{tmp_path}/database/x") == f"{tmp_path}/database/x"


def test_errors_and_results_name_ids_not_server_paths(client: TestClient) -> None:
    ctx = client.app.state.ctx
    ds = client.post("/v1/datasets/synthetic", json={"n_bios": 100}, headers=auth()).json()["id"]
    client.app.state.ctx.dispatcher.max_running = 0
    job = client.post("/v1/jobs", json={"kind": "audit", "dataset_id": ds, "preset": "smoke",
                                        "audit": {"baselines": ["random"], "tiny_base": True, "sizes": [8]}},
                      headers=auth()).json()
    data_dir = str(ctx.settings.data_dir)
    path = ctx.store.get_dataset(ds, None).path
    # a failure whose text names server files, as an mlac error in a worker would
    ctx.store.start_job(job["id"], "test", 1e12)
    ctx.store.finish_job(job["id"], "FAILED", error=f"DataError [invalid_dataset]: {path}: bad row 3")
    shown = client.get(f"/v1/jobs/{job['id']}", headers=auth()).json()
    assert shown["error"] == f"DataError [invalid_dataset]: dataset:{ds}: bad row 3"
    listed = client.get("/v1/jobs", headers=auth()).text
    assert data_dir not in listed and data_dir not in client.get(f"/v1/jobs/{job['id']}", headers=auth()).text
    # a successful audit's result.json records the paths it read: the API shows ids
    folder = ctx.settings.artifact_root / "jobs" / ("job_" + "3" * 20) / "audit"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(f'{{"request": {{"dataset": "{path}"}}}}', encoding="utf-8")
    (folder / "report.html").write_text(f"<p>dataset {path}</p>", encoding="utf-8")
    second = client.post("/v1/jobs", json={"kind": "audit", "dataset_id": ds, "preset": "smoke",
                                           "audit": {"baselines": ["random"], "tiny_base": True, "sizes": [9]}},
                         headers=auth()).json()
    ctx.store.start_job(second["id"], "test", 1e12)
    ctx.store.finish_job(second["id"], "SUCCEEDED", result_path=str(folder))
    result = client.get(f"/v1/jobs/{second['id']}/result", headers=auth())
    assert result.status_code == 200 and result.json() == {"request": {"dataset": f"dataset:{ds}"}}
    report = client.get(f"/v1/jobs/{second['id']}/report", headers=auth())
    assert report.status_code == 200 and data_dir not in report.text and f"dataset:{ds}" in report.text


def test_a_database_password_never_travels_in_driver_arguments(tmp_path: Path, monkeypatch) -> None:
    import os

    from service.driver_secrets import driver_storage_url

    monkeypatch.delenv("PGPASSFILE", raising=False)
    url = "postgresql+psycopg://mlac:s3cr:et\\x@db.internal:5433/audits?options=-csearch_path%3Dx"
    clean = driver_storage_url(url, tmp_path / "secrets")
    assert clean is not None and "s3cr" not in clean
    assert clean == "postgresql+psycopg://mlac@db.internal:5433/audits?options=-csearch_path%3Dx"
    pgpass = tmp_path / "secrets" / "pgpass"
    assert os.environ["PGPASSFILE"] == str(pgpass) and _mode(pgpass) == 0o600
    assert pgpass.read_text() == "db.internal:5433:audits:mlac:s3cr\\:et\\\\x\n"  # libpq's escapes
    # URLs without a password (trust auth, SQLite, none) pass through and write nothing
    for plain in ("postgresql+psycopg://root@127.0.0.1:5432/test", "sqlite:///x.db", None):
        assert driver_storage_url(plain, tmp_path / "other") == plain
    assert not (tmp_path / "other").exists()


def test_cli_submit_retries_with_one_idempotency_key_and_makes_one_job(client: TestClient, monkeypatch, capsys,
                                                                        tmp_path: Path) -> None:
    import argparse
    import json

    import httpx

    import service.cli as cli

    ds = client.post("/v1/datasets/synthetic", json={"n_bios": 100}, headers=auth()).json()["id"]
    client.app.state.ctx.dispatcher.max_running = 0

    class LostFirstAnswer:
        """The first POST reaches the server (the job is made) but its answer is lost on the way back."""

        def __init__(self) -> None:
            self.posts: list[str | None] = []

        def __enter__(self) -> LostFirstAnswer:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def post(self, url: str, json: object, headers: dict[str, str]) -> httpx.Response:
            self.posts.append(headers.get("Idempotency-Key"))
            answer = client.post(url, json=json, headers={**headers, **auth()})
            if len(self.posts) == 1:
                raise httpx.ReadError("connection reset by peer")
            return answer

    lossy = LostFirstAnswer()
    from service.client import Client

    monkeypatch.setattr(cli, "_client", lambda args: Client(http=lossy))
    monkeypatch.setattr(cli.time, "sleep", lambda s: None)
    options = {"audit": {"baselines": ["random"], "tiny_base": True, "sizes": [8]}}
    (tmp_path / "options.json").write_text(json.dumps(options), encoding="utf-8")
    args = argparse.Namespace(kind="audit", dataset=ds, preset="smoke", checkpoint=None, options=tmp_path / "options.json",
                              idempotency_key=None, url="http://test")
    assert cli.cmd_submit(args) == 0
    assert len(lossy.posts) == 2 and lossy.posts[0] == lossy.posts[1] and lossy.posts[0]
    jobs = client.get("/v1/jobs", headers=auth()).json()
    assert jobs["total"] == 1 and capsys.readouterr().out.strip() == jobs["items"][0]["id"]
    # control: the same two deliveries without the key would have made two jobs
    body = {"kind": "audit", "dataset_id": ds, "preset": "smoke", **options}
    for _ in range(2):
        client.post("/v1/jobs", json=body, headers=auth())
    assert client.get("/v1/jobs", headers=auth()).json()["total"] == 3
