"""The web view without a browser (TestClient): sign-in cookie, CSRF, escaping, isolation, SSE, offline docs."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.store.records import NewJob, Schedule
from service.store.sql import new_id
from service.ui.live import LiveFold
from service.ui.sessions import COOKIE, LOGIN_COOKIE

from .conftest import ADMIN_KEY, auth, make_settings, new_key

XSS = '<script>alert("x")</script>'


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[TestClient]:
    """An app without its background loops (jobs stay where the test puts them)."""
    with TestClient(create_app(make_settings(tmp_path), background=False)) as c:
        yield c


def sign_in(client: TestClient, key: str, next_url: str = "/ui/jobs") -> Any:
    form = client.get(f"/ui/login?next={next_url}")
    assert form.status_code == 200
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token is not None
    return client.post("/ui/login", data={"login_token": token.group(1), "api_key": key, "next": next_url},
                       follow_redirects=False)


def csrf_of(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/jobs").text)
    assert found is not None
    return found.group(1)


def store_of(client: TestClient) -> Any:
    return client.app.state.ctx.store  # type: ignore[attr-defined]


def key_id(client: TestClient, name: str) -> str:
    return next(k.id for k in store_of(client).list_api_keys() if k.name == name)


def make_job(client: TestClient, owner: str, *, spec: dict[str, Any] | None = None, **kw: Any) -> str:
    job, _ = store_of(client).create_job(NewJob(owner=owner, kind="audit", spec=spec or {"preset": "smoke"},
                                                spec_hash=new_id("h"), **kw))
    return str(job.id)


def finish(client: TestClient, job_id: str, state: str, **kw: Any) -> None:
    store = store_of(client)
    store.start_job(job_id, "test", time.time() + 60)
    store.finish_job(job_id, state, **kw)


def test_sign_in_sets_an_opaque_httponly_strict_cookie(app_client: TestClient) -> None:
    assert app_client.get("/ui/jobs", follow_redirects=False).headers["location"] == "/ui/login?next=/ui/jobs"
    r = sign_in(app_client, ADMIN_KEY)
    assert r.status_code == 303 and r.headers["location"] == "/ui/jobs"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(COOKIE + "="))
    flags = {p.strip().lower() for p in cookie.split(";")[1:]}
    assert {"httponly", "path=/", "samesite=strict"} <= flags and "secure" not in flags
    value = cookie.split(";")[0].split("=", 1)[1]
    assert ADMIN_KEY not in value and len(value) >= 40
    page = app_client.get("/ui/jobs")
    assert page.status_code == 200 and ADMIN_KEY not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    with TestClient(app_client.app, base_url="https://testserver") as secure:
        r = sign_in(secure, ADMIN_KEY)
        assert any("secure" in c.lower() for c in r.headers.get_list("set-cookie") if c.startswith(COOKIE + "="))


def test_sign_in_refuses_bad_keys_stale_forms_and_cross_site_posts(app_client: TestClient) -> None:
    r = sign_in(app_client, "mlac_not-a-key")
    assert r.status_code == 401 and "not valid" in r.text and COOKIE not in r.headers.get("set-cookie", "")
    app_client.cookies.delete(LOGIN_COOKIE)  # the form's token without its cookie (a forged sign-in)
    r = app_client.post("/ui/login", data={"login_token": "x" * 32, "api_key": ADMIN_KEY}, follow_redirects=False)
    assert r.status_code == 403
    form = app_client.get("/ui/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    r = app_client.post("/ui/login", data={"login_token": token, "api_key": ADMIN_KEY}, follow_redirects=False,
                        headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    r = sign_in(app_client, ADMIN_KEY, next_url="https://evil.example/")  # not an open redirect
    assert r.status_code == 303 and r.headers["location"] == "/ui/jobs"


def test_the_cookie_opens_ui_and_docs_but_never_the_json_api(app_client: TestClient) -> None:
    assert app_client.get("/docs").status_code == 401
    sign_in(app_client, ADMIN_KEY)
    assert app_client.get("/docs").status_code == 200
    assert app_client.get("/openapi.json").status_code == 200
    for method, path in (("GET", "/v1/jobs"), ("POST", "/v1/keys"), ("GET", "/v1/schedules")):
        r = app_client.request(method, path, json={"name": "x"})
        assert r.status_code == 401, (method, path, r.text)
    assert app_client.get("/docs", headers={"Authorization": "Bearer wrong-key-123"}).status_code == 401


def test_every_post_form_needs_the_session_csrf_token(app_client: TestClient) -> None:
    sign_in(app_client, ADMIN_KEY)
    csrf = csrf_of(app_client)
    assert app_client.post("/ui/logout", data={}, follow_redirects=False).status_code == 403
    assert app_client.post("/ui/logout", data={"csrf": "wrong"}, follow_redirects=False).status_code == 403
    r = app_client.post("/ui/logout", data={"csrf": csrf}, headers={"Origin": "http://evil.example"},
                        follow_redirects=False)
    assert r.status_code == 403
    assert app_client.get("/ui/jobs", follow_redirects=False).status_code == 200  # still signed in
    job_id = make_job(app_client, key_id(app_client, "admin"))
    assert app_client.post(f"/ui/jobs/{job_id}/cancel", data={}, follow_redirects=False).status_code == 403
    assert store_of(app_client).get_job(job_id, None).state == "QUEUED"
    r = app_client.post(f"/ui/jobs/{job_id}/cancel", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and store_of(app_client).get_job(job_id, None).state == "CANCELLED"
    old = app_client.cookies.get(COOKIE)
    r = app_client.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    app_client.cookies.set(COOKIE, old)  # a copy of the cookie kept from before: the session is gone server-side
    assert app_client.get("/ui/jobs", follow_redirects=False).status_code == 303
    assert app_client.get("/docs").status_code == 401


def test_revoking_the_key_ends_its_sessions(app_client: TestClient) -> None:
    alice = new_key(app_client, "alice")
    sign_in(app_client, alice)
    assert app_client.get("/ui/jobs", follow_redirects=False).status_code == 200
    r = app_client.delete(f"/v1/keys/{key_id(app_client, 'alice')}", headers=auth())
    assert r.status_code in (200, 204), r.text
    assert app_client.get("/ui/jobs", follow_redirects=False).status_code == 303


def test_names_errors_and_requests_are_escaped(app_client: TestClient) -> None:
    evil = new_key(app_client, XSS)
    owner = key_id(app_client, XSS)
    job_id = make_job(app_client, owner, spec={"preset": "smoke", "note": XSS})
    finish(app_client, job_id, "FAILED", error=f"ConfigError: bad {XSS}")
    sch = store_of(app_client).add_schedule(Schedule(
        id=new_id("sch"), owner=owner, name=XSS, cron="0 3 * * *", timezone="UTC", template={"kind": "audit"},
        webhook_url=None, paused=False, created_at=time.time(), last_slot=None))
    sign_in(app_client, evil)
    pages = [app_client.get(p).text for p in ("/ui/jobs", f"/ui/jobs/{job_id}", "/ui/schedules", f"/ui/schedules/{sch.id}")]
    for text in pages:
        assert "<script>alert" not in text
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    assert all(escaped in text for text in pages)  # the key's name in the header, the error, the schedule name


def test_failure_text_and_report_show_no_server_path(app_client: TestClient, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    owner = key_id(app_client, "admin")
    failed = make_job(app_client, owner)
    finish(app_client, failed, "FAILED", error=f"DataError: cannot read {data_dir}/secret/bios.parquet")
    folder = data_dir / "artifacts-test" / "audit"
    folder.mkdir(parents=True)
    (folder / "report.html").write_text(f"<html><body>read {data_dir}/x/model.safetensors</body></html>", encoding="utf-8")
    (folder / "result.json").write_text(json.dumps({"verdict": "PASS", "source": f"{data_dir}/y.json"}), encoding="utf-8")
    done = make_job(app_client, owner)
    finish(app_client, done, "SUCCEEDED", result_path=str(folder), verdict="PASS")
    sign_in(app_client, ADMIN_KEY)
    page = app_client.get(f"/ui/jobs/{failed}").text
    assert "cannot read" in page and str(data_dir) not in page
    page = app_client.get(f"/ui/jobs/{done}").text
    assert f'href="/ui/jobs/{done}/report"' in page
    report = app_client.get(f"/ui/jobs/{done}/report")
    assert report.status_code == 200 and "read " in report.text and str(data_dir) not in report.text
    assert "default-src 'none'" in report.headers["content-security-policy"]  # the card runs no script
    assert f'<a href="/ui/jobs/{done}">' in report.text  # a way back to the job page
    result = app_client.get(f"/ui/jobs/{done}/result.json")
    assert result.json()["verdict"] == "PASS" and str(data_dir) not in result.text


def test_another_keys_job_and_schedule_are_404_the_admin_sees_all(app_client: TestClient) -> None:
    alice, bob = new_key(app_client, "alice"), new_key(app_client, "bob")
    a_id = key_id(app_client, "alice")
    job_id = make_job(app_client, a_id)
    sch = store_of(app_client).add_schedule(Schedule(
        id=new_id("sch"), owner=a_id, name="alice nightly", cron="0 3 * * *", timezone="UTC", template={"kind": "audit"},
        webhook_url=None, paused=False, created_at=time.time(), last_slot=None))
    fired = store_of(app_client).fire_slot(sch.id, "2026-12-01T03:00:00+00:00",
                                           NewJob(owner=a_id, kind="audit", spec={"preset": "smoke"}, spec_hash="h2",
                                                  schedule_id=sch.id), "test", time.time())
    assert fired is not None
    sign_in(app_client, bob)
    csrf = csrf_of(app_client)
    assert job_id not in app_client.get("/ui/jobs").text
    for path in (f"/ui/jobs/{job_id}", f"/ui/jobs/{job_id}/events", f"/ui/jobs/{job_id}/report",
                 f"/ui/jobs/{job_id}/figures/curves.png", f"/ui/schedules/{sch.id}"):
        assert app_client.get(path).status_code == 404, path
    assert app_client.post(f"/ui/jobs/{job_id}/cancel", data={"csrf": csrf}).status_code == 404
    assert app_client.post(f"/ui/schedules/{sch.id}/pause", data={"csrf": csrf}).status_code == 404
    assert "alice nightly" not in app_client.get("/ui/schedules").text
    app_client.cookies.clear()
    sign_in(app_client, alice)
    page = app_client.get(f"/ui/schedules/{sch.id}").text
    assert fired.id in page and "2026-12-01T03:00:00+00:00" in page  # the history links the fired job
    app_client.cookies.clear()
    sign_in(app_client, ADMIN_KEY)
    assert job_id in app_client.get("/ui/jobs").text and "alice nightly" in app_client.get("/ui/schedules").text
    assert app_client.get(f"/ui/jobs/{job_id}").status_code == 200
    r = app_client.post(f"/ui/schedules/{sch.id}/pause", data={"csrf": csrf_of(app_client)}, follow_redirects=False)
    assert r.status_code == 303 and store_of(app_client).get_schedule(sch.id, None).paused


def test_live_fold_keeps_the_harmful_best_the_points_and_a_search_rate_eta() -> None:
    fold = LiveFold()
    fold.apply({"stage": "baselines"}, 0.0)
    search = {"stage": "search", "trials_total": 10, "studies_total": 2, "model": "m", "n": 20, "seed": 0}
    fold.apply({**search, "trials_done": 1, "task": "harmful", "best_so_far": 0.4}, 100.0)
    assert fold.view.eta_s is None  # one trial since the search began: no rate yet
    fold.apply({**search, "trials_done": 3, "task": "beneficial", "best_so_far": 0.9}, 110.0)
    assert fold.view.harmful_best == 0.4  # a beneficial accuracy is not the harmful best
    assert fold.view.eta_s == pytest.approx(5.0 * 7)  # 5 s a trial since the search began (not since the job began)
    fold.apply({**search, "trials_done": 4, "task": "harmful", "best_so_far": 0.3, "point": 0.35}, 115.0)
    fold.apply({**search, "trials_done": 4, "task": "harmful", "best_so_far": 0.3, "point": 0.35}, 116.0)  # replayed
    assert fold.view.harmful_best == 0.4 and [p.value for p in fold.view.points] == [0.35]
    fold.apply({"stage": "censor", "step": 3, "eta_s": 12.5}, 120.0)
    assert fold.view.eta_s == 12.5 and fold.view.step == 3
    fold.apply({**search, "trials_done": 5, "eta_s": 240.0}, 130.0)  # the audit runner's own estimate wins
    assert fold.view.eta_s == 240.0


def test_ui_event_stream_sends_the_folded_view_then_the_end(app_client: TestClient) -> None:
    store = store_of(app_client)
    job_id = make_job(app_client, key_id(app_client, "admin"))
    store.start_job(job_id, "test", time.time() + 60)
    search = {"stage": "search", "trials_total": 4, "model": "base", "task": "harmful", "n": 20, "seed": 0}
    store.append_event(job_id, {**search, "trials_done": 1, "best_so_far": 0.5}, 1.0)
    store.append_event(job_id, {**search, "trials_done": 2, "best_so_far": 0.55, "point": 0.55}, 2.0)  # search done
    store.finish_job(job_id, "FAILED", error="ConfigError: <b>boom</b>")
    sign_in(app_client, ADMIN_KEY)
    with app_client.stream("GET", f"/ui/jobs/{job_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        text = "".join(stream.iter_text())
    blocks = [b for b in text.split("\n\n") if b.strip()]
    progress = json.loads(blocks[0].split("data: ", 1)[1])
    assert progress["trials_done"] == 2 and progress["harmful_best"] == 0.55
    assert progress["points"] == [{"model": "base", "task": "harmful", "n": 20, "seed": 0, "value": 0.55}]
    assert blocks[-1].startswith("event: end")
    end = json.loads(blocks[-1].split("data: ", 1)[1])
    assert end.pop("finished").endswith(" UTC")
    assert end == {"state": "FAILED", "verdict": None, "error": "ConfigError: <b>boom</b>"}  # JSON; the page uses textContent
    app_client.cookies.clear()
    assert app_client.get(f"/ui/jobs/{job_id}/events", follow_redirects=False).status_code == 303


def test_docs_work_offline_and_carry_request_examples(app_client: TestClient) -> None:
    sign_in(app_client, ADMIN_KEY)
    page = app_client.get("/docs").text
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page)  # nothing from a CDN
    assets = re.findall(r"(?:src|href)=\"(/[^\"]+)\"", page)
    assert len(assets) == 3
    for asset in assets:
        r = app_client.get(asset)
        assert r.status_code == 200 and len(r.content) > 1000, asset
    assert app_client.get("/ui/static/swagger/../../app.py").status_code == 404
    schemas = app_client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("JobCreate", "ScheduleCreate", "SyntheticDatasetCreate"):
        assert schemas[name]["examples"], name
    assert schemas["JobCreate"]["examples"][0]["kind"] == "censor_then_audit"
