"""End to end over real HTTP (uvicorn, in-process runner): a schedule's regression gate, and the model back.

Regression gate: a schedule audits an untrained tiny BERT, then (its template PATCHed) a tiny BERT trained on
the harmful label, then that one again. The second run is easier to attack than the first: it is marked
regressed in the history, its verdict becomes FAIL under ``fail_on_regression`` and the schedule's webhook gets
``audit.regressed``; the third run (the same checkpoint again) must not be (the negative control).

Model back: a ``defend`` job's output is registered as a checkpoint of the same owner with its lineage (parent
checkpoint, job, defense), its files download (owner-checked), and the downloaded folder loads back, through
mlac and through plain transformers as the README says, with the right labels.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.client import Client
from tests.e2e.server import ADMIN, Server, free_port, upload_checkpoint, wait_job

pytestmark = [pytest.mark.slow]
# delta_random = 1: the audits' own verdicts never FAIL, so a FAIL can only come from the regression gate
AUDIT = {"preset": "smoke", "audit": {"tasks": ["harmful"], "sizes": [20, 100], "seeds": [0, 1, 2], "baselines": ["random"],
                                      "verdict": {"delta_random": 1.0}}}


class Receiver:
    """A webhook receiver on loopback that keeps every delivery's event name and body."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                outer.got.append((self.headers.get("X-MLAC-Event", ""), json.loads(body or b"{}")))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[str]:
        return [name for name, _ in self.got]


def test_schedule_regression_gate_and_the_model_back(tmp_path: Path, tiny_checkpoint_dir: Path,
                                                     trained_checkpoint: Path) -> None:
    hooks = Receiver()
    server = Server(tmp_path / "data", free_port(), "--no-ray",
                    env={"MLAC_WEBHOOK_ALLOW": "127.0.0.1"})
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=120) as c:
            ds = c.post("/v1/datasets/synthetic", json={"n_bios": 1500}).json()["id"]
            untrained, trained = upload_checkpoint(c, tiny_checkpoint_dir), upload_checkpoint(c, trained_checkpoint)
            job = {"kind": "audit", "dataset_id": ds, "checkpoint_id": untrained, **AUDIT}
            r = c.post("/v1/schedules", json={"name": "nightly", "cron": "0 3 1 1 *", "job": job,
                                              "webhook_url": hooks.url, "regression": {"fail_on_regression": True}})
            assert r.status_code == 201, r.text
            sid = r.json()["id"]
            assert r.json()["regression"] == {"fail_on_regression": True, "alpha": 0.05}

            runs = []
            for checkpoint in (untrained, trained, trained):
                if checkpoint != job["checkpoint_id"]:  # audit another model from the next run on
                    job = {**job, "checkpoint_id": checkpoint}
                    patched = c.patch(f"/v1/schedules/{sid}", json={"job": job})
                    assert patched.status_code == 200 and patched.json()["job"]["checkpoint_id"] == trained, patched.text
                fired = c.post(f"/v1/schedules/{sid}/run")
                assert fired.status_code == 201, fired.text
                runs.append(wait_job(c, fired.json()["id"]))

            history = c.get(f"/v1/schedules/{sid}/runs").json()
            items = {item["job_id"]: item for item in history["items"]}
            first, second, third = (items[run["id"]] for run in runs)
            assert first["previous_job_id"] is None and not first["regressed"]
            assert second["previous_job_id"] == runs[0]["id"] and second["regressed"] is True
            assert second["statements"][0].startswith("harmful: B is easier to attack than A")
            assert third["previous_job_id"] == runs[1]["id"] and third["regressed"] is False  # the same model again
            assert {f["finding"] for f in third["findings"]} == {"no_difference"}
            assert history["regressions"] == 1
            assert second["harmful"] > first["harmful"] + 0.1  # the trend
            verdicts = [c.get(f"/v1/jobs/{run['id']}").json()["verdict"] for run in runs]
            assert verdicts[0] != "FAIL" and verdicts[1] == "FAIL" and verdicts[2] != "FAIL"  # the gate failed only run 2
            gate = [e for e in c.get(f"/v1/jobs/{runs[1]['id']}/events", timeout=30).text.split("\n\n") if '"regression"' in e]
            assert gate and '"regressed": true' in gate[0]
            png = c.get(f"/v1/schedules/{sid}/runs.png")
            assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
            other = c.post("/v1/keys", json={"name": "other"}).json()["key"]
            assert c.get(f"/v1/schedules/{sid}/runs", headers={"Authorization": f"Bearer {other}"}).status_code == 404

            # the model back: a defend job's output is a checkpoint of its owner, with its lineage
            defend = c.post("/v1/jobs", json={"kind": "defend", "dataset_id": ds, "checkpoint_id": untrained,
                                              "preset": "smoke", "defense": {"name": "ac", "config": {"steps": 10}}})
            assert defend.status_code == 201, defend.text
            done = wait_job(c, defend.json()["id"])
            made = c.get(f"/v1/jobs/{done['id']}/result").json()["checkpoint_id"]
            row = c.get(f"/v1/checkpoints/{made}").json()
            assert row["parent_checkpoint"] == untrained and row["source_job"] == done["id"]
            assert row["defense"]["name"] == "ac" and row["defense"]["config"]["steps"] == 10
            listing = c.get(f"/v1/checkpoints/{made}/files").json()["files"]
            assert {"config.json", "model.safetensors", "tokenizer.json"} <= {f["name"] for f in listing}
            back = tmp_path / "downloaded"
            back.mkdir()
            for f in listing:
                got = c.get(f["href"])
                assert got.status_code == 200, f
                (back / f["name"]).write_bytes(got.content)
            assert c.get(listing[0]["href"], headers={"Authorization": f"Bearer {other}"}).status_code == 404
            with Client(server.url, ADMIN) as api:  # the typed client: the same history, the same files
                assert api.schedule_runs(sid).regressions == 1
                again = api.download_checkpoint(made, tmp_path / "via-client")
                assert {p.name: p.read_bytes() for p in again.iterdir()} == {p.name: p.read_bytes() for p in back.iterdir()}
            assert c.get(f"/v1/checkpoints/{made}/files/secret.txt").status_code == 404

        deadline = threading.Event()
        for _ in range(60):  # the outbox sends within a poll or two
            if "audit.regressed" in hooks.events():
                break
            deadline.wait(0.5)
        regressed = [body for name, body in hooks.got if name == "audit.regressed"]
        assert len(regressed) == 1 and regressed[0]["job_id"] == runs[1]["id"], hooks.events()
        assert regressed[0]["previous_job_id"] == runs[0]["id"] and regressed[0]["comparison"]["regressed"] is True
    finally:
        server.stop()
        server.kill()

    _loads_back(back)


def _loads_back(folder: Path) -> None:
    """The downloaded checkpoint through mlac, and through plain transformers as the README shows."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    from mlac.models import load_checkpoint

    loaded = load_checkpoint(folder)
    config = AutoConfig.from_pretrained(folder)
    names = config.mlac["beneficial_names"]
    assert len(names) == loaded.model.num_beneficial == 12
    assert config.id2label == dict(enumerate(names)) and config.num_labels == 12
    # AutoModelForSequenceClassification builds the right number of labels with their names...
    hf = AutoModelForSequenceClassification.from_pretrained(folder)
    assert hf.config.num_labels == 12 and hf.config.id2label[0] == names[0]
    # ...and the README's recipe gives exactly mlac's predictions: trunk + mean pooling + the saved head
    tok = AutoTokenizer.from_pretrained(folder)
    trunk = AutoModel.from_pretrained(folder).eval()
    head = {k.removeprefix("mlac.beneficial_head."): v for k, v in load_file(folder / "model.safetensors").items()
            if k.startswith("mlac.beneficial_head.")}
    batch = tok(["She is a surgeon at the city hospital.", "He teaches math to teenagers."], return_tensors="pt",
                padding=True)
    with torch.no_grad():
        hidden = trunk(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        logits = pooled @ head["weight"].T + head["bias"]
        ours = loaded.model.beneficial_head(loaded.model.eval()(batch["input_ids"], batch["attention_mask"]))
    assert torch.allclose(logits, ours, atol=1e-5)
