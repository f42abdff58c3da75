"""Small requests must not exhaust or crash the API: body caps before parsing, rate limits before parsing,
declared model sizes and label cardinality capped, and hostile files answered with a 4xx."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app

from .conftest import auth, checkpoint_files, make_settings


@pytest.fixture
def roomy(tmp_path: Path) -> Iterator[TestClient]:
    """A client whose upload rate limit stays out of the way."""
    settings = make_settings(tmp_path, rate_upload_per_min=1e6, rate_burst=10_000, json_body_max_bytes=64 * 1024)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def test_a_json_body_over_the_cap_is_413_before_it_is_parsed(roomy: TestClient) -> None:
    big = json.dumps({"kind": "audit", "dataset_id": "ds_" + "0" * 20, "pad": "x" * 100_000})
    r = roomy.post("/v1/jobs", content=big, headers={**auth(), "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large", r.text

    def chunked() -> Iterator[bytes]:  # no Content-Length: stopped while streaming
        yield b'{"kind": "audit", "pad": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    r = roomy.post("/v1/jobs", content=chunked(), headers={**auth(), "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large", r.text
    small = roomy.post("/v1/datasets/synthetic", json={"n_bios": 100}, headers=auth())
    assert small.status_code == 201, small.text


def test_a_deeply_nested_json_body_is_a_4xx(roomy: TestClient) -> None:
    deep = "[" * 30_000 + "]" * 30_000
    r = roomy.post("/v1/jobs", content=deep, headers={**auth(), "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, r.text


def test_the_rate_limit_runs_before_the_body_is_parsed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, rate_submit_per_min=1.0, rate_burst=2)
    with TestClient(create_app(settings)) as client:
        bad = {"kind": "nope", "dataset_id": "ds_" + "0" * 20}
        assert [client.post("/v1/jobs", json=bad, headers=auth()).status_code for _ in range(2)] == [422, 422]
        r = client.post("/v1/jobs", content="{not json", headers={**auth(), "Content-Type": "application/json"})
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited", r.text
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        r = client.post("/v1/jobs", json=bad, headers={"Authorization": "Bearer wrong-key-123"})
        assert r.status_code == 401  # a wrong key is told so (and charges nobody)


def test_every_json_body_route_is_charged_once_before_its_body(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, rate_submit_per_min=1.0, rate_upload_per_min=1.0, rate_burst=2)
    with TestClient(create_app(settings)) as client:
        synth = [client.post("/v1/datasets/synthetic", json={"n_bios": 100}, headers=auth()).status_code for _ in range(3)]
        assert synth == [201, 201, 429]
        bad = [client.post("/v1/schedules", json={"bogus": 1}, headers=auth()).status_code for _ in range(3)]
        assert bad == [422, 422, 429]


def _upload(client: TestClient, name: str, content: bytes):
    return client.post("/v1/datasets", files={"file": (name, content, "application/octet-stream")}, headers=auth())


def _rows(n: int = 30, **last: object) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = [{"text": f"Sam is a cook. He cooks {i}.", "profession": i % 3, "gender": i % 2}
                                     for i in range(n)]
    rows[-1].update(last)
    return rows


def _jsonl(rows: list[dict[str, object]]) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


def test_a_huge_label_value_is_refused_with_a_small_answer(roomy: TestClient) -> None:
    r = _upload(roomy, "big.jsonl", _jsonl(_rows(profession=1_000_000)))  # was 201 with 8.9 MB of label names
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_dataset", r.text[:300]
    assert len(r.content) < 2000
    for last in ({"profession": 1.7}, {"gender": 2}, {"gender": True}):
        r = _upload(roomy, "bad.jsonl", _jsonl(_rows(**last)))
        assert r.status_code == 422, (last, r.text[:300])
    assert roomy.get("/v1/datasets", headers=auth()).json()["total"] == 0


@pytest.mark.parametrize(("name", "content"), [
    ("scalars.jsonl", b"5\n6\n"),
    ("deep.jsonl", b"[" * 100_000 + b"]" * 100_000),
    ("mixed.jsonl", _jsonl(_rows(profession="x"))),
    ("inf.jsonl", _jsonl(_rows()) + b'\n{"text": "x", "profession": Infinity, "gender": 0}'),
    ("bigint.jsonl", _jsonl(_rows()) + b'\n{"text": "x", "profession": ' + b"1" * 5000 + b', "gender": 0}'),
    ("dicttext.jsonl", _jsonl(_rows(text={"a": 1}))),
])
def test_hostile_dataset_files_are_4xx_not_500(roomy: TestClient, name: str, content: bytes) -> None:
    r = _upload(roomy, name, content)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_dataset", r.text[:300]


def test_a_checkpoint_declaring_fifteen_thousand_layers_is_refused_quickly(roomy: TestClient, tiny_checkpoint: Path,
                                                                             tmp_path: Path) -> None:
    folder = tmp_path / "huge"
    shutil.copytree(tiny_checkpoint, folder)
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] = 15_000
    (folder / "config.json").write_text(json.dumps(config))
    started = time.perf_counter()
    r = roomy.post("/v1/checkpoints", files=checkpoint_files(folder), headers=auth())
    assert r.status_code == 422 and r.json()["error"]["code"] == "model_too_large", r.text
    assert time.perf_counter() - started < 5.0
