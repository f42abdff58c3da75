"""A typed Python client of the mlac-audit REST API (httpx), what the CLI's client commands use.

::

    from service.client import Client

    with Client("http://127.0.0.1:8000", api_key=KEY) as c:
        ds = c.upload_dataset("bios.parquet")
        ckpt = c.upload_checkpoint("runs/base")
        job = c.wait(c.submit({"kind": "audit", "dataset_id": ds.id, "checkpoint_id": ckpt.id}).id)
        print(job.state, job.verdict)

Answers are the pydantic models of :mod:`service.schemas` (``JobPublic``, ``DatasetPublic``, ...). An error
answer raises :class:`ServiceError` (its ``status``, the service's error ``code`` and message); a service that
cannot be reached raises :class:`ServiceUnreachable`, with a one-line message naming the URL. Both are
:class:`mlac.errors.MlacError`, which the CLI prints as one line. :func:`resolve_connection` finds the URL and
the key from flags, the environment (``MLAC_URL``, ``MLAC_API_KEY``) and the config file
(``~/.config/mlac-audit/config.toml``).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from mlac.errors import ConfigError, MlacError
from service.schemas import (
    CheckpointFilesPublic,
    CheckpointPublic,
    CheckpointsPublic,
    ComparisonCreate,
    ComparisonPublic,
    DatasetPublic,
    DatasetsPublic,
    Health,
    JobCreate,
    JobPublic,
    JobsPublic,
    ScheduleRunsPublic,
    SyntheticDatasetCreate,
)

DEFAULT_URL = "http://127.0.0.1:8000"
#: States a job does not leave.
TERMINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")
#: Transport failures of :meth:`Client.submit` are retried this many times in all, with one Idempotency-Key.
SUBMIT_ATTEMPTS = 3


class ServiceError(MlacError):
    """The service answered with an error: ``status`` (HTTP), ``code`` (the service's error code), message."""

    code = "service_error"

    def __init__(self, message: str, *, status: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status


class ServiceUnreachable(MlacError):
    """No answer from the service: refused, timed out, or the connection broke."""

    code = "service_unreachable"


@dataclass(frozen=True)
class Connection:
    """Where the service is and the key to use, with where each came from (for messages)."""

    url: str
    api_key: str | None
    url_from: str
    key_from: str | None


@dataclass(frozen=True)
class JobEvent:
    """One Server-Sent Event of a job: ``kind`` ``progress`` (``data``: the progress payload, ``id``: its sequence
    number) or ``end`` (``data``: ``state`` and ``verdict``)."""

    kind: str
    data: dict[str, Any]
    id: int | None = None


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The client config file: ``$MLAC_CONFIG``, else ``$XDG_CONFIG_HOME/mlac-audit/config.toml`` (default
    ``~/.config``)."""
    env = os.environ if env is None else env
    if env.get("MLAC_CONFIG"):
        return Path(env["MLAC_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]).expanduser() if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "mlac-audit" / "config.toml"


def read_config(path: Path) -> dict[str, str]:
    """``url`` and ``api_key`` from a TOML config file (absent file: nothing; other keys: an error)."""
    if not path.is_file():
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError(f"{path}: reading the config file needs Python 3.11 or the tomli package") from None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"url", "api_key"})
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown}; the config file takes url and api_key")
    bad = [k for k, v in data.items() if not isinstance(v, str) or not v]
    if bad:
        raise ConfigError(f"{path}: {', '.join(bad)} must be non-empty strings")
    return {str(k): str(v) for k, v in data.items()}


def resolve_connection(url: str | None = None, api_key: str | None = None, *, data_dir: Path | None = None,
                       env: Mapping[str, str] | None = None, require_key: bool = True) -> Connection:
    """The URL and key to use. Each is the first of: the flag (``url``/``api_key``), the environment
    (``MLAC_URL``/``MLAC_API_KEY``), the config file (:func:`config_path`); the URL defaults to
    http://127.0.0.1:8000 and the key to ``<data dir>/admin_key`` of an embedded server (``data_dir``, else
    ``$MLAC_DATA_DIR``, else ``./data``). No key found is a ConfigError when ``require_key``."""
    env = os.environ if env is None else env
    path = config_path(env)
    file = read_config(path)
    found_url = [(url, "--url"), (env.get("MLAC_URL"), "MLAC_URL"), (file.get("url"), str(path))]
    chosen_url, url_from = next(((v, s) for v, s in found_url if v), (DEFAULT_URL, "default"))
    found_key = [(api_key, "--api-key"), (env.get("MLAC_API_KEY"), "MLAC_API_KEY"), (file.get("api_key"), str(path))]
    key, key_from = next(((v, s) for v, s in found_key if v), (None, None))
    if key is None:
        admin = Path(data_dir if data_dir is not None else env.get("MLAC_DATA_DIR") or "data") / "admin_key"
        if admin.is_file():
            key, key_from = admin.read_text(encoding="utf-8").strip(), str(admin)
    if key is None and require_key:
        raise ConfigError(f"no API key: pass --api-key, set MLAC_API_KEY, put api_key in {path}, or point "
                          "--data-dir at an embedded server's data dir (its admin_key)")
    return Connection(url=chosen_url.rstrip("/"), api_key=key, url_from=url_from, key_from=key_from)


def _reason(exc: httpx.TransportError) -> str:
    """A short reason for a transport failure: ``connection refused``, ``timed out``, ..."""
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if "name or service not known" in lowered or "nodename nor servname" in lowered or "getaddrinfo" in lowered:
        return "unknown host"
    return text.splitlines()[0][:200]


def _error_of(r: httpx.Response) -> ServiceError:
    try:
        err = r.json()["error"]
        return ServiceError(f"HTTP {r.status_code}: {err['message']}", status=r.status_code, code=str(err["code"]))
    except (ValueError, KeyError, TypeError):
        return ServiceError(f"HTTP {r.status_code}: {r.text[:300]}", status=r.status_code)


class Client:
    """The mlac-audit REST API over httpx. Use as a context manager (or call :meth:`close`).

    ``transport``: an httpx transport (e.g. ``httpx.MockTransport``); ``http``: an ``httpx.Client`` to send
    through instead of making one (e.g. FastAPI's ``TestClient``, which carries its own base URL and headers; it
    is left open by :meth:`close`)."""

    def __init__(self, url: str = DEFAULT_URL, api_key: str | None = None, *, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None, http: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._owned = http is None
        self._http = http if http is not None else httpx.Client(base_url=self.url, headers=headers, timeout=timeout,
                                                               transport=transport)

    @classmethod
    def from_connection(cls, conn: Connection, **kwargs: Any) -> Client:
        """A client for a :func:`resolve_connection` answer."""
        return cls(conn.url, conn.api_key, **kwargs)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (not that of an ``http`` client given to the constructor)."""
        if self._owned:
            self._http.close()

    def _unreachable(self, exc: httpx.TransportError) -> ServiceUnreachable:
        return ServiceUnreachable(f"cannot reach the mlac-audit service at {self.url}: {_reason(exc)} "
                                  "(is `mlac-audit serve` running?)")

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            r = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if r.status_code >= 400:
            raise _error_of(r)
        return r

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(method, path, **kwargs).json()

    # health
    def health(self) -> Health:
        """``GET /v1/health`` (no key needed)."""
        return Health.model_validate(self._json("GET", "/v1/health"))

    # datasets
    def upload_dataset(self, path: str | Path, *, name: str | None = None, text_column: str = "text",
                       beneficial_column: str = "profession", harmful_column: str = "gender") -> DatasetPublic:
        """``POST /v1/datasets``: one .jsonl/.json/.parquet file (its label columns named by the arguments)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such file (upload a .jsonl, .json or .parquet file)")
        params = {"text_column": text_column, "beneficial_column": beneficial_column,
                  "harmful_column": harmful_column, "name": name or path.stem}
        with path.open("rb") as fh:
            return DatasetPublic.model_validate(self._json("POST", "/v1/datasets", params=params,
                                                           files={"file": (path.name, fh, "application/octet-stream")}))

    def create_synthetic_dataset(self, body: SyntheticDatasetCreate | None = None) -> DatasetPublic:
        """``POST /v1/datasets/synthetic``."""
        payload = (body or SyntheticDatasetCreate()).model_dump(mode="json")
        return DatasetPublic.model_validate(self._json("POST", "/v1/datasets/synthetic", json=payload))

    def list_datasets(self, *, limit: int = 50, offset: int = 0) -> DatasetsPublic:
        """``GET /v1/datasets``: the key's datasets, newest first."""
        return DatasetsPublic.model_validate(self._json("GET", "/v1/datasets", params={"limit": limit, "offset": offset}))

    def get_dataset(self, dataset_id: str) -> DatasetPublic:
        """``GET /v1/datasets/{id}``."""
        return DatasetPublic.model_validate(self._json("GET", f"/v1/datasets/{dataset_id}"))

    # checkpoints
    def upload_checkpoint(self, directory: str | Path, *, name: str | None = None) -> CheckpointPublic:
        """``POST /v1/checkpoints``: every regular file directly in ``directory`` (config.json, model.safetensors,
        the tokenizer files, provenance.json; sub-directories such as a censor run's ``mlac_resume`` are left
        out). The answer's ``id`` is the sha256 of the files' manifest (:mod:`mlac.checkpoint_id`)."""
        directory = Path(directory)
        if not directory.is_dir():
            what = "a file" if directory.exists() else "not found"
            raise ConfigError(f"{directory}: {what}; upload a checkpoint directory (config.json + "
                              "model.safetensors + tokenizer files)")
        paths = [p for p in sorted(directory.iterdir()) if p.is_file() and not p.is_symlink()]
        if not paths:
            raise ConfigError(f"{directory}: no files to upload")
        with ExitStack() as stack:
            files: list[tuple[str, tuple[str, IO[bytes], str]]] = [
                ("files", (p.name, stack.enter_context(p.open("rb")), "application/octet-stream")) for p in paths]
            params = {"name": name or directory.name}
            return CheckpointPublic.model_validate(self._json("POST", "/v1/checkpoints", params=params, files=files))

    def list_checkpoints(self, *, limit: int = 50, offset: int = 0) -> CheckpointsPublic:
        """``GET /v1/checkpoints``: the key's checkpoints, newest first."""
        return CheckpointsPublic.model_validate(self._json("GET", "/v1/checkpoints",
                                                           params={"limit": limit, "offset": offset}))

    def get_checkpoint(self, checkpoint_id: str) -> CheckpointPublic:
        """``GET /v1/checkpoints/{id}``."""
        return CheckpointPublic.model_validate(self._json("GET", f"/v1/checkpoints/{checkpoint_id}"))

    # jobs
    def submit(self, job: JobCreate | Mapping[str, Any], *, idempotency_key: str | None = None,
               attempts: int = SUBMIT_ATTEMPTS, backoff_s: float = 2.0) -> JobPublic:
        """``POST /v1/jobs``. ``job`` is validated locally first (a JobCreate). Transport failures are retried
        ``attempts`` times in all with the same ``Idempotency-Key`` (default: a fresh one per call), so that a
        request that reached the server but whose answer was lost is answered with the job it made."""
        body = job if isinstance(job, JobCreate) else JobCreate.model_validate(dict(job))
        payload = body.model_dump(mode="json", exclude_unset=True)
        headers = {"Idempotency-Key": idempotency_key or f"client-{uuid.uuid4().hex}"}
        for attempt in range(max(1, attempts)):
            try:
                r = self._http.post("/v1/jobs", json=payload, headers=headers)
            except httpx.TransportError as exc:
                if attempt >= attempts - 1:
                    raise self._unreachable(exc) from None
                time.sleep(backoff_s * 2**attempt)
                continue
            if r.status_code >= 400:
                raise _error_of(r)
            return JobPublic.model_validate(r.json())
        raise AssertionError("unreachable")  # pragma: no cover

    def get_job(self, job_id: str) -> JobPublic:
        """``GET /v1/jobs/{id}``: state and live progress (stage, trials, ``eta_s``)."""
        return JobPublic.model_validate(self._json("GET", f"/v1/jobs/{job_id}"))

    def list_jobs(self, *, state: str | None = None, limit: int = 50, offset: int = 0) -> JobsPublic:
        """``GET /v1/jobs``: the key's jobs, newest first (``state`` filters)."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if state:
            params["state"] = state
        return JobsPublic.model_validate(self._json("GET", "/v1/jobs", params=params))

    def cancel(self, job_id: str) -> JobPublic:
        """``POST /v1/jobs/{id}/cancel``."""
        return JobPublic.model_validate(self._json("POST", f"/v1/jobs/{job_id}/cancel"))

    def wait(self, job_id: str, *, timeout_s: float | None = None, poll_s: float = 1.0) -> JobPublic:
        """Poll the job until it ends; return it. ``timeout_s`` passed first: :class:`TimeoutError`."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.get_job(job_id)
            if job.state in TERMINAL_STATES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {job.state} after {timeout_s:g} s")
            time.sleep(poll_s)

    def result(self, job_id: str) -> dict[str, Any]:
        """``GET /v1/jobs/{id}/result``: the job's result document (an audit's versioned ``result.json``,
        :meth:`mlac.audit.result_schema.AuditResult.from_dict` reads it back; a censor job's summary)."""
        data = self._json("GET", f"/v1/jobs/{job_id}/result")
        if not isinstance(data, dict):
            raise ServiceError(f"job {job_id}: the result is not a JSON object", status=200)
        return data

    def report(self, job_id: str) -> bytes:
        """``GET /v1/jobs/{id}/report``: the self-contained HTML card."""
        return self._send("GET", f"/v1/jobs/{job_id}/report").content

    def figure(self, job_id: str, name: str) -> bytes | None:
        """``GET /v1/jobs/{id}/figures/{name}.png`` (``curves``, ``attack_budget``); None when the job has none."""
        try:
            return self._send("GET", f"/v1/jobs/{job_id}/figures/{name}.png").content
        except ServiceError as exc:
            if exc.status == 404:
                return None
            raise

    def export_csv(self, job_id: str, table: str = "curves") -> str:
        """``GET /v1/jobs/{id}/export.csv``: one table (``curves``, ``seed_points``, ``trials``; ``samples``,
        ``samples_summary`` of an audit run with ``log_samples``) of a finished audit."""
        return self._send("GET", f"/v1/jobs/{job_id}/export.csv", params={"table": table}).text

    # comparisons, schedules, the model back
    def compare(self, job_a: str, job_b: str, *, model_a: str | None = None, model_b: str | None = None,
                alpha: float = 0.05) -> ComparisonPublic:
        """``POST /v1/comparisons``: audit B against audit A, paired by seed (``ServiceError`` 422 ``not_comparable``
        when they were measured differently)."""
        body = ComparisonCreate(job_a=job_a, job_b=job_b, model_a=model_a, model_b=model_b, alpha=alpha)
        return ComparisonPublic.model_validate(self._json("POST", "/v1/comparisons",
                                                          json=body.model_dump(mode="json", exclude_none=True)))

    def schedule_runs(self, schedule_id: str) -> ScheduleRunsPublic:
        """``GET /v1/schedules/{id}/runs``: every run, each compared with the previous successful one."""
        return ScheduleRunsPublic.model_validate(self._json("GET", f"/v1/schedules/{schedule_id}/runs"))

    def download_checkpoint(self, checkpoint_id: str, directory: str | Path) -> Path:
        """Download every file of a checkpoint (a defend job's output, say) into ``directory``; its path."""
        listing = CheckpointFilesPublic.model_validate(self._json("GET", f"/v1/checkpoints/{checkpoint_id}/files"))
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for f in listing.files:
            (out / f.name).write_bytes(self._send("GET", f.href).content)
        return out

    def events(self, job_id: str) -> Iterator[JobEvent]:
        """``GET /v1/jobs/{id}/events``: the job's Server-Sent Events until its ``end`` event."""
        try:
            with self._http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=httpx.Timeout(60.0, read=None)) as r:
                if r.status_code >= 400:
                    r.read()
                    raise _error_of(r)
                kind, event_id = "message", None
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("id: "):
                        event_id = int(line[4:]) if line[4:].isdigit() else None
                    elif line.startswith("data: "):
                        yield JobEvent(kind=kind, data=json.loads(line[6:]), id=event_id)
                        if kind == "end":
                            return
                        kind, event_id = "message", None
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
