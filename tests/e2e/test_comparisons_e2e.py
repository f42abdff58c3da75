"""End to end over real HTTP (uvicorn, in-process runner): two real smoke audits compared through the API.

Audit A attacks an untrained tiny BERT, audit B a tiny BERT trained on the harmful label (what a weaker
safeguard, or none, leaves): B must come out easier to attack, A against itself (one audit, two of its
models) must find what differs between a model and its random re-initialisation, and the page, the figure,
the CLI gate and the refusals must answer as documented.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest

from service.client import Client
from tests.e2e.server import ADMIN, ROOT, Server, free_port, upload_checkpoint, wait_job

pytestmark = [pytest.mark.slow]
AUDIT = {"preset": "smoke", "audit": {"tasks": ["harmful"], "sizes": [20, 100], "seeds": [0, 1, 2], "baselines": ["random"]}}


def test_compare_two_real_smoke_audits(tmp_path: Path, tiny_checkpoint_dir: Path, trained_checkpoint: Path) -> None:
    server = Server(tmp_path / "data", free_port(), "--no-ray")
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=120) as c:
            ds = c.post("/v1/datasets/synthetic", json={"n_bios": 1500})
            assert ds.status_code == 201, ds.text
            jobs = []
            for folder in (tiny_checkpoint_dir, trained_checkpoint):
                body = {"kind": "audit", "dataset_id": ds.json()["id"], "checkpoint_id": upload_checkpoint(c, folder), **AUDIT}
                r = c.post("/v1/jobs", json=body)
                assert r.status_code == 201, r.text
                jobs.append(r.json()["id"])
            early = c.post("/v1/comparisons", json={"job_a": jobs[0], "job_b": jobs[1]})
            assert early.status_code == 409, early.text  # B was queued a moment ago: not comparable yet
            for job in jobs:
                wait_job(c, job)
            a, b = jobs

            r = c.post("/v1/comparisons", json={"job_a": a, "job_b": b})
            assert r.status_code == 200, r.text
            found = r.json()
            rows = {row["n"]: row for row in found["rows"]}
            assert set(rows) == {20, 100} and all(row["seeds"] == [0, 1, 2] for row in rows.values())
            # trained on the harmful label vs untrained: far apart at n = 100 on every seed
            assert rows[100]["difference"] > 0.1, rows
            assert rows[100]["finding"] == "higher" and found["regressed"] is True
            assert found["statements"][0].startswith("harmful: B is easier to attack than A")
            assert "/tmp" not in r.text and str(tmp_path) not in r.text  # no server paths

            # the typed client reads the same answer
            with Client(server.url, ADMIN) as api:
                typed = api.compare(a, b)
                assert typed.regressed and [r.finding for r in typed.rows] == [r["finding"] for r in found["rows"]]
                assert api.export_csv(a, "curves").startswith("model,task,n,seeds,mean")

            # the reverse order reads the other way
            back = c.post("/v1/comparisons", json={"job_a": b, "job_b": a}).json()
            assert back["regressed"] is False and {row["n"]: row["finding"] for row in back["rows"]}[100] == "lower"

            # one audit's two models: the audited model against its random re-initialisation
            label = c.get(f"/v1/jobs/{a}/result").json()["derived"]["audited"][0]
            own = c.post("/v1/comparisons", json={"job_a": a, "job_b": a, "model_a": "random", "model_b": label})
            assert own.status_code == 200, own.text
            assert own.json()["a"]["model"] == "random"

            page = c.post("/v1/comparisons?format=html", json={"job_a": a, "job_b": b})
            assert page.status_code == 200 and "B is easier to attack than A" in page.text
            assert "script-src" not in page.headers["content-security-policy"] and "<script" not in page.text
            png = c.post("/v1/comparisons?format=png", json={"job_a": a, "job_b": b})
            assert png.status_code == 200 and png.content[:4] == b"\x89PNG"

            # refusals: an unknown model, another key's job, a malformed id
            bad = c.post("/v1/comparisons", json={"job_a": a, "job_b": b, "model_a": "nope"})
            assert bad.status_code == 422 and "no model 'nope'" in bad.text
            other = c.post("/v1/keys", json={"name": "other"}).json()["key"]
            hidden = c.post("/v1/comparisons", json={"job_a": a, "job_b": b}, headers={"Authorization": f"Bearer {other}"})
            assert hidden.status_code == 404
            assert c.post("/v1/comparisons", json={"job_a": "job_x", "job_b": b}).status_code == 422

            # the numbers as CSV: one row per seed point of the result
            csv_text = c.get(f"/v1/jobs/{a}/export.csv", params={"table": "seed_points"})
            assert csv_text.status_code == 200 and csv_text.headers["content-type"].startswith("text/csv")
            table = pd.read_csv(io.StringIO(csv_text.text), float_precision="round_trip")  # as a spreadsheet user would
            assert len(table) == 2 * 2 * 3  # models x sizes x seeds
            points = {(p["model"], p["n"], p["seed"]): p["report_accuracy"]
                      for p in c.get(f"/v1/jobs/{a}/result").json()["seed_points"]}
            assert {(r.model, r.n, r.seed): r.report_accuracy for r in table.itertuples()} == points
            assert c.get(f"/v1/jobs/{a}/export.csv", headers={"Authorization": f"Bearer {other}"}).status_code == 404

            # the CLI gate on the fetched results: exit 1 when B regressed, 0 the other way round
            for name, job in (("a", a), ("b", b)):
                (tmp_path / f"{name}.json").write_bytes(c.get(f"/v1/jobs/{job}/result").content)
        # the web view: sign in with the key, pick the two audits, read the same findings
        with httpx.Client(base_url=server.url, timeout=120, follow_redirects=True) as browser:
            form = browser.get("/ui/login?next=/ui/compare")
            token = re.search(r'name="login_token" value="([^"]+)"', form.text)
            assert token is not None
            signed = browser.post("/ui/login", data={"login_token": token.group(1), "api_key": ADMIN, "next": "/ui/compare"},
                                  headers={"Origin": server.url})
            assert signed.status_code == 200 and a in signed.text and b in signed.text  # both audits offered
            shown = browser.get("/ui/compare", params={"a": a, "b": b})
            assert shown.status_code == 200 and "B is easier to attack than A" in shown.text
            assert "<script" not in shown.text
        gate = [subprocess.run([sys.executable, "-m", "mlac.cli.main", "compare", str(tmp_path / x), str(tmp_path / y),
                                "--fail-if-easier"], cwd=ROOT, capture_output=True, text=True, timeout=120)
                for x, y in (("a.json", "b.json"), ("b.json", "a.json"))]
        assert [g.returncode for g in gate] == [1, 0], [g.stdout + g.stderr for g in gate]
        assert "B is easier to attack than A" in gate[0].stdout
    finally:
        server.stop()
        server.kill()
