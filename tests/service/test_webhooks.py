"""Webhooks: the egress policy (refused without a byte sent), per-tenant secrets, the persistent outbox,
retries, and per-destination isolation. Real sockets and HTTP receivers on loopback (allowed explicitly)."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import wait
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from mlac.contracts import JobOutcome
from service.app import create_app
from service.egress import EgressPolicy, IPAddress, denial_reason
from service.settings import Settings
from service.store import JobStore, get_store
from service.store.records import NewJob, NewWebhook, WebhookOutcome
from service.webhooks import WebhookSender, verify

from .conftest import auth, make_settings, new_key

LOOPBACK = ("127.0.0.1/32",)


class Receiver:
    """A real HTTP receiver on 127.0.0.1 answering ``statuses`` in turn (then the last one)."""

    def __init__(self, statuses: tuple[int, ...] = (204,)) -> None:
        self.calls: list[dict[str, Any]] = []
        self.arrived = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.calls.append({"body": body, "headers": dict(self.headers), "t": time.monotonic()})
                self.send_response(statuses[min(len(outer.calls), len(statuses)) - 1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                outer.arrived.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Listener:
    """A listening loopback socket that never answers: counts the connections it was offered."""

    def __init__(self, accept: bool = False) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        if accept:  # accept and hold every connection, never answer (a hanging receiver)
            threading.Thread(target=self._hold, daemon=True).start()

    def _hold(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def connections(self) -> int:
        """Connections completed so far (the kernel finishes handshakes even before accept)."""
        self.sock.setblocking(False)
        try:
            while True:
                conn, _ = self.sock.accept()
                self.held.append(conn)
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)
        return len(self.held)

    def close(self) -> None:
        for conn in self.held:
            conn.close()
        self.sock.close()


class Recording(httpx.BaseTransport):
    """Forwards to a real transport and records every request that reached the transport layer."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.inner.handle_request(request)


def fake_resolver(table: dict[str, list[str]]) -> Callable[[str, int], list[IPAddress]]:
    def resolve(host: str, port: int) -> list[IPAddress]:
        if host not in table:
            from service.egress import EgressResolveError

            raise EgressResolveError(f"cannot resolve {host!r}")
        return [ipaddress.ip_address(a) for a in table[host]]
    return resolve


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[JobStore]:
    s = get_store(f"sqlite:///{tmp_path / 'hooks.db'}")
    yield s
    s.close()


def sender(store: JobStore, allow: tuple[str, ...] = (), resolver: Any = None, **kw: Any) -> WebhookSender:
    policy = EgressPolicy.from_entries(allow, **({"resolver": resolver} if resolver else {}))
    return WebhookSender(store, policy, **{"timeout_s": 2.0, "retries": 2, "backoff_s": 0.05, "poll_s": 0.05, **kw})


def drain(s: WebhookSender) -> None:
    """One round, waiting for what it started."""
    wait(s.run_once(), timeout=30)


# -- the policy
@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "240.0.0.1", "::1", "::",
                                     "fe80::1", "fc00::1", "fd12::1", "fec0::1", "ff02::1", "::ffff:127.0.0.1",
                                     "::ffff:169.254.169.254", "::10.0.0.1", "2002:a9fe:a9fe::1", "64:ff9b::7f00:1"])
def test_default_policy_denies_non_public_addresses(address: str) -> None:
    assert denial_reason(ipaddress.ip_address(address)) is not None


def test_policy_allows_public_and_listed_destinations() -> None:
    for address in ("93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
        assert denial_reason(ipaddress.ip_address(address)) is None
    policy = EgressPolicy.from_entries(["127.0.0.1/32", "Receiver.Internal."],
                                       resolver=fake_resolver({"receiver.internal": ["10.9.9.9"]}))
    assert policy.resolve("http://receiver.internal:9000/x").address == ipaddress.ip_address("10.9.9.9")
    assert str(policy.resolve("http://127.0.0.1:1/").address) == "127.0.0.1"
    with pytest.raises(ValueError):
        EgressPolicy.from_entries(["not a host!"])


@pytest.mark.parametrize("url", ["ftp://example.com/x", "http://user:pw@example.com/", "http://10.0.0.1/",
                                 "http://0x7f000001/", "http://127.1:8265/api/jobs/", "https://[::ffff:a9fe:a9fe]/"])
def test_check_url_refuses_bad_schemes_userinfo_and_literal_private_addresses(url: str) -> None:
    from service.egress import EgressDeniedError

    with pytest.raises(EgressDeniedError):
        EgressPolicy().check_url(url)


# -- the deny path: refused at send time, nothing sent
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "10.0.0.7", "169.254.169.254",
                                  "rebind.example", "internal.example"])
def test_denied_destination_is_refused_at_send_time_without_any_connection(sqlite_store: JobStore, host: str) -> None:
    listener = Listener()
    recording = Recording()
    # rebind.example: one public and one loopback answer (EVERY address is checked); internal.example: private only
    resolver = fake_resolver({"localhost": ["127.0.0.1"], "rebind.example": ["93.184.216.34", "127.0.0.1"],
                              "internal.example": ["192.168.7.7"]})
    s = sender(sqlite_store, resolver=resolver, transport=recording)
    try:
        row = s.enqueue("key_a", f"http://{host}:{listener.port}/hook", "job.completed", {"job_id": "j"}, job_id=None)
        drain(s)
        [after] = sqlite_store.list_webhooks("key_a")[0]
        assert after.id == row.id and after.state == "refused" and after.attempts == 1
        assert "refused by the egress policy" in (after.last_error or "")
        assert recording.requests == [] and listener.connections() == 0
        drain(s)  # a refused row is final: never tried again
        assert sqlite_store.list_webhooks("key_a")[0][0].attempts == 1 and recording.requests == []
    finally:
        s.close()
        listener.close()


def test_submission_refuses_private_webhook_urls(tmp_path: Path) -> None:
    ds = "ds_" + "0" * 20  # the URL is checked before the dataset is looked up
    with TestClient(create_app(make_settings(tmp_path), background=False)) as client:
        for url in ("http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data", "http://127.0.0.1:8265/api/jobs/"):
            r = client.post("/v1/jobs", json={"kind": "audit", "dataset_id": ds, "webhook_url": url}, headers=auth())
            assert r.status_code == 422 and r.json()["error"]["code"] == "webhook_url_denied", r.text
            assert "egress policy" in r.json()["error"]["message"]
            sched = {"cron": "0 3 * * *", "job": {"kind": "audit", "dataset_id": ds}, "webhook_url": url}
            r = client.post("/v1/schedules", json=sched, headers=auth())
            assert r.status_code == 422 and r.json()["error"]["code"] == "webhook_url_denied", r.text
            sched = {"cron": "0 3 * * *", "job": {"kind": "audit", "dataset_id": ds, "webhook_url": url}}
            assert client.post("/v1/schedules", json=sched, headers=auth()).json()["error"]["code"] == "webhook_url_denied"
        r = client.post("/v1/jobs", json={"kind": "audit", "dataset_id": ds, "webhook_url": "http://u:p@example.com/"},
                        headers=auth())
        assert r.status_code == 422
    allowed = make_settings(tmp_path / "b", webhook_allow="127.0.0.1/32")
    with TestClient(create_app(allowed, background=False)) as client:
        r = client.post("/v1/jobs", json={"kind": "audit", "dataset_id": ds, "webhook_url": "http://127.0.0.1:9/h"},
                        headers=auth())
        assert r.json()["error"]["code"] != "webhook_url_denied", r.text  # past the URL check: the config is what fails


def test_allow_list_setting_parses_comma_separated_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLAC_WEBHOOK_ALLOW", "127.0.0.1/32, receiver.internal")
    assert Settings().webhook_allow == ("127.0.0.1/32", "receiver.internal")
    monkeypatch.setenv("MLAC_WEBHOOK_ALLOW", "no way/")
    with pytest.raises(ValueError):
        Settings()


# -- delivery to an allowed loopback receiver, signed with the owner's secret
def _finished_job(client: TestClient, owner: str, url: str) -> str:
    state = client.app.state.ctx  # type: ignore[attr-defined]
    job, _ = state.store.create_job(NewJob(owner=owner, kind="audit", spec={}, spec_hash="h", webhook_url=url))
    state.store.start_job(job.id, "test", time.time() + 60)
    state.dispatcher.sink.finished(job.id, JobOutcome("FAILED"))  # enqueues job.completed in the outbox
    return str(job.id)


def test_delivery_is_signed_with_the_owners_secret_and_tenants_differ(tmp_path: Path) -> None:
    receiver = Receiver()
    settings = make_settings(tmp_path, webhook_allow="127.0.0.1/32", webhook_backoff_s=0.05)
    try:
        with TestClient(create_app(settings, background=False)) as client:
            key_a, key_b = new_key(client, "tenant-a"), new_key(client, "tenant-b")
            owner_a = client.get("/v1/keys", headers=auth()).json()[1]["id"]
            secret_a = client.get("/v1/webhooks/secret", headers=auth(key_a)).json()["secret"]
            secret_b = client.get("/v1/webhooks/secret", headers=auth(key_b)).json()["secret"]
            assert secret_a != secret_b and client.get("/v1/webhooks/secret", headers=auth(key_a)).json()["secret"] == secret_a
            client.app.state.ctx.webhooks.start()  # type: ignore[attr-defined]
            job_id = _finished_job(client, owner_a, receiver.url)
            assert receiver.arrived.wait(10), "the webhook never arrived"
            call = receiver.calls[0]
            h, body = call["headers"], call["body"]
            assert verify(secret_a, h["X-MLAC-Timestamp"], body, h["X-MLAC-Signature"])
            assert not verify(secret_b, h["X-MLAC-Timestamp"], body, h["X-MLAC-Signature"])
            assert json.loads(body) == {**json.loads(body), "event": "job.completed", "job_id": job_id, "state": "FAILED"}
            deadline = time.monotonic() + 5
            while (rows := client.get("/v1/webhooks/deliveries", params={"job_id": job_id}, headers=auth(key_a)).json())[
                    "items"][0]["state"] != "delivered":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            item = rows["items"][0]
            assert rows["total"] == 1 and item["attempts"] == 1 and item["last_status"] == 204 and h["X-MLAC-Delivery"] == item["id"]
            assert client.get("/v1/webhooks/deliveries", headers=auth(key_b)).json()["total"] == 0
            assert client.get("/v1/webhooks/deliveries", headers=auth()).json()["total"] == 1
            assert 'mlac_webhook_deliveries_total{outcome="delivered"} 1.0' in client.get("/metrics", headers=auth()).text

            rotated = client.post("/v1/webhooks/secret/rotate", headers=auth(key_a)).json()["secret"]
            assert rotated not in (secret_a, secret_b)
            _finished_job(client, owner_a, receiver.url)
            deadline = time.monotonic() + 10
            while len(receiver.calls) < 2:
                assert time.monotonic() < deadline, "the second webhook never arrived"
                time.sleep(0.05)
            h2, body2 = receiver.calls[1]["headers"], receiver.calls[1]["body"]
            assert verify(rotated, h2["X-MLAC-Timestamp"], body2, h2["X-MLAC-Signature"])
            assert not verify(secret_a, h2["X-MLAC-Timestamp"], body2, h2["X-MLAC-Signature"])
    finally:
        receiver.close()


def test_pinned_connection_goes_to_the_checked_address_with_the_original_host_header(sqlite_store: JobStore) -> None:
    receiver = Receiver()
    # hooks.example does not exist: only the policy's (fake) resolver knows it, so the delivery can only arrive if
    # the client connected to the address the policy checked rather than resolving the name again
    s = sender(sqlite_store, allow=LOOPBACK, resolver=fake_resolver({"hooks.example": ["127.0.0.1"]}))
    try:
        s.enqueue("key_a", f"http://hooks.example:{receiver.port}/hook", "job.completed", {"job_id": "j"})
        drain(s)
        assert receiver.calls and receiver.calls[0]["headers"]["Host"] == f"hooks.example:{receiver.port}"
        assert sqlite_store.list_webhooks(None)[0][0].state == "delivered"
    finally:
        s.close()
        receiver.close()


# -- retries and giving up
@pytest.mark.parametrize(("status", "state", "attempts"), [(404, "failed", 1), (302, "failed", 1), (410, "failed", 1),
                                                            (429, "delivered", 2), (503, "delivered", 2), (408, "delivered", 2)])
def test_retry_rules(sqlite_store: JobStore, status: int, state: str, attempts: int) -> None:
    receiver = Receiver((status, 204))
    s = sender(sqlite_store, allow=LOOPBACK, backoff_s=0.0)
    try:
        s.enqueue("key_a", receiver.url, "job.completed", {"job_id": "j"})
        for _ in range(3):
            drain(s)
        row = sqlite_store.list_webhooks(None)[0][0]
        assert (row.state, row.attempts, len(receiver.calls)) == (state, attempts, attempts)
        if state == "failed":
            assert row.last_status == status and f"HTTP {status}" in (row.last_error or "")
    finally:
        s.close()
        receiver.close()


def test_receiver_down_backs_off_then_gives_up(sqlite_store: JobStore) -> None:
    closed = Listener()
    port = closed.port
    closed.close()  # nothing listens there any more: connection refused
    now = [1000.0]
    s = sender(sqlite_store, allow=LOOPBACK, retries=2, backoff_s=10.0, clock=lambda: now[0])
    try:
        s.enqueue("key_a", f"http://127.0.0.1:{port}/hook", "job.completed", {"job_id": "j"})
        drain(s)
        row = sqlite_store.list_webhooks(None)[0][0]
        assert row.state == "pending" and row.attempts == 1 and row.next_attempt_at == pytest.approx(1010.0)
        assert "ConnectError" in (row.last_error or "")
        now[0] = 1005.0
        assert s.run_once() == []  # not due yet
        now[0] = 1010.5
        drain(s)
        row = sqlite_store.list_webhooks(None)[0][0]
        assert row.attempts == 2 and row.next_attempt_at == pytest.approx(1030.5)  # 10 * 2**1
        now[0] = 1031.0
        drain(s)
        row = sqlite_store.list_webhooks(None)[0][0]
        assert row.state == "failed" and row.attempts == 3 and "gave up after 3 attempts" in (row.last_error or "")
    finally:
        s.close()


# -- persistence
def test_pending_deliveries_survive_a_restart(tmp_path: Path) -> None:
    receiver = Receiver()
    settings = make_settings(tmp_path, webhook_allow="127.0.0.1/32")
    try:
        with TestClient(create_app(settings, background=False)) as client:  # the delivery loop never runs here
            owner = client.get("/v1/keys", headers=auth()).json()[0]["id"]
            job_id = _finished_job(client, owner, receiver.url)
            [row] = client.get("/v1/webhooks/deliveries", headers=auth()).json()["items"]
            assert row["state"] == "pending" and row["attempts"] == 0 and not receiver.calls
        with TestClient(create_app(settings)) as client:  # a new process on the same database
            assert receiver.arrived.wait(10), "the pending webhook was not delivered after the restart"
            assert json.loads(receiver.calls[0]["body"])["job_id"] == job_id
            secret = client.get("/v1/webhooks/secret", headers=auth()).json()["secret"]
            h = receiver.calls[0]["headers"]
            assert verify(secret, h["X-MLAC-Timestamp"], receiver.calls[0]["body"], h["X-MLAC-Signature"])
    finally:
        receiver.close()


def test_a_dead_processs_claim_expires_and_the_row_is_delivered(sqlite_store: JobStore) -> None:
    receiver = Receiver()
    now = [1000.0]
    s = sender(sqlite_store, allow=LOOPBACK, clock=lambda: now[0])
    try:
        s.enqueue("key_a", receiver.url, "job.completed", {"job_id": "j"})
        assert len(sqlite_store.claim_webhooks("dead-process", 1000.0, 1030.0, 5)) == 1  # claimed, then it died
        assert s.run_once() == [] and not receiver.calls  # claimed by another process: never sent twice meanwhile
        now[0] = 1031.0
        drain(s)
        assert len(receiver.calls) == 1 and sqlite_store.list_webhooks(None)[0][0].state == "delivered"
    finally:
        s.close()
        receiver.close()


# -- per-destination isolation
def test_a_hanging_destination_does_not_delay_others(sqlite_store: JobStore) -> None:
    hanging = Listener(accept=True)
    good = Receiver()
    s = sender(sqlite_store, allow=LOOPBACK, timeout_s=2.0, backoff_s=30.0, poll_s=0.02)
    try:
        hang_url = f"http://127.0.0.1:{hanging.port}/hook"
        for i in range(3):
            s.enqueue("key_a", hang_url, "job.completed", {"job_id": f"hang{i}"})
        t0 = time.monotonic()
        s.start()
        s.enqueue("key_b", good.url, "job.completed", {"job_id": "good"})
        assert good.arrived.wait(5)
        delay = good.calls[0]["t"] - t0
        assert delay < 1.0, f"the good destination waited {delay:.2f}s behind the hanging one"
        deadline = time.monotonic() + 2.0  # on a loaded machine the good delivery may land before the hang is accepted
        while hanging.connections() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert hanging.connections() == 1  # one delivery in flight per destination, not three
        time.sleep(2.5)  # the hanging attempt times out; that destination is now in back-off: skipped, not retried
        rows = {json.loads(r.body)["job_id"]: r for r in sqlite_store.list_webhooks(None, limit=10)[0]}
        timed_out = [r for k, r in rows.items() if k.startswith("hang") and r.attempts == 1]
        assert len(timed_out) == 1 and timed_out[0].state == "pending" and "Timeout" in (timed_out[0].last_error or "")
        assert sum(r.attempts for k, r in rows.items() if k.startswith("hang")) == 1
        s.enqueue("key_b", good.url, "job.completed", {"job_id": "good2"})
        deadline = time.monotonic() + 5
        while len(good.calls) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert hanging.connections() == 1
    finally:
        s.close(wait_s=0)
        hanging.close()
        good.close()


# -- the store's outbox methods, on both backends
def test_outbox_store_contract(store: JobStore) -> None:
    assert store.webhook_secret("key_a", "s1").secret == "s1"
    assert store.webhook_secret("key_a", "other").secret == "s1"  # the first one stays
    assert store.rotate_webhook_secret("key_a", "s2").secret == "s2" and store.webhook_secret("key_a", "x").secret == "s2"
    assert store.rotate_webhook_secret("key_new", "s3").secret == "s3"

    def hook(owner: str, dest: str, job_id: str | None, event: str = "job.completed") -> NewWebhook:
        return NewWebhook(owner=owner, url=f"http://{dest}/h", destination=dest, event=event, body="{}", job_id=job_id)

    a1, created = store.enqueue_webhook(hook("key_a", "a:80", "job_1"), 100.0)
    again, created2 = store.enqueue_webhook(hook("key_a", "a:80", "job_1"), 101.0)
    assert created and not created2 and again.id == a1.id
    a2, _ = store.enqueue_webhook(hook("key_a", "a:80", "job_1", "audit.verdict_fail"), 100.5)
    b1, _ = store.enqueue_webhook(hook("key_b", "b:80", None), 100.7)
    c1, _ = store.enqueue_webhook(hook("key_b", "c:80", None), 200.0)  # not due yet at t=150

    first = store.claim_webhooks("p1", 150.0, 160.0, 10)
    assert sorted(r.id for r in first) == sorted([a1.id, b1.id])  # one per destination; c1 not due
    assert store.claim_webhooks("p2", 150.0, 160.0, 10) == []  # a:80 has a live claim (p1's): a2 waits too
    assert not store.record_webhook_attempt(a1.id, "p2", WebhookOutcome(state="delivered", status=204), 151.0)
    assert store.record_webhook_attempt(a1.id, "p1", WebhookOutcome(state="delivered", status=204), 151.0)
    assert [r.id for r in store.claim_webhooks("p2", 152.0, 160.0, 10, frozenset({"a:80"}))] == []
    [got] = store.claim_webhooks("p2", 152.0, 160.0, 10)
    assert got.id == a2.id
    assert store.record_webhook_attempt(a2.id, "p2", WebhookOutcome(state="pending", status=503, error="HTTP 503",
                                                                    next_attempt_at=170.0), 153.0)
    assert store.release_webhook_claims("p1") == 1  # b1 back to unclaimed
    assert sorted(r.id for r in store.claim_webhooks("p3", 201.0, 210.0, 10)) == sorted([a2.id, b1.id, c1.id])

    mine, total = store.list_webhooks("key_a")
    assert total == 2 and {r.id for r in mine} == {a1.id, a2.id}
    assert store.list_webhooks("key_a", state="delivered")[1] == 1 and store.list_webhooks(None)[1] == 4
    assert store.list_webhooks("key_b", job_id="job_1")[1] == 0
    row = next(r for r in mine if r.id == a1.id)
    assert row.state == "delivered" and row.attempts == 1 and row.delivered_at == 151.0 and row.claimed_by is None
