"""The web view in a real browser (headless Chromium over real HTTP): sign in, watch a smoke audit progress live to
SUCCEEDED, open its report, read ``/docs`` offline. Screenshots go to the test's tmp dir."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx

from service.app import create_app
from tests.browser.conftest import LiveServer
from tests.service.conftest import ADMIN_KEY, auth, make_settings

#: a real audit small enough for well under a minute on two busy cores: an uploaded tiny BERT and the random
#: baseline, one size, one seed, 2 trials and 1 rerun per search (probes on cached features)
SMOKE_AUDIT = {"kind": "audit", "preset": "smoke",
               "audit": {"sizes": [20], "seeds": [0], "baselines": ["random"], "max_trials": 2, "reruns": 1}}


def _checkpoint_files(root: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    """A valid tiny BERT checkpoint (12 beneficial classes, like the synthetic data) as multipart files."""
    from mlac.data import SynthConfig, generate_synthetic
    from mlac.models import build_tiny_bert, save_checkpoint

    _, task = generate_synthetic(SynthConfig(n_bios=100, seed=0))
    model, tok = build_tiny_bert(len(task.beneficial_names), seed=0)
    save_checkpoint(model, tok, root, {"seed": 0}, beneficial_names=task.beneficial_names)
    return [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in sorted(root.iterdir()) if p.is_file()]


def _wait(driver: Any, condition: Any, timeout: float, what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition, message=what)


def _text(driver: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, element_id).text)


def test_sign_in_watch_a_smoke_job_to_done_and_open_its_report(tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    with LiveServer(create_app(make_settings(tmp_path, runner="inprocess"))) as server, \
            httpx.Client(base_url=server.url, headers=auth(), timeout=60) as api:
        ds = api.post("/v1/datasets/synthetic", json={"n_bios": 600})
        assert ds.status_code == 201, ds.text
        ck = api.post("/v1/checkpoints", files=_checkpoint_files(tmp_path / "ckpt"))
        assert ck.status_code == 201, ck.text
        r = api.post("/v1/jobs", json={**SMOKE_AUDIT, "dataset_id": ds.json()["id"], "checkpoint_id": ck.json()["id"]})
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]

        browser.get(f"{server.url}/ui/jobs/{job_id}")  # not signed in: the sign-in form, then back here
        _wait(browser, lambda d: d.find_elements(By.ID, "api_key"), 20, "no sign-in form")
        assert "/ui/login" in browser.current_url
        browser.find_element(By.ID, "api_key").send_keys(ADMIN_KEY)
        browser.find_element(By.CSS_SELECTOR, "form[action='/ui/login'] button").click()
        _wait(browser, lambda d: d.current_url.endswith(f"/ui/jobs/{job_id}"), 20, "not sent back to the job")
        cookie = browser.get_cookie("mlac_session")
        assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert "mlac_session" not in browser.execute_script("return document.cookie")  # scripts cannot read it
        assert ADMIN_KEY not in browser.page_source

        job = browser.find_element(By.ID, "job")
        stages, trials, etas, started = set(), set(), set(), time.monotonic()
        while job.get_attribute("data-ended") is None:
            if time.monotonic() - started > 150:
                browser.save_screenshot(str(tmp_path / "timeout.png"))
                raise AssertionError(f"the job did not end in 150 s; stages seen {stages}: {api.get(f'/v1/jobs/{job_id}').text}")
            stage = _text(browser, "stage")
            if stage == "search" and "search" not in stages:
                browser.save_screenshot(str(tmp_path / "job-live.png"))  # mid-run: live panel and curve sketch
            stages.add(stage)
            trials.add(_text(browser, "trials"))
            etas.add(_text(browser, "eta"))
            time.sleep(0.3)
        watched_s = time.monotonic() - started
        assert job.get_attribute("data-ended") == "SUCCEEDED", _text(browser, "job")
        assert int(job.get_attribute("data-events") or 0) >= 2  # updated live over SSE, not only on load
        assert "search" in stages and len(stages) >= 2, stages  # the stage changed on the page while it ran
        assert any(re.fullmatch(r"\d+ / \d+", t) for t in trials), trials
        assert any(re.fullmatch(r"\d+s|\d+m\d\ds|\d+h\d\dm", t) for t in etas), etas  # an ETA was shown while it ran
        assert re.fullmatch(r"\d+\.\d%", _text(browser, "harmful-best"))
        assert browser.find_element(By.CSS_SELECTOR, "#state .badge").text == "SUCCEEDED"
        assert browser.find_elements(By.CSS_SELECTOR, "#live-curves svg circle")  # points drawn as searches finished
        _wait(browser, lambda d: d.execute_script(
            "const i = document.getElementById('curves'); return i && i.complete && i.naturalWidth > 0"), 20,
            "curves.png did not load")
        browser.save_screenshot(str(tmp_path / "job.png"))

        browser.find_element(By.ID, "report-link").click()
        _wait(browser, lambda d: d.title.startswith("mlac-audit card"), 20, "the report did not open")
        assert "Robustness audit card" in browser.page_source and str(tmp_path) not in browser.page_source
        browser.save_screenshot(str(tmp_path / "report.png"))

        browser.get(f"{server.url}/ui/jobs")
        assert job_id in browser.page_source
        browser.save_screenshot(str(tmp_path / "jobs.png"))

        template = {**SMOKE_AUDIT, "dataset_id": ds.json()["id"], "checkpoint_id": ck.json()["id"]}
        sch = api.post("/v1/schedules", json={"name": "<b>nightly</b>", "cron": "0 3 * * *", "timezone": "Europe/Paris",
                                              "job": template})
        assert sch.status_code == 201, sch.text
        browser.get(f"{server.url}/ui/schedules/{sch.json()['id']}")
        assert browser.find_element(By.TAG_NAME, "h1").text.startswith("<b>nightly</b>")  # shown as text, not markup
        assert not browser.find_elements(By.CSS_SELECTOR, "h1 b")
        browser.find_element(By.CSS_SELECTOR, "form[action$='/pause'] button").click()  # a CSRF-carrying form
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "form[action$='/resume']"), 20, "not paused")
        assert api.get(f"/v1/schedules/{sch.json()['id']}").json()["paused"] is True
        browser.save_screenshot(str(tmp_path / "schedule.png"))

        browser.get(f"{server.url}/docs")  # the session cookie opens the docs; every asset is local
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"), 30, "Swagger UI did not render")
        assert "mlac-audit" in browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
        assert browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path[data-path='/v1/jobs']")
        browser.save_screenshot(str(tmp_path / "docs.png"))
    print(f"watched the job for {watched_s:.1f} s; screenshots in {tmp_path}")
    for name in ("job-live.png", "job.png", "report.png", "jobs.png", "schedule.png", "docs.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
