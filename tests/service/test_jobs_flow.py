"""A whole job through the API with the in-process runner: progress, SSE, result, report, figures, webhooks, cancel."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from service.app import create_app
from service.webhooks import verify

from .conftest import auth, checkpoint_files, make_settings


class Receiver:
    """A loopback webhook receiver that fails the first delivery (to exercise the retry)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.calls.append({"body": body, "headers": dict(self.headers)})
                self.send_response(500 if len(outer.calls) == 1 else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _wait(client: TestClient, job_id: str, states: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=auth()).json()
        if job["state"] in states:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not reach {states}: {job}")


def test_censor_then_audit_end_to_end_in_process(tmp_path: Path, tiny_checkpoint: Path) -> None:
    receiver = Receiver()
    settings = make_settings(tmp_path, webhook_allow="127.0.0.1/32", webhook_backoff_s=0.1)  # loopback: allowed explicitly
    with TestClient(create_app(settings)) as client:
        ck = client.post("/v1/checkpoints", files=checkpoint_files(tiny_checkpoint), headers=auth()).json()["id"]
        ds = client.post("/v1/datasets/synthetic", json={"n_bios": 800}, headers=auth()).json()["id"]
        body = {"kind": "censor_then_audit", "dataset_id": ds, "checkpoint_id": ck, "preset": "smoke",
                "audit": {"sizes": [20], "seeds": [0, 1]}, "webhook_url": receiver.url}
        r = client.post("/v1/jobs", json=body, headers={**auth(), "Idempotency-Key": "flow-1"})
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        assert r.json()["links"]["report"] == f"/v1/jobs/{job_id}/report"
        seen_search = False
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            job = client.get(f"/v1/jobs/{job_id}", headers=auth()).json()
            if job["progress"]["stage"] == "search" and job["progress"]["trials_total"]:
                seen_search = True
                assert 0 < job["progress"]["trials_done"] <= job["progress"]["trials_total"]
            if job["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                break
            time.sleep(0.5)
        assert job["state"] == "SUCCEEDED", job["error"]
        assert seen_search and job["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE")

        result = client.get(f"/v1/jobs/{job_id}/result", headers=auth())
        assert result.status_code == 200
        curves = result.json()["curves"]
        models = {c["model"] for c in curves}
        assert {"random", "base"} <= models and len(models) == 3  # the censored model too
        report = client.get(f"/v1/jobs/{job_id}/report", headers=auth())
        assert report.status_code == 200 and "<html" in report.text.lower()
        png = client.get(f"/v1/jobs/{job_id}/figures/curves.png", headers=auth())
        assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert client.get(f"/v1/jobs/{job_id}/figures/nope.png", headers=auth()).status_code == 404

        trials = client.get(f"/v1/jobs/{job_id}/trials", headers=auth()).json()
        keys = [(t["study"], t["trial"]) for t in trials]
        assert trials and len(keys) == len(set(keys))

        with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=auth()) as stream:
            text = "".join(stream.iter_text())
        assert "event: progress" in text and "event: end" in text and '"state": "SUCCEEDED"' in text
        with client.stream("GET", f"/v1/jobs/{job_id}/events", headers={**auth(), "Last-Event-ID": "100000"}) as stream:
            assert "event: progress" not in "".join(stream.iter_text())

        again = client.post("/v1/jobs", json=body, headers={**auth(), "Idempotency-Key": "flow-1"})
        assert again.status_code == 200 and again.json()["id"] == job_id

        metrics = client.get("/metrics", headers=auth()).text
        assert 'mlac_jobs_finished_total{state="SUCCEEDED"} 1.0' in metrics

        deadline = time.monotonic() + 20
        while len(receiver.calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        secret = client.get("/v1/webhooks/secret", headers=auth()).json()["secret"]  # the job owner's (admin's) secret
    receiver.server.shutdown()
    assert len(receiver.calls) >= 2  # the first delivery got a 500 and was retried
    for call in receiver.calls:
        h = call["headers"]
        assert verify(secret, h["X-MLAC-Timestamp"], call["body"], h["X-MLAC-Signature"])
    events = [json.loads(c["body"])["event"] for c in receiver.calls]
    assert events.count("job.completed") >= 2
    payload = json.loads(receiver.calls[-1]["body"])
    assert payload["job_id"] == job_id and payload["state"] == "SUCCEEDED"


def test_cancel_a_running_audit(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as client:
        ds = client.post("/v1/datasets/synthetic", json={"n_bios": 800}, headers=auth()).json()["id"]
        body = {"kind": "audit", "dataset_id": ds, "preset": "quick",
                "audit": {"sizes": [20, 100], "baselines": ["random"], "tiny_base": True}}
        job_id = client.post("/v1/jobs", json=body, headers=auth()).json()["id"]
        deadline = time.monotonic() + 180
        while client.get(f"/v1/jobs/{job_id}", headers=auth()).json()["progress"]["stage"] != "search":
            assert time.monotonic() < deadline, "the audit never reached its search stage"
            time.sleep(0.5)
        r = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth())
        assert r.status_code == 202 and r.json()["cancel_requested"]
        job = _wait(client, job_id, {"CANCELLED", "FAILED", "SUCCEEDED"}, 60)
        assert job["state"] == "CANCELLED"
        assert client.post(f"/v1/jobs/{job_id}/cancel", headers=auth()).status_code == 409
        assert client.get(f"/v1/jobs/{job_id}/result", headers=auth()).json()["error"]["code"] == "not_ready"
