"""SQLAlchemy 2 implementation of :class:`~service.store.base.JobStore` for SQLite and PostgreSQL.

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed transition survives a power cut) and
write transactions start with ``BEGIN IMMEDIATE`` so that concurrent writers queue on the database lock
(with a busy timeout) instead of failing on a read-to-write upgrade. PostgreSQL uses psycopg 3.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Engine,
    Table,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from service.errors import (
    ConflictError,
    IdempotencyConflictError,
    InvalidTransitionError,
    NotFoundError,
    ServiceError,
    StoreUnavailableError,
)
from service.quotas import active_jobs_refusal
from service.store import migrate
from service.store.base import JobStore
from service.store.records import (
    CANCELLED,
    QUEUED,
    RUNNING,
    TERMINAL,
    TRANSITIONS,
    WEBHOOK_DELIVERED,
    WEBHOOK_PENDING,
    WEBHOOK_STATES,
    ApiKey,
    Checkpoint,
    DatasetRec,
    Job,
    JobEvent,
    KeyQuota,
    NewJob,
    NewWebhook,
    Schedule,
    ScheduleRun,
    TrialRecord,
    Usage,
    WebhookDelivery,
    WebhookOutcome,
    WebhookSecret,
)
from service.store.tables import (
    api_keys,
    checkpoints,
    datasets,
    job_events,
    jobs,
    schedule_runs,
    schedules,
    trial_results,
    webhook_outbox,
    webhook_secrets,
)

T = TypeVar("T")


def _owner_only(database: Path) -> None:
    """The SQLite file holds key hashes, webhook secrets and every tenant's jobs: 0600 (its -wal/-shm files
    take the database file's mode)."""
    for path in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
        if path.exists():
            os.chmod(path, 0o600)


ACTIVE = (QUEUED, RUNNING)


def new_id(prefix: str) -> str:
    """A random resource id such as ``job_3f2a...`` (not guessable, URL-safe)."""
    return f"{prefix}_{secrets.token_hex(10)}"


def normalize_url(url: str) -> str:
    """``postgresql://`` -> ``postgresql+psycopg://`` (psycopg 3 is the driver this project ships)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def _translated(method: Callable[..., T]) -> Callable[..., T]:
    """Translate driver errors into :class:`StoreUnavailableError` (our own errors pass through)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except ServiceError:
            raise
        except (DBAPIError, SQLAlchemyError) as exc:
            raise StoreUnavailableError(f"job store error ({type(exc).__name__}): {str(exc).splitlines()[0][:300]}") from exc

    return wrapper


def _sqlite_engine(url: str) -> Engine:
    # pool_size covers the thread pool's 40 workers, so connections are reused instead of being opened
    # (with their PRAGMAs) and closed on every request under load
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=40, max_overflow=24)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")

    return engine


class _SqliteReader:
    """The hot read path on SQLite: one statement on a per-thread ``sqlite3`` connection in autocommit mode.

    ``GET /v1/jobs/{id}`` is the service's busiest route; through SQLAlchemy a primary-key read costs a
    pool checkout, ``BEGIN``, result processing and ``COMMIT`` (~150-350 us), directly about 15 us. A lone
    ``SELECT`` outside ``BEGIN`` is its own read transaction, so it sees every committed write; in WAL mode
    it never waits for a writer, which is what lets the API call it on the event loop. Rows are converted
    like SQLAlchemy does for this schema (JSON columns decoded, booleans as bool).
    """

    def __init__(self, path: str, table: Table) -> None:
        self.path = path
        self.columns = [c.name for c in table.columns]
        self.convert: dict[str, Callable[[Any], Any]] = {}
        for c in table.columns:
            if isinstance(c.type, JSON):
                self.convert[c.name] = json.loads
            elif isinstance(c.type, Boolean):
                self.convert[c.name] = bool
        self.sql_by_id = f"SELECT {', '.join(self.columns)} FROM {table.name} WHERE id = ?"
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()

    def by_id(self, row_id: str) -> dict[str, Any] | None:
        row = self._conn().execute(self.sql_by_id, (row_id,)).fetchone()
        if row is None:
            return None
        out = dict(zip(self.columns, row, strict=True))
        for name, fn in self.convert.items():
            if out[name] is not None:
                out[name] = fn(out[name])
        return out


class SqlStore(JobStore):
    """The job store on a SQLAlchemy engine; see :mod:`service.store.base` for the contract."""

    def __init__(self, url: str, *, run_migrations: bool = True) -> None:
        self.url = normalize_url(url)
        backend = make_url(self.url).get_backend_name()
        if backend == "sqlite":
            self.engine = _sqlite_engine(self.url)
        elif backend == "postgresql":
            self.engine = create_engine(self.url, pool_size=10, max_overflow=10, pool_pre_ping=True)
        else:
            raise StoreUnavailableError(f"unsupported DATABASE_URL backend {backend!r}: use sqlite:/// or postgresql://")
        self.backend = backend
        database = make_url(self.url).database
        self._fast_jobs = (_SqliteReader(database, jobs) if backend == "sqlite" and database and database != ":memory:"
                           else None)
        if run_migrations:
            try:
                migrate.upgrade(self.engine)
            except (DBAPIError, SQLAlchemyError) as exc:
                raise StoreUnavailableError(f"cannot migrate the job store at {make_url(self.url)!r}: {exc}") from exc
        if backend == "sqlite" and database and database != ":memory:":
            _owner_only(Path(database))

    # -- plumbing
    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect().execution_options(immediate=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def close(self) -> None:
        if self._fast_jobs is not None:
            self._fast_jobs.close()
        self.engine.dispose()

    # -- API keys
    @_translated
    def add_api_key(self, name: str, key_hash: str, is_admin: bool, key_id: str | None = None,
                    quota: KeyQuota | None = None) -> ApiKey:
        with self._write() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash)).mappings().first()
            if row is not None:
                return ApiKey(**row)
            values = {"id": key_id or new_id("key"), "name": name, "key_hash": key_hash, "is_admin": is_admin,
                      "created_at": time.time(), "revoked": False, **(quota or KeyQuota()).__dict__}
            conn.execute(insert(api_keys).values(**values))
            return ApiKey(**values)

    @_translated
    def get_api_key(self, key_id: str) -> ApiKey:
        with self._read() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"API key {key_id} not found")
        return ApiKey(**row)

    @_translated
    def set_api_key_quota(self, key_id: str, quota: KeyQuota) -> ApiKey:
        with self._write() as conn:
            if conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(**quota.__dict__)).rowcount == 0:
                raise NotFoundError(f"API key {key_id} not found")
        return self.get_api_key(key_id)

    @_translated
    def usage(self, owner: str) -> Usage:
        with self._read() as conn:
            active = conn.execute(select(func.count()).select_from(jobs).where(jobs.c.owner == owner,
                                                                             jobs.c.state.in_(ACTIVE))).scalar_one()
            ckpt = conn.execute(select(func.coalesce(func.sum(checkpoints.c.size_bytes), 0))
                                .where(checkpoints.c.owner == owner)).scalar_one()
            data = conn.execute(select(func.coalesce(func.sum(datasets.c.size_bytes), 0))
                                .where(datasets.c.owner == owner)).scalar_one()
        return Usage(active_jobs=int(active), stored_bytes=int(ckpt) + int(data))

    @_translated
    def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        with self._read() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash, api_keys.c.revoked.is_(False))).mappings().first()
        return ApiKey(**row) if row else None

    @_translated
    def list_api_keys(self) -> list[ApiKey]:
        with self._read() as conn:
            return [ApiKey(**r) for r in conn.execute(select(api_keys).order_by(api_keys.c.created_at)).mappings()]

    @_translated
    def revoke_api_key(self, key_id: str) -> None:
        with self._write() as conn:
            key = conn.execute(select(api_keys.c.is_admin, api_keys.c.revoked).where(api_keys.c.id == key_id)).first()
            if key is None:
                raise NotFoundError(f"API key {key_id} not found")
            if key.is_admin and not key.revoked:
                # FOR UPDATE: two admins revoking each other at once on PostgreSQL wait for each other and the
                # second sees the first's revocation (SQLite's BEGIN IMMEDIATE already serialises writers)
                active = conn.execute(select(api_keys.c.id).where(api_keys.c.is_admin.is_(True), api_keys.c.revoked.is_(False))
                                      .with_for_update()).all()
                if len(active) <= 1:
                    raise ConflictError(f"API key {key_id} is the last active admin key: revoking it would lock every admin "
                                        "out, also after a restart; create another admin key first "
                                        "(POST /v1/keys with is_admin true), then revoke this one with it")
            conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked=True))

    @_translated
    def reinstate_api_key(self, key_id: str) -> None:
        with self._write() as conn:
            if conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked=False)).rowcount == 0:
                raise NotFoundError(f"API key {key_id} not found")

    # -- checkpoints
    @staticmethod
    def _ckpt(row: Any) -> Checkpoint:
        values = dict(row)
        values.pop("pk", None)
        return Checkpoint(**values)

    @_translated
    def add_checkpoint(self, ckpt: Checkpoint) -> tuple[Checkpoint, bool]:
        try:
            with self._write() as conn:
                conn.execute(insert(checkpoints).values(**ckpt.__dict__))
            return ckpt, True
        except IntegrityError:
            return self.get_checkpoint(ckpt.sha256, ckpt.owner), False

    @_translated
    def get_checkpoint(self, sha256: str, owner: str | None) -> Checkpoint:
        q = select(checkpoints).where(checkpoints.c.sha256 == sha256)
        if owner is not None:
            q = q.where(checkpoints.c.owner == owner)
        with self._read() as conn:
            row = conn.execute(q.order_by(checkpoints.c.created_at)).mappings().first()
        if row is None:
            raise NotFoundError(f"checkpoint {sha256} not found")
        return self._ckpt(row)

    @_translated
    def list_checkpoints(self, owner: str | None, limit: int, offset: int) -> tuple[list[Checkpoint], int]:
        q = select(checkpoints)
        c = select(func.count()).select_from(checkpoints)
        if owner is not None:
            q, c = q.where(checkpoints.c.owner == owner), c.where(checkpoints.c.owner == owner)
        with self._read() as conn:
            rows = conn.execute(q.order_by(checkpoints.c.created_at.desc(), checkpoints.c.pk.desc()).limit(limit).offset(offset)).mappings()
            items = [self._ckpt(r) for r in rows]
            total = int(conn.execute(c).scalar_one())
        return items, total

    def _schedules_using(self, conn: Connection, key: str, value: str, owner: str | None = None) -> bool:
        q = select(schedules.c.template)
        if owner is not None:  # identical checkpoints share an id across keys: only the owner's schedules count
            q = q.where(schedules.c.owner == owner)
        return any(isinstance(template, dict) and template.get(key) == value for (template,) in conn.execute(q))

    @_translated
    def delete_checkpoint(self, sha256: str, owner: str | None) -> int:
        with self._write() as conn:
            q = select(checkpoints.c.pk).where(checkpoints.c.sha256 == sha256)
            if owner is not None:
                q = q.where(checkpoints.c.owner == owner)
            pks = list(conn.execute(q).scalars())
            if not pks:
                raise NotFoundError(f"checkpoint {sha256} not found")
            busy = select(func.count()).select_from(jobs).where(jobs.c.checkpoint_sha == sha256, jobs.c.state.in_(ACTIVE))
            if owner is not None:
                busy = busy.where(jobs.c.owner == owner)
            if conn.execute(busy).scalar_one() or self._schedules_using(conn, "checkpoint_id", sha256, owner):
                raise ConflictError(f"checkpoint {sha256} is used by a queued or running job or a schedule; "
                                    "cancel or wait for the job (or delete the schedule) first")
            conn.execute(delete(checkpoints).where(checkpoints.c.pk.in_(pks)))
            return int(conn.execute(select(func.count()).select_from(checkpoints).where(checkpoints.c.sha256 == sha256)).scalar_one())

    # -- datasets
    @_translated
    def add_dataset(self, ds: DatasetRec) -> DatasetRec:
        with self._write() as conn:
            conn.execute(insert(datasets).values(**ds.__dict__))
        return ds

    @_translated
    def get_dataset(self, dataset_id: str, owner: str | None) -> DatasetRec:
        q = select(datasets).where(datasets.c.id == dataset_id)
        if owner is not None:
            q = q.where(datasets.c.owner == owner)
        with self._read() as conn:
            row = conn.execute(q).mappings().first()
        if row is None:
            raise NotFoundError(f"dataset {dataset_id} not found")
        return DatasetRec(**row)

    @_translated
    def list_datasets(self, owner: str | None, limit: int, offset: int) -> tuple[list[DatasetRec], int]:
        q = select(datasets)
        c = select(func.count()).select_from(datasets)
        if owner is not None:
            q, c = q.where(datasets.c.owner == owner), c.where(datasets.c.owner == owner)
        with self._read() as conn:
            items = [DatasetRec(**r) for r in conn.execute(q.order_by(datasets.c.created_at.desc()).limit(limit).offset(offset)).mappings()]
            total = int(conn.execute(c).scalar_one())
        return items, total

    @_translated
    def delete_dataset(self, dataset_id: str, owner: str | None) -> DatasetRec:
        with self._write() as conn:
            q = select(datasets).where(datasets.c.id == dataset_id)
            if owner is not None:
                q = q.where(datasets.c.owner == owner)
            row = conn.execute(q).mappings().first()
            if row is None:
                raise NotFoundError(f"dataset {dataset_id} not found")
            busy = select(func.count()).select_from(jobs).where(jobs.c.dataset_id == dataset_id, jobs.c.state.in_(ACTIVE))
            if conn.execute(busy).scalar_one() or self._schedules_using(conn, "dataset_id", dataset_id):
                raise ConflictError(f"dataset {dataset_id} is used by a queued or running job or a schedule")
            conn.execute(delete(datasets).where(datasets.c.id == dataset_id))
            return DatasetRec(**row)

    # -- jobs
    @staticmethod
    def _job_values(job: NewJob, job_id: str, now: float) -> dict[str, Any]:
        return {**job.__dict__, "id": job_id, "state": QUEUED, "created_at": now, "attempts": 0,
                "cancel_requested": False, "progress": {}}

    @staticmethod
    def _same_request(existing: Job, job: NewJob) -> Job:
        """The job an idempotency key already names, when it was made from the same request."""
        if existing.spec_hash != job.spec_hash:
            raise IdempotencyConflictError(
                f"Idempotency-Key {job.idempotency_key!r} was used for a different request (job {existing.id}); "
                "use a new key for a new request") from None
        return existing

    def _admit(self, conn: Connection, job: NewJob, max_active: int) -> Job | None:
        """Inside the inserting transaction: the job an idempotency key already names (no quota check: a retry
        is not a new job), else refuse when the owner has ``max_active`` active jobs. Serialised per owner:
        SQLite's BEGIN IMMEDIATE orders every writer, PostgreSQL takes a transaction-scoped advisory lock on
        the owner, so two concurrent submissions cannot both take the last slot."""
        if self.backend == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(job.owner))))
        if job.idempotency_key is not None:
            row = conn.execute(select(jobs).where(jobs.c.owner == job.owner,
                                                  jobs.c.idempotency_key == job.idempotency_key)).mappings().first()
            if row is not None:
                return Job(**row)
        active = int(conn.execute(select(func.count()).select_from(jobs).where(
            jobs.c.owner == job.owner, jobs.c.state.in_(ACTIVE))).scalar_one())
        if active >= max_active:
            raise active_jobs_refusal(active, max_active)
        return None

    @_translated
    def create_job(self, job: NewJob, max_active: int | None = None) -> tuple[Job, bool]:
        job_id = new_id("job")
        try:
            with self._write() as conn:
                known = self._admit(conn, job, max_active) if max_active is not None else None
                if known is None:
                    conn.execute(insert(jobs).values(**self._job_values(job, job_id, time.time())))
        except IntegrityError:
            if job.idempotency_key is None:
                raise
            with self._read() as conn:
                row = conn.execute(select(jobs).where(jobs.c.owner == job.owner,
                                                      jobs.c.idempotency_key == job.idempotency_key)).mappings().first()
            if row is None:
                raise
            return self._same_request(Job(**row), job), False
        if known is not None:
            return self._same_request(known, job), False
        return self.get_job(job_id, None), True

    @property
    def fast_reads(self) -> bool:
        """Whether :meth:`get_job` is a local, non-blocking read (SQLite in WAL mode) that an event loop may call."""
        return self._fast_jobs is not None

    @_translated
    def get_job(self, job_id: str, owner: str | None) -> Job:
        row: Any
        if self._fast_jobs is not None:
            try:
                row = self._fast_jobs.by_id(job_id)
            except sqlite3.Error as exc:
                raise StoreUnavailableError(f"job store error ({type(exc).__name__}): {exc}") from exc
        else:
            with self._read() as conn:
                row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        if row is None or (owner is not None and row["owner"] != owner):
            raise NotFoundError(f"job {job_id} not found")
        return Job(**row)

    @_translated
    def list_jobs(
        self, owner: str | None, *, state: str | None = None, kind: str | None = None, schedule_id: str | None = None,
        limit: int = 50, offset: int = 0,
    ) -> tuple[list[Job], int]:
        conds = []
        if owner is not None:
            conds.append(jobs.c.owner == owner)
        if state is not None:
            conds.append(jobs.c.state == state)
        if kind is not None:
            conds.append(jobs.c.kind == kind)
        if schedule_id is not None:
            conds.append(jobs.c.schedule_id == schedule_id)
        with self._read() as conn:
            rows = conn.execute(select(jobs).where(*conds).order_by(jobs.c.created_at.desc(), jobs.c.id)
                                .limit(limit).offset(offset)).mappings()
            items = [Job(**r) for r in rows]
            total = int(conn.execute(select(func.count()).select_from(jobs).where(*conds)).scalar_one())
        return items, total

    @_translated
    def queued_jobs(self, limit: int) -> list[Job]:
        with self._read() as conn:
            rows = conn.execute(select(jobs).where(jobs.c.state == QUEUED).order_by(jobs.c.created_at).limit(limit)).mappings()
            return [Job(**r) for r in rows]

    @_translated
    def fair_queued_jobs(self, limit: int) -> list[Job]:
        # One query (window function: SQLite >= 3.25, PostgreSQL): per owner, its queued jobs ranked oldest
        # first, its RUNNING count and when it last started a job (any process's jobs count: fair across replicas).
        rank = func.row_number().over(partition_by=jobs.c.owner, order_by=(jobs.c.created_at, jobs.c.id)) - 1
        queued = select(*jobs.columns, rank.label("rank")).where(jobs.c.state == QUEUED).subquery()
        running = (select(jobs.c.owner, func.count().label("n")).where(jobs.c.state == RUNNING)
                   .group_by(jobs.c.owner).subquery())
        started = jobs.alias("started")
        last_start = (select(func.coalesce(func.max(started.c.started_at), -1.0))
                      .where(started.c.owner == queued.c.owner).scalar_subquery())
        level = queued.c.rank + func.coalesce(running.c.n, 0)
        q = (select(*(queued.c[c.name] for c in jobs.columns))
             .select_from(queued.outerjoin(running, running.c.owner == queued.c.owner))
             .where(queued.c.rank < limit)
             .order_by(level, queued.c.rank, last_start, queued.c.created_at, queued.c.id)
             .limit(limit))
        with self._read() as conn:
            return [Job(**r) for r in conn.execute(q).mappings()]

    def _cas(self, conn: Connection, job_id: str, to: str, values: dict[str, Any]) -> None:
        allowed_from = [s for s, targets in TRANSITIONS.items() if to in targets]
        res = conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.state.in_(allowed_from)).values(state=to, **values))
        if res.rowcount == 0:
            row = conn.execute(select(jobs.c.state).where(jobs.c.id == job_id)).first()
            if row is None:
                raise NotFoundError(f"job {job_id} not found")
            raise InvalidTransitionError(f"job {job_id} is {row[0]}: cannot move to {to}")

    @_translated
    def start_job(self, job_id: str, lease_owner: str, lease_until: float) -> Job:
        with self._write() as conn:
            res = conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.state == QUEUED).values(
                state=RUNNING, lease_owner=lease_owner, lease_expires_at=lease_until,
                started_at=func.coalesce(jobs.c.started_at, time.time())))
            if res.rowcount == 0:
                row = conn.execute(select(jobs.c.state).where(jobs.c.id == job_id)).first()
                if row is None:
                    raise NotFoundError(f"job {job_id} not found")
                raise InvalidTransitionError(f"job {job_id} is {row[0]}: cannot move to RUNNING")
        return self.get_job(job_id, None)

    @_translated
    def renew_leases(self, lease_owner: str, lease_until: float) -> int:
        with self._write() as conn:
            return int(conn.execute(update(jobs).where(jobs.c.state == RUNNING, jobs.c.lease_owner == lease_owner)
                                    .values(lease_expires_at=lease_until)).rowcount)

    @_translated
    def requeue_expired(self, now: float) -> list[str]:
        with self._write() as conn:
            ids = list(conn.execute(select(jobs.c.id).where(jobs.c.state == RUNNING, jobs.c.lease_expires_at < now)).scalars())
            if ids:
                conn.execute(update(jobs).where(jobs.c.id.in_(ids), jobs.c.state == RUNNING).values(
                    state=QUEUED, lease_owner=None, lease_expires_at=None, attempts=jobs.c.attempts + 1))
            return ids

    @_translated
    def finish_job(self, job_id: str, state: str, *, result_path: str | None = None, error: str | None = None,
                   verdict: str | None = None, error_detail: str | None = None) -> Job:
        if state not in TERMINAL:
            raise InvalidTransitionError(f"finish_job needs a terminal state, got {state}")
        with self._write() as conn:
            self._cas(conn, job_id, state, {"finished_at": time.time(), "result_path": result_path, "error": error,
                                            "error_detail": error_detail, "verdict": verdict, "lease_owner": None,
                                            "lease_expires_at": None})
        return self.get_job(job_id, None)

    @_translated
    def request_cancel(self, job_id: str, owner: str | None) -> Job:
        with self._write() as conn:
            q = select(jobs.c.state).where(jobs.c.id == job_id)
            if owner is not None:
                q = q.where(jobs.c.owner == owner)
            row = conn.execute(q).first()
            if row is None:
                raise NotFoundError(f"job {job_id} not found")
            if row[0] in TERMINAL:
                raise ConflictError(f"job {job_id} already ended ({row[0]})")
            if row[0] == QUEUED:
                self._cas(conn, job_id, CANCELLED, {"finished_at": time.time(), "cancel_requested": True,
                                                     "error": "cancelled before it started"})
            else:
                conn.execute(update(jobs).where(jobs.c.id == job_id).values(cancel_requested=True))
        return self.get_job(job_id, None)

    @_translated
    def update_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        with self._write() as conn:
            row = conn.execute(select(jobs.c.progress, jobs.c.state).where(jobs.c.id == job_id)).first()
            if row is None or row[1] in TERMINAL:
                return
            merged = {**(row[0] or {}), **progress}
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(progress=merged))

    @_translated
    def append_event(self, job_id: str, payload: dict[str, Any], t: float) -> int:
        with self._write() as conn:
            seq = int(conn.execute(select(func.coalesce(func.max(job_events.c.seq), 0)).where(job_events.c.job_id == job_id)).scalar_one()) + 1
            conn.execute(insert(job_events).values(job_id=job_id, seq=seq, t=t, payload=payload))
            return seq

    @_translated
    def events_since(self, job_id: str, after_seq: int, limit: int = 500) -> list[JobEvent]:
        with self._read() as conn:
            rows = conn.execute(select(job_events).where(job_events.c.job_id == job_id, job_events.c.seq > after_seq)
                                .order_by(job_events.c.seq).limit(limit)).mappings()
            return [JobEvent(**r) for r in rows]

    @_translated
    def record_trial(self, result: TrialRecord) -> bool:
        values = {**result.__dict__, "recorded_at": result.recorded_at or time.time()}
        try:
            with self._write() as conn:
                conn.execute(insert(trial_results).values(**values))
        except IntegrityError:
            return False
        return True

    @_translated
    def trial_results(self, job_id: str) -> list[TrialRecord]:
        with self._read() as conn:
            rows = conn.execute(select(trial_results).where(trial_results.c.job_id == job_id)
                                .order_by(trial_results.c.study, trial_results.c.trial)).mappings()
            return [TrialRecord(**r) for r in rows]

    # -- schedules
    @_translated
    def add_schedule(self, schedule: Schedule) -> Schedule:
        with self._write() as conn:
            conn.execute(insert(schedules).values(**schedule.__dict__))
        return schedule

    @_translated
    def get_schedule(self, schedule_id: str, owner: str | None) -> Schedule:
        q = select(schedules).where(schedules.c.id == schedule_id)
        if owner is not None:
            q = q.where(schedules.c.owner == owner)
        with self._read() as conn:
            row = conn.execute(q).mappings().first()
        if row is None:
            raise NotFoundError(f"schedule {schedule_id} not found")
        return Schedule(**row)

    @_translated
    def list_schedules(self, owner: str | None, limit: int = 50, offset: int = 0) -> tuple[list[Schedule], int]:
        conds = [schedules.c.owner == owner] if owner is not None else []
        with self._read() as conn:
            items = [Schedule(**r) for r in conn.execute(select(schedules).where(*conds).order_by(schedules.c.created_at.desc())
                                                        .limit(limit).offset(offset)).mappings()]
            total = int(conn.execute(select(func.count()).select_from(schedules).where(*conds)).scalar_one())
        return items, total

    @_translated
    def active_schedules(self) -> list[Schedule]:
        with self._read() as conn:
            rows = conn.execute(select(schedules).where(schedules.c.paused.is_(False), schedules.c.broken.is_(None))
                                .order_by(schedules.c.created_at)).mappings()
            return [Schedule(**r) for r in rows]

    @_translated
    def mark_schedule_broken(self, schedule_id: str, reason: str | None) -> None:
        with self._write() as conn:
            values = {"broken": None if reason is None else reason[:2000]}
            if conn.execute(update(schedules).where(schedules.c.id == schedule_id).values(**values)).rowcount == 0:
                raise NotFoundError(f"schedule {schedule_id} not found")

    @_translated
    def update_schedule(self, schedule_id: str, owner: str | None, *, template: dict[str, Any] | None = None,
                        regression: dict[str, Any] | None = None) -> Schedule:
        conds = [schedules.c.id == schedule_id] + ([schedules.c.owner == owner] if owner is not None else [])
        values = {k: v for k, v in (("template", template), ("regression", regression)) if v is not None}
        with self._write() as conn:
            if conn.execute(select(schedules.c.id).where(*conds)).first() is None:
                raise NotFoundError(f"schedule {schedule_id} not found")
            if values:
                conn.execute(update(schedules).where(*conds).values(**values))
        return self.get_schedule(schedule_id, owner)

    @_translated
    def set_schedule_paused(self, schedule_id: str, owner: str | None, paused: bool) -> Schedule:
        conds = [schedules.c.id == schedule_id] + ([schedules.c.owner == owner] if owner is not None else [])
        with self._write() as conn:
            if conn.execute(update(schedules).where(*conds).values(paused=paused)).rowcount == 0:
                raise NotFoundError(f"schedule {schedule_id} not found")
        return self.get_schedule(schedule_id, owner)

    @_translated
    def delete_schedule(self, schedule_id: str, owner: str | None) -> None:
        conds = [schedules.c.id == schedule_id] + ([schedules.c.owner == owner] if owner is not None else [])
        with self._write() as conn:
            if conn.execute(select(schedules.c.id).where(*conds)).first() is None:
                raise NotFoundError(f"schedule {schedule_id} not found")
            conn.execute(delete(schedule_runs).where(schedule_runs.c.schedule_id == schedule_id))
            conn.execute(delete(schedules).where(schedules.c.id == schedule_id))

    @_translated
    def fire_slot(self, schedule_id: str, slot: str, job: NewJob, fired_by: str, now: float,
                  max_active: int | None = None) -> Job | None:
        job_id = new_id("job")
        try:
            with self._write() as conn:
                if max_active is not None:
                    self._admit(conn, job, max_active)  # raises before anything is written
                conn.execute(insert(schedule_runs).values(schedule_id=schedule_id, slot=slot, job_id=job_id,
                                                          fired_at=now, fired_by=fired_by))
                conn.execute(insert(jobs).values(**self._job_values(job, job_id, now)))
                conn.execute(update(schedules).where(schedules.c.id == schedule_id,
                                                     func.coalesce(schedules.c.last_slot, "") < slot).values(last_slot=slot))
        except IntegrityError:
            return None
        return self.get_job(job_id, None)

    @_translated
    def schedule_runs(self, schedule_id: str, limit: int = 20) -> list[ScheduleRun]:
        with self._read() as conn:
            rows = conn.execute(select(schedule_runs).where(schedule_runs.c.schedule_id == schedule_id)
                                .order_by(schedule_runs.c.slot.desc()).limit(limit)).mappings()
            return [ScheduleRun(**r) for r in rows]

    # -- webhooks
    @_translated
    def webhook_secret(self, owner: str, candidate: str) -> WebhookSecret:
        q = select(webhook_secrets).where(webhook_secrets.c.owner == owner)
        with self._read() as conn:
            row = conn.execute(q).mappings().first()
        if row is not None:
            return WebhookSecret(**row)
        made = WebhookSecret(owner=owner, secret=candidate, created_at=time.time())
        try:
            with self._write() as conn:
                conn.execute(insert(webhook_secrets).values(**made.__dict__))
        except IntegrityError:  # a concurrent first call stored its candidate first: use that one
            with self._read() as conn:
                return WebhookSecret(**conn.execute(q).mappings().one())
        return made

    @_translated
    def rotate_webhook_secret(self, owner: str, secret: str) -> WebhookSecret:
        made = WebhookSecret(owner=owner, secret=secret, created_at=time.time())
        with self._write() as conn:
            res = conn.execute(update(webhook_secrets).where(webhook_secrets.c.owner == owner)
                               .values(secret=secret, created_at=made.created_at))
            if res.rowcount == 0:
                conn.execute(insert(webhook_secrets).values(**made.__dict__))
        return made

    @_translated
    def enqueue_webhook(self, webhook: NewWebhook, now: float) -> tuple[WebhookDelivery, bool]:
        values = {**webhook.__dict__, "id": new_id("whd"), "state": WEBHOOK_PENDING, "attempts": 0, "next_attempt_at": now,
                  "last_status": None, "last_error": None, "claimed_by": None, "claim_expires_at": None,
                  "created_at": now, "updated_at": now, "delivered_at": None}
        try:
            with self._write() as conn:
                conn.execute(insert(webhook_outbox).values(**values))
        except IntegrityError:
            if webhook.job_id is None:
                raise
            with self._read() as conn:
                row = conn.execute(select(webhook_outbox).where(webhook_outbox.c.job_id == webhook.job_id,
                                                                webhook_outbox.c.event == webhook.event)).mappings().one()
            return WebhookDelivery(**row), False
        return WebhookDelivery(**values), True

    @_translated
    def claim_webhooks(self, claimer: str, now: float, claim_until: float, limit: int,
                       skip_destinations: frozenset[str] = frozenset()) -> list[WebhookDelivery]:
        o = webhook_outbox.c
        unclaimed = or_(o.claim_expires_at.is_(None), o.claim_expires_at < now)
        claimed: list[str] = []
        with self._write() as conn:
            busy = set(conn.execute(select(o.destination).where(o.state == WEBHOOK_PENDING, o.claim_expires_at >= now)
                                    .distinct()).scalars())
            skip = set(skip_destinations) | busy
            while len(claimed) < limit:
                q = select(o.id, o.destination).where(o.state == WEBHOOK_PENDING, o.next_attempt_at <= now, unclaimed)
                if skip:
                    q = q.where(o.destination.not_in(sorted(skip)))
                row = conn.execute(q.order_by(o.next_attempt_at, o.created_at, o.id).limit(1)).first()
                if row is None:
                    break
                skip.add(row.destination)
                res = conn.execute(update(webhook_outbox).where(o.id == row.id, o.state == WEBHOOK_PENDING, unclaimed)
                                   .values(claimed_by=claimer, claim_expires_at=claim_until, updated_at=now))
                if res.rowcount:  # 0: another process claimed it between the read and the write (PostgreSQL)
                    claimed.append(row.id)
            if not claimed:
                return []
            rows = conn.execute(select(webhook_outbox).where(o.id.in_(claimed)).order_by(o.next_attempt_at)).mappings()
            return [WebhookDelivery(**r) for r in rows]

    @_translated
    def record_webhook_attempt(self, delivery_id: str, claimer: str, outcome: WebhookOutcome, now: float) -> bool:
        if outcome.state not in WEBHOOK_STATES:
            raise InvalidTransitionError(f"unknown webhook delivery state {outcome.state!r}")
        o = webhook_outbox.c
        values: dict[str, Any] = {"state": outcome.state, "attempts": o.attempts + 1, "last_status": outcome.status,
                                  "last_error": None if outcome.error is None else outcome.error[:2000],
                                  "claimed_by": None, "claim_expires_at": None, "updated_at": now}
        if outcome.next_attempt_at is not None:
            values["next_attempt_at"] = outcome.next_attempt_at
        if outcome.state == WEBHOOK_DELIVERED:
            values["delivered_at"] = now
        with self._write() as conn:
            res = conn.execute(update(webhook_outbox).where(o.id == delivery_id, o.claimed_by == claimer,
                                                            o.state == WEBHOOK_PENDING).values(**values))
            return bool(res.rowcount)

    @_translated
    def release_webhook_claims(self, claimer: str, delivery_ids: list[str] | None = None) -> int:
        o = webhook_outbox.c
        q = update(webhook_outbox).where(o.claimed_by == claimer)
        if delivery_ids is not None:
            q = q.where(o.id.in_(delivery_ids))
        with self._write() as conn:
            return int(conn.execute(q.values(claimed_by=None, claim_expires_at=None)).rowcount)

    @_translated
    def list_webhooks(self, owner: str | None, *, job_id: str | None = None, state: str | None = None,
                      limit: int = 50, offset: int = 0) -> tuple[list[WebhookDelivery], int]:
        o = webhook_outbox.c
        conds = []
        if owner is not None:
            conds.append(o.owner == owner)
        if job_id is not None:
            conds.append(o.job_id == job_id)
        if state is not None:
            conds.append(o.state == state)
        with self._read() as conn:
            rows = conn.execute(select(webhook_outbox).where(*conds).order_by(o.created_at.desc(), o.id)
                                .limit(limit).offset(offset)).mappings()
            items = [WebhookDelivery(**r) for r in rows]
            total = int(conn.execute(select(func.count()).select_from(webhook_outbox).where(*conds)).scalar_one())
        return items, total
