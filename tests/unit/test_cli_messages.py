"""What the CLI tells a user: one line when the service is down, the URL and key from flags / environment / config
file, the API's ETA in ``watch``, a clear message for a pickle passed as a model, progress with an ETA on ``base``,
and what Ctrl-C kept."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import httpx
import pytest

import service.cli as service_cli
from mlac.cli.main import StopOnInterrupt, main
from service.client import Client, ServiceError, ServiceUnreachable, resolve_connection

JOB = "job_0123456789abcdef0123"


def _closed_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No URL, key or config file from the developer's environment."""
    for var in ("MLAC_URL", "MLAC_API_KEY", "MLAC_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLAC_CONFIG", str(tmp_path / "config.toml"))
    return tmp_path / "config.toml"


@pytest.mark.parametrize("command", [
    ["status", JOB], ["watch", JOB], ["result", JOB], ["cancel", JOB],
    ["submit", "audit", "--dataset", "ds_0123456789abcdef0123"],
    ["upload-checkpoint", "CKPT"], ["upload-dataset", "DATA"],
])
def test_service_down_is_one_line(command: list[str], tmp_path: Path, no_config: Path,
                                  monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}")
    (tmp_path / "bios.parquet").write_bytes(b"PAR1")
    command = [{"CKPT": str(tmp_path / "ckpt"), "DATA": str(tmp_path / "bios.parquet")}.get(a, a) for a in command]
    monkeypatch.setattr("service.client.time.sleep", lambda s: None)  # submit's retries
    port = _closed_port()
    monkeypatch.setenv("MLAC_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLAC_API_KEY", "some-key")
    rc = main(command)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip() == (f"error [service_unreachable]: cannot reach the mlac-audit service at "
                           f"http://127.0.0.1:{port}: connection refused (is `mlac-audit serve` running?)")


def test_url_and_key_precedence(tmp_path: Path, no_config: Path) -> None:
    no_config.write_text('url = "http://file:1"\napi_key = "file-key"\n')
    env = {"MLAC_CONFIG": str(no_config)}
    assert resolve_connection(env=env) == resolve_connection(env=env)  # deterministic
    c = resolve_connection(env=env)
    assert (c.url, c.api_key, c.url_from) == ("http://file:1", "file-key", str(no_config))
    c = resolve_connection(env={**env, "MLAC_URL": "http://env:2/", "MLAC_API_KEY": "env-key"})
    assert (c.url, c.api_key, c.key_from) == ("http://env:2", "env-key", "MLAC_API_KEY")
    c = resolve_connection("http://flag:3", "flag-key", env={**env, "MLAC_URL": "http://env:2", "MLAC_API_KEY": "k"})
    assert (c.url, c.api_key, c.url_from, c.key_from) == ("http://flag:3", "flag-key", "--url", "--api-key")
    (tmp_path / "dd").mkdir()
    (tmp_path / "dd" / "admin_key").write_text("admin-key\n")
    c = resolve_connection(data_dir=tmp_path / "dd", env={"MLAC_CONFIG": str(tmp_path / "none.toml")})
    assert (c.url, c.api_key) == ("http://127.0.0.1:8000", "admin-key")
    no_config.write_text('url = "http://file:1"\ntoken = "x"\n')
    with pytest.raises(Exception, match="unknown keys"):
        resolve_connection(env=env)


def test_no_key_is_one_line(tmp_path: Path, no_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", JOB, "--data-dir", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error [invalid_config]: no API key") and "\n" not in err and "MLAC_API_KEY" in err


def _mock_service(job_eta: float | None) -> httpx.MockTransport:
    """An SSE stream of two progress events without ``eta_s`` (what the job reported) and the job's view with
    the ETA the API computes, as the real service answers them."""
    events = [{"stage": "search", "trials_done": 2, "trials_total": 40, "studies_done": 0, "studies_total": 4},
              {"stage": "report"}]
    body = "".join(f"id: {i + 1}\nevent: progress\ndata: {json.dumps(e)}\n\n" for i, e in enumerate(events))
    body += 'event: end\ndata: {"state": "SUCCEEDED", "verdict": "PASS"}\n\n'

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
        if request.url.path == f"/v1/jobs/{JOB}":
            return httpx.Response(200, json={
                "id": JOB, "kind": "audit", "state": "RUNNING", "owner": "k", "request": {},
                "progress": {"stage": "search", "trials_done": 2, "trials_total": 40, "eta_s": job_eta},
                "created_at": 0.0, "started_at": 0.0, "finished_at": None, "attempts": 1, "cancel_requested": False,
                "error": None, "verdict": None, "schedule_id": None, "links": {}})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no such thing"}})

    return httpx.MockTransport(handler)


def test_watch_prints_the_eta_the_api_gives(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(service_cli, "_client", lambda args: Client("http://svc", "k", transport=_mock_service(1300.0)))
    assert main(["watch", JOB]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "search  trials 2/40  searches 0/4  ETA 21m40s"
    assert lines[-1] == f"job {JOB}: SUCCEEDED (verdict PASS)"


def test_client_error_answers_are_typed() -> None:
    with Client("http://svc", "k", transport=_mock_service(None)) as c:
        assert c.get_job(JOB).progress.eta_s is None
        with pytest.raises(ServiceError) as err:
            c.get_dataset("ds_0123456789abcdef0123")
    assert (err.value.status, err.value.code, str(err.value)) == (404, "not_found", "HTTP 404: no such thing")
    with Client(f"http://127.0.0.1:{_closed_port()}") as c, pytest.raises(ServiceUnreachable, match="connection refused"):
        c.health()


@pytest.mark.parametrize("argv", [["audit", "--model", "M", "--data", "d.parquet", "--out", "o"],
                                  ["audit", "--base", "M", "--data", "d.parquet", "--out", "o", "--baselines", "base"],
                                  ["censor", "--base", "M", "--data", "d.parquet", "--out", "o"]])
def test_a_pickle_as_a_model_is_named_as_such(argv: list[str], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(b"\x80\x04N.")
    assert main([str(pkl) if a == "M" else a for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error [pickle_refused]: ") and "a pickle file" in err and "\n" not in err
    assert "not found" not in err and "checkpoint directory" in err


def test_base_progress_lines_carry_an_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlac.cli import base_cmd

    clock = iter([0.0, 10.0, 16.0, 17.0, 40.0])
    monkeypatch.setattr(base_cmd.time, "monotonic", lambda: next(clock))
    lines: list[str] = []
    progress = base_cmd.step_printer("base", 100, lines.append, every_s=5.0)
    for step, loss in ((1, 2.0), (25, 1.5), (26, 1.4), (75, 1.0)):
        progress(step, loss)
    # step 1 at 10 s: the mean rate (99 steps at 10 s each); step 26 comes 1 s after step 25 and is not printed.
    # Later the rate of the latter half of the run: step 25 at 16 s from step 1 at 10 s (4 steps/s, 75 left), step 75
    # at 40 s from step 26 at 17 s (49 steps in 23 s, 25 left: 11.7 s).
    assert lines == ["base: step 1/100 (1%), loss 2.000, elapsed 10s, ETA 16m30s",
                     "base: step 25/100 (25%), loss 1.500, elapsed 16s, ETA 19s",
                     "base: step 75/100 (75%), loss 1.000, elapsed 40s, ETA 12s"]


def test_the_eta_forgets_slow_first_steps() -> None:
    """A run whose first 10 steps took 30 s and whose steps now take 1 s: the ETA follows the recent rate."""
    from mlac.cli.base_cmd import eta_at

    seen = [(3.0 * k, k) for k in range(1, 11)] + [(30.0 + k, 10 + k) for k in range(1, 41)]
    assert eta_at(seen, 100) == pytest.approx(50.0)  # 50 steps left at 1 step/s (the mean rate would say 70 s)
    assert eta_at(seen[:1], 100) == pytest.approx(3.0 * 99)  # one sample: the mean rate


def test_ctrl_c_asks_to_stop_first_and_interrupts_the_second_time(capsys: pytest.CaptureFixture[str]) -> None:
    with StopOnInterrupt("saving the state") as stop:
        assert not stop()
        os.kill(os.getpid(), signal.SIGINT)
        assert stop()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert "Ctrl-C: saving the state" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_interrupt_messages_say_what_was_saved_and_how_to_resume(tmp_path: Path) -> None:
    from mlac.cli.audit_cmd import audit_stopped_message
    from mlac.cli.censor_cmd import interrupted_message

    text = interrupted_message(tmp_path, 40, 47, 20)
    assert "last saved state is step 40" in text and "steps after it are lost" in text and "resume from step 40" in text
    assert "starts over" in interrupted_message(tmp_path, None, 7, 20)
    (tmp_path / "mlac_resume").mkdir()
    assert "earlier state" in interrupted_message(tmp_path, None, 7, 20)
    text = audit_stopped_message(tmp_path, f"sqlite:///{tmp_path}/optuna.db", 12, 3)
    assert "12 finished trials" in text and "optuna.db" in text and "same command again" in text
