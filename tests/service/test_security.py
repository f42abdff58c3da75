"""Security of the API: auth on every route, ownership, upload caps, bad checkpoints, strict models, limits."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import struct
import threading
from pathlib import Path

import pytest
import torch
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from safetensors.torch import load_file, save_file

from service.app import create_app

from .conftest import ADMIN_KEY, auth, checkpoint_files, make_settings, new_key

PUBLIC = {"/v1/health"}  # the docs too need a key (test_docs_need_a_key)
SAMPLE = {"job_id": "job_" + "0" * 20, "dataset_id": "ds_" + "0" * 20, "schedule_id": "sch_" + "0" * 20,
          "key_id": "key_" + "0" * 20, "sha256": "0" * 64, "name": "curves"}


def api_routes(routes) -> list[APIRoute]:
    """Every APIRoute of the app, including those of included routers."""
    out: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            out.append(route)
        elif hasattr(route, "original_router"):
            out.extend(api_routes(route.original_router.routes))
        elif hasattr(route, "routes"):
            out.extend(api_routes(route.routes))
    return out


def test_every_route_but_health_needs_a_valid_key(client: TestClient) -> None:
    routes = api_routes(client.app.routes)
    paths = {r.path for r in routes}
    assert {"/v1/jobs", "/v1/checkpoints", "/v1/datasets", "/v1/schedules", "/metrics", "/v1/keys"} <= paths
    checked = 0
    for route in routes:
        if route.path in PUBLIC:
            continue
        url = re.sub(r"{(\w+)}", lambda m: SAMPLE[m.group(1)], route.path)
        for method in sorted(route.methods - {"HEAD"}):
            for headers in ({}, {"Authorization": "Bearer wrong-key-123"}, {"X-API-Key": "wrong"}):
                r = client.request(method, url, headers=headers)
                assert r.status_code == 401, (method, url, headers, r.status_code, r.text)
                assert r.json()["error"]["code"] == "unauthorized"
            checked += 1
    assert checked >= 20
    assert {"/openapi.json", "/docs"} <= paths  # walked above: 401 without a valid key
    assert client.get("/v1/health").status_code == 200


def test_docs_need_a_key(client: TestClient) -> None:
    for path in ("/openapi.json", "/docs"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong-key-123"}).status_code == 401
    schema = client.get("/openapi.json", headers=auth(ADMIN_KEY))
    assert schema.status_code == 200
    assert "/v1/jobs" in schema.json()["paths"]
    assert "/openapi.json" not in schema.json()["paths"] and "/docs" not in schema.json()["paths"]
    page = client.get("/docs", headers={"X-API-Key": ADMIN_KEY})
    assert page.status_code == 200 and "swagger-ui" in page.text and "/openapi.json" in page.text
    for path in ("/redoc", "/docs/oauth2-redirect"):  # FastAPI's public defaults are gone
        assert client.get(path, headers=auth(ADMIN_KEY)).status_code == 404


def test_cross_key_access_is_404_and_admin_sees_all(client: TestClient, tiny_checkpoint: Path) -> None:
    alice, bob = new_key(client, "alice"), new_key(client, "bob")
    ds = client.post("/v1/datasets/synthetic", json={"n_bios": 200}, headers=auth(alice)).json()["id"]
    ck = client.post("/v1/checkpoints", files=checkpoint_files(tiny_checkpoint), headers=auth(alice)).json()["id"]
    job = client.post("/v1/jobs", json={"kind": "audit", "dataset_id": ds, "checkpoint_id": ck,
                                        "audit": {"sizes": [20], "seeds": [0]}}, headers=auth(alice))
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]
    client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(alice))
    for url in (f"/v1/datasets/{ds}", f"/v1/checkpoints/{ck}", f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/events",
                f"/v1/jobs/{job_id}/trials"):
        assert client.get(url, headers=auth(bob)).status_code == 404, url
        assert client.get(url, headers=auth(alice)).status_code == 200, url
        assert client.get(url, headers=auth(ADMIN_KEY)).status_code == 200, url
    assert client.delete(f"/v1/datasets/{ds}", headers=auth(bob)).status_code == 404
    assert client.delete(f"/v1/checkpoints/{ck}", headers=auth(bob)).status_code == 404
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(bob)).status_code == 404
    r = client.post("/v1/jobs", json={"kind": "audit", "dataset_id": ds, "checkpoint_id": ck}, headers=auth(bob))
    assert r.status_code == 404  # bob cannot use alice's dataset
    assert client.get("/v1/jobs", headers=auth(bob)).json()["total"] == 0
    assert client.get("/v1/jobs", headers=auth(ADMIN_KEY)).json()["total"] == 1
    assert client.post("/v1/keys", json={"name": "x"}, headers=auth(bob)).status_code == 403
    assert client.get("/metrics", headers=auth(bob)).status_code == 403  # every tenant's counts: admin only
    assert client.get("/metrics", headers=auth(ADMIN_KEY)).status_code == 200


def _leftovers(client: TestClient) -> list[Path]:
    data = client.app.state.ctx.settings.data_dir
    found = [p for p in (data / "staging").rglob("*") if p.is_file()] if (data / "staging").exists() else []
    ckpts = data / "artifacts" / "checkpoints"
    return found + ([p for p in ckpts.rglob("*") if p.is_file()] if ckpts.exists() else [])


def test_upload_over_cap_without_content_length_is_413_and_leaves_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, upload_max_bytes=64 * 1024)
    with TestClient(create_app(settings)) as client:
        boundary = "b0undary"

        def body():
            yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"model.safetensors\"\r\n"
                   "Content-Type: application/octet-stream\r\n\r\n").encode()
            for _ in range(64):
                yield b"\0" * 4096

        r = client.post("/v1/checkpoints", content=body(), headers={**auth(), "Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        assert _leftovers(client) == []
        big = [("files", ("model.safetensors", b"\0" * (80 * 1024), "application/octet-stream"))]
        r = client.post("/v1/checkpoints", files=big, headers=auth())  # with Content-Length: refused up front
        assert r.status_code == 413
        assert _leftovers(client) == []
        assert client.get("/v1/checkpoints", headers=auth()).json()["total"] == 0


def _rewrite(folder: Path, mutate) -> None:
    tensors = load_file(str(folder / "model.safetensors"))
    mutate(tensors)
    save_file(tensors, str(folder / "model.safetensors"))


def _first_trunk_key(tensors: dict) -> str:
    return next(k for k in sorted(tensors) if k.endswith("attention.self.query.weight"))


def _raw_header_file(path: Path, header: dict, data: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def _bad(kind: str, folder: Path) -> None:
    weights = folder / "model.safetensors"
    if kind == "header_too_large":
        weights.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    elif kind == "header_out_of_bounds":
        weights.write_bytes(struct.pack("<Q", 10_000) + b'{"a": 1}')
    elif kind == "bad_offsets":
        _raw_header_file(weights, {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                   "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12)
    elif kind == "bad_dtype":
        _rewrite(folder, lambda t: t.__setitem__(_first_trunk_key(t), t[_first_trunk_key(t)].to(torch.int32)))
    elif kind == "shape_mismatch":
        _rewrite(folder, lambda t: t.__setitem__(_first_trunk_key(t), t[_first_trunk_key(t)][:-1].contiguous()))
    elif kind == "non_finite":
        def poison(t: dict) -> None:
            x = t[_first_trunk_key(t)].clone()
            x[0, 0] = float("nan")
            t[_first_trunk_key(t)] = x
        _rewrite(folder, poison)
    elif kind == "trailing_bytes":
        with weights.open("ab") as fh:
            fh.write(b"extra")
    elif kind == "pickle":
        torch.save({"w": torch.zeros(3)}, str(weights))  # a pickle (zip) renamed .safetensors
    elif kind == "missing_config":
        (folder / "config.json").unlink()
    else:
        raise ValueError(kind)


@pytest.mark.parametrize("kind,codes", [
    ("header_too_large", {"header_too_large"}),
    ("header_out_of_bounds", {"header_out_of_bounds"}),
    ("bad_offsets", {"bad_offsets"}),
    ("bad_dtype", {"bad_dtype"}),
    ("shape_mismatch", {"shape_mismatch"}),
    ("non_finite", {"non_finite"}),
    ("trailing_bytes", {"trailing_bytes"}),
    ("pickle", {"header_too_large"}),
    ("missing_config", {"missing_config"}),
])
def test_bad_checkpoints_are_refused_with_a_specific_code(client: TestClient, tiny_checkpoint: Path, tmp_path: Path,
                                                          kind: str, codes: set[str]) -> None:
    folder = tmp_path / kind
    shutil.copytree(tiny_checkpoint, folder)
    _bad(kind, folder)
    r = client.post("/v1/checkpoints", files=checkpoint_files(folder), headers=auth())
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]["code"] in codes, r.json()
    assert client.get("/v1/checkpoints", headers=auth()).json()["total"] == 0
    assert _leftovers(client) == []


def test_pickle_file_names_and_unknown_files_are_refused(client: TestClient) -> None:
    r = client.post("/v1/checkpoints", files=[("files", ("pytorch_model.bin", b"x", "application/octet-stream"))], headers=auth())
    assert r.status_code == 422 and r.json()["error"]["code"] == "pickle_refused"
    r = client.post("/v1/checkpoints", files=[("files", ("../../etc/passwd", b"x", "text/plain"))], headers=auth())
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_upload"
    assert _leftovers(client) == []


def test_good_checkpoint_is_content_addressed_and_delete_is_guarded(client: TestClient, tiny_checkpoint: Path) -> None:
    first = client.post("/v1/checkpoints", files=checkpoint_files(tiny_checkpoint), headers=auth())
    assert first.status_code == 201
    again = client.post("/v1/checkpoints", files=checkpoint_files(tiny_checkpoint), headers=auth())
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    from mlac.models.provenance import sha256_file

    # the documented id: sha256 of the manifest of every file (sha256sum lines, sorted by name)
    lines = "".join(f"{sha256_file(p)}  {p.name}\n" for p in sorted(tiny_checkpoint.iterdir()) if p.is_file())
    assert first.json()["id"] == first.json()["sha256"] == hashlib.sha256(f"mlac-checkpoint-manifest/1\n{lines}".encode()).hexdigest()
    assert first.json()["weights_sha256"] == sha256_file(tiny_checkpoint / "model.safetensors")
    ck = first.json()["id"]
    ds = client.post("/v1/datasets/synthetic", json={"n_bios": 200}, headers=auth()).json()["id"]
    client.app.state.ctx.dispatcher.max_running = 0  # keep the job QUEUED (nothing dispatched)
    job = client.post("/v1/jobs", json={"kind": "censor", "dataset_id": ds, "checkpoint_id": ck}, headers=auth()).json()
    assert client.delete(f"/v1/checkpoints/{ck}", headers=auth()).status_code == 409
    assert client.delete(f"/v1/datasets/{ds}", headers=auth()).status_code == 409
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth()).json()["state"] == "CANCELLED"
    assert client.delete(f"/v1/checkpoints/{ck}", headers=auth()).status_code == 204
    assert client.get(f"/v1/checkpoints/{ck}", headers=auth()).status_code == 404
    assert not (client.app.state.ctx.settings.artifact_root / "checkpoints" / ck).exists()


def test_a_censored_checkpoint_gets_the_id_its_files_would_get_uploaded(client: TestClient, tiny_checkpoint: Path,
                                                                        tmp_path: Path) -> None:
    from types import SimpleNamespace

    out = tmp_path / "jobs" / "job_1" / "censored"
    shutil.copytree(tiny_checkpoint, out)
    (out / "mlac_resume").mkdir()  # the training's resume state is not part of the checkpoint
    (out / "mlac_resume" / "state.json").write_text("{}")
    ctx = client.app.state.ctx
    ctx.dispatcher.sink._register_defended(SimpleNamespace(owner="key_censor", id="job_1", spec={}, checkpoint_sha=None),
                                           out)
    uploaded = client.post("/v1/checkpoints", files=checkpoint_files(tiny_checkpoint), headers=auth()).json()
    row = ctx.store.get_checkpoint(uploaded["id"], "key_censor")
    assert row.path == str(out) and row.info["weights_sha256"] == uploaded["weights_sha256"]


def test_unknown_fields_and_out_of_range_values_are_422(client: TestClient) -> None:
    ds = client.post("/v1/datasets/synthetic", json={"n_bios": 200}, headers=auth()).json()["id"]
    bad_bodies = [
        {"kind": "audit", "dataset_id": ds, "surprise": 1},
        {"kind": "audit", "dataset_id": ds, "audit": {"sizes": [20], "bogus": True}},
        {"kind": "audit", "dataset_id": ds, "audit": {"sizes": [0]}},
        {"kind": "audit", "dataset_id": ds, "audit": {"max_trials": 10**9}},
        {"kind": "nope", "dataset_id": ds},
        {"kind": "censor", "dataset_id": ds},  # a censor job needs a checkpoint
    ]
    for body in bad_bodies:
        r = client.post("/v1/jobs", json=body, headers=auth())
        assert r.status_code == 422, (body, r.text)
        assert "code" in r.json()["error"]
    assert client.post("/v1/datasets/synthetic", json={"n_bios": 10**9}, headers=auth()).status_code == 422
    assert client.post("/v1/keys", json={"name": "x", "admin": True}, headers=auth()).status_code == 422


def test_eight_threads_one_idempotency_key_make_one_job(client: TestClient) -> None:
    ds = client.post("/v1/datasets/synthetic", json={"n_bios": 600}, headers=auth()).json()["id"]
    client.app.state.ctx.dispatcher.max_running = 0
    body = {"kind": "audit", "dataset_id": ds, "audit": {"baselines": ["random"], "tiny_base": True}}
    ids: list[str] = []
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def submit() -> None:
        barrier.wait()
        r = client.post("/v1/jobs", json=body, headers={**auth(), "Idempotency-Key": "same-key"})
        statuses.append(r.status_code)
        ids.append(r.json().get("id", ""))

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * 7 + [201]
    assert len(set(ids)) == 1
    assert client.get("/v1/jobs", headers=auth()).json()["total"] == 1
    other = client.post("/v1/jobs", json={**body, "preset": "quick"}, headers={**auth(), "Idempotency-Key": "same-key"})
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_conflict"


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, rate_submit_per_min=1.0, rate_burst=2))) as client:
        ds = client.post("/v1/datasets/synthetic", json={"n_bios": 600}, headers=auth()).json()["id"]
        client.app.state.ctx.dispatcher.max_running = 0
        body = {"kind": "audit", "dataset_id": ds, "audit": {"baselines": ["random"], "tiny_base": True}}
        codes = [client.post("/v1/jobs", json=body, headers=auth()).status_code for _ in range(3)]
        assert codes[:2] == [201, 201] and codes[2] == 429
        r = client.post("/v1/jobs", json=body, headers=auth())
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(r.headers["Retry-After"]) <= 60


def test_the_last_active_admin_key_cannot_be_revoked(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        admin_id = next(k["id"] for k in client.get("/v1/keys", headers=auth()).json() if k["is_admin"])
        r = client.delete(f"/v1/keys/{admin_id}", headers=auth())
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "conflict" and "last active admin key" in r.json()["error"]["message"]
        assert client.get("/v1/keys", headers=auth()).status_code == 200  # not locked out
        user = client.post("/v1/keys", json={"name": "user"}, headers=auth()).json()
        assert client.delete(f"/v1/keys/{user['id']}", headers=auth()).status_code == 204  # other keys: as before
        ops = client.post("/v1/keys", json={"name": "ops", "is_admin": True}, headers=auth()).json()
        assert client.delete(f"/v1/keys/{admin_id}", headers=auth(ops["key"])).status_code == 204  # one remains
        assert client.get("/v1/keys", headers=auth()).status_code == 401
        assert client.delete(f"/v1/keys/{ops['id']}", headers=auth(ops["key"])).status_code == 409
    with TestClient(create_app(settings)) as client:  # a restart keeps the revocation: another admin exists
        assert client.get("/v1/keys", headers=auth()).status_code == 401
        assert client.get("/v1/keys", headers=auth(ops["key"])).status_code == 200


def test_a_database_left_without_an_admin_gets_the_configured_key_back(tmp_path: Path) -> None:
    """Before the guard an admin could revoke the last admin key; the next start reinstates the configured one."""
    from sqlalchemy import update

    from service.store.tables import api_keys

    settings = make_settings(tmp_path)
    with TestClient(create_app(settings)) as client, client.app.state.ctx.store.engine.begin() as conn:
        conn.execute(update(api_keys).values(revoked=True))  # what the old DELETE /v1/keys/{id} allowed
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/keys", headers=auth()).status_code == 200


def _variant(src: Path, dst: Path, **config: object) -> Path:
    """A copy of the checkpoint ``src`` with the same weights and ``config`` merged into its config.json."""
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text(encoding="utf-8"))
    mlac_meta = config.pop("mlac", {})
    cfg.update(config)
    cfg.setdefault("mlac", {}).update(mlac_meta)
    (dst / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    return dst


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _loaded_dir(client: TestClient, key: str, ck: str) -> Path:
    """The directory a censor job of ``key`` on checkpoint ``ck`` loads, resolved as the dispatcher resolves it."""
    from service.jobspec import worker_spec
    from service.schemas import JobCreate

    ds = client.post("/v1/datasets/synthetic", json={"n_bios": 200}, headers=auth(key)).json()["id"]
    client.app.state.ctx.dispatcher.max_running = 0  # resolve only: nothing runs
    job = client.post("/v1/jobs", json={"kind": "censor", "dataset_id": ds, "checkpoint_id": ck}, headers=auth(key))
    assert job.status_code == 201, job.text
    assert client.post(f"/v1/jobs/{job.json()['id']}/cancel", headers=auth(key)).status_code == 202
    body = JobCreate.model_validate(job.json()["request"])
    return Path(worker_spec(body, client.app.state.ctx.store, job.json()["owner"])["base"])


def test_same_weights_with_another_config_get_their_own_checkpoint(client: TestClient, tiny_checkpoint: Path,
                                                                 tmp_path: Path) -> None:
    """Cross-tenant poisoning: the first uploader of some weights must not decide another tenant's config."""
    alice, bob = new_key(client, "alice"), new_key(client, "bob")
    relu = _variant(tiny_checkpoint, tmp_path / "relu", hidden_act="relu", mlac={"pooling": "cls"})
    a = client.post("/v1/checkpoints", files=checkpoint_files(tiny_checkpoint), headers=auth(alice))
    b = client.post("/v1/checkpoints", files=checkpoint_files(relu), headers=auth(bob))
    assert a.status_code == 201 and b.status_code == 201, (a.text, b.text)
    a_dir, b_dir = _loaded_dir(client, alice, a.json()["id"]), _loaded_dir(client, bob, b.json()["id"])
    assert _files(b_dir) == _files(relu)  # bob's jobs load bob's bytes (hidden_act=relu, pooling=cls)
    assert _files(a_dir) == _files(tiny_checkpoint)
    assert a.json()["id"] != b.json()["id"] and a_dir != b_dir
    assert a.json()["weights_sha256"] == b.json()["weights_sha256"]
    assert client.get(f"/v1/checkpoints/{a.json()['id']}", headers=auth(bob)).status_code == 404
    assert client.delete(f"/v1/checkpoints/{a.json()['id']}", headers=auth(alice)).status_code == 204
    assert not a_dir.exists() and _files(b_dir) == _files(relu)
    assert _loaded_dir(client, bob, b.json()["id"]) == b_dir
    assert client.delete(f"/v1/checkpoints/{b.json()['id']}", headers=auth(bob)).status_code == 204
    assert not b_dir.exists()


def test_identical_uploads_share_files_and_each_tenant_owns_a_row(client: TestClient, tiny_checkpoint: Path) -> None:
    alice, bob = new_key(client, "alice"), new_key(client, "bob")
    a = client.post("/v1/checkpoints", files=checkpoint_files(tiny_checkpoint), headers=auth(alice), params={"name": "a"})
    b = client.post("/v1/checkpoints", files=checkpoint_files(tiny_checkpoint), headers=auth(bob), params={"name": "b"})
    assert (a.status_code, b.status_code) == (201, 201)  # 201 for bob too: no hint that someone else has it
    ck = a.json()["id"]
    assert b.json()["id"] == ck
    assert [client.get(f"/v1/checkpoints/{ck}", headers=auth(k)).json()["name"] for k in (alice, bob)] == ["a", "b"]
    stored = _loaded_dir(client, alice, ck)
    assert _loaded_dir(client, bob, ck) == stored and _files(stored) == _files(tiny_checkpoint)
    assert client.delete(f"/v1/checkpoints/{ck}", headers=auth(bob)).status_code == 204
    assert client.get(f"/v1/checkpoints/{ck}", headers=auth(bob)).status_code == 404
    assert client.delete(f"/v1/checkpoints/{ck}", headers=auth(bob)).status_code == 404
    assert client.get(f"/v1/checkpoints/{ck}", headers=auth(alice)).status_code == 200
    assert _files(stored) == _files(tiny_checkpoint)  # alice's row still stands on the shared files
    assert client.delete(f"/v1/checkpoints/{ck}", headers=auth(alice)).status_code == 204
    assert not stored.exists()


def test_a_stored_copy_that_differs_is_never_reused(client: TestClient, tiny_checkpoint: Path) -> None:
    """Dedup compares bytes: a stored directory that no longer matches its address is replaced, not trusted."""
    alice, bob = new_key(client, "alice"), new_key(client, "bob")
    ck = client.post("/v1/checkpoints", files=checkpoint_files(tiny_checkpoint), headers=auth(alice)).json()["id"]
    stored = _loaded_dir(client, alice, ck)
    cfg = json.loads((stored / "config.json").read_text(encoding="utf-8"))
    (stored / "config.json").write_text(json.dumps({**cfg, "hidden_act": "relu"}), encoding="utf-8")
    assert client.post("/v1/checkpoints", files=checkpoint_files(tiny_checkpoint), headers=auth(bob)).status_code == 201
    assert _files(_loaded_dir(client, bob, ck)) == _files(tiny_checkpoint)


def test_concurrent_identical_uploads_make_one_copy_and_a_row_each(client: TestClient, tiny_checkpoint: Path) -> None:
    keys = [new_key(client, f"user{i}") for i in range(4)]
    barrier = threading.Barrier(len(keys))
    answers: list[tuple[int, str]] = []

    def upload(key: str) -> None:
        barrier.wait()
        r = client.post("/v1/checkpoints", files=checkpoint_files(tiny_checkpoint), headers=auth(key))
        answers.append((r.status_code, r.json().get("id", r.text)))

    threads = [threading.Thread(target=upload, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [code for code, _ in answers] == [201] * len(keys) and len({ck for _, ck in answers}) == 1
    data = client.app.state.ctx.settings.data_dir
    assert [p.name for p in (data / "artifacts" / "checkpoints").iterdir() if not p.name.startswith(".")] == [answers[0][1]]
    assert not (data / "staging").exists() or list((data / "staging").iterdir()) == []
    assert client.get("/v1/checkpoints", headers=auth()).json()["total"] == len(keys)
