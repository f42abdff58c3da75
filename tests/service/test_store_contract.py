"""One contract suite for every job store backend (SQLite and PostgreSQL), as Optuna tests its storages."""

from __future__ import annotations

import threading
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from service.errors import (
    ConflictError,
    IdempotencyConflictError,
    InvalidTransitionError,
    NotFoundError,
    StoreUnavailableError,
)
from service.store import get_store
from service.store.records import Checkpoint, DatasetRec, NewJob, Schedule, TrialRecord
from service.store.tables import VERSION_TABLE, metadata


def _job(owner: str = "key_a", key: str | None = None, spec_hash: str = "h1", **kw) -> NewJob:
    return NewJob(owner=owner, kind="audit", spec={"x": spec_hash}, spec_hash=spec_hash, idempotency_key=key, **kw)


def _ckpt(sha: str = "a" * 64, owner: str = "key_a") -> Checkpoint:
    return Checkpoint(sha256=sha, owner=owner, name="m", path="/x", size_bytes=10, info={"model_type": "bert"},
                      created_at=time.time())


def _schedule(sid: str = "sch_1", owner: str = "key_a", **template) -> Schedule:
    return Schedule(id=sid, owner=owner, name="nightly", cron="0 * * * *", timezone="UTC",
                    template={"kind": "audit", **template}, webhook_url=None, paused=False, created_at=time.time(),
                    last_slot=None)


def test_migrated_schema_matches_the_metadata(store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}), metadata)
    assert diff == []
    again = get_store(store.url)  # migrating twice is a no-op
    again.close()


def test_state_machine_and_terminal_immutability(store) -> None:
    job, created = store.create_job(_job())
    assert created and job.state == "QUEUED" and job.attempts == 0
    running = store.start_job(job.id, "proc-1", time.time() + 60)
    assert running.state == "RUNNING" and running.lease_owner == "proc-1" and running.started_at is not None
    with pytest.raises(InvalidTransitionError):
        store.start_job(job.id, "proc-2", time.time() + 60)
    done = store.finish_job(job.id, "SUCCEEDED", result_path="/r", verdict="PASS")
    assert done.state == "SUCCEEDED" and done.finished_at is not None and done.verdict == "PASS"
    for state in ("FAILED", "CANCELLED", "SUCCEEDED"):
        with pytest.raises(InvalidTransitionError):
            store.finish_job(job.id, state)
    with pytest.raises(ConflictError):
        store.request_cancel(job.id, None)
    store.update_progress(job.id, {"stage": "late"})
    assert store.get_job(job.id, None).progress == {}
    with pytest.raises(InvalidTransitionError):
        store.finish_job(job.id, "RUNNING")
    with pytest.raises(NotFoundError):
        store.start_job("job_missing", "p", 0.0)


def test_cancel_queued_is_immediate_and_running_is_flagged(store) -> None:
    queued, _ = store.create_job(_job())
    assert store.request_cancel(queued.id, "key_a").state == "CANCELLED"
    running, _ = store.create_job(_job(spec_hash="h2"))
    store.start_job(running.id, "p", time.time() + 60)
    flagged = store.request_cancel(running.id, "key_a")
    assert flagged.state == "RUNNING" and flagged.cancel_requested
    with pytest.raises(NotFoundError):
        store.request_cancel(running.id, "key_b")
    assert store.finish_job(running.id, "CANCELLED").state == "CANCELLED"


def test_expired_leases_are_requeued_and_renewed_ones_are_not(store) -> None:
    a, _ = store.create_job(_job(spec_hash="a"))
    b, _ = store.create_job(_job(spec_hash="b"))
    now = time.time()
    store.start_job(a.id, "dead", now - 1)
    store.start_job(b.id, "alive", now - 1)
    assert store.renew_leases("alive", now + 60) == 1
    assert store.requeue_expired(now) == [a.id]
    again = store.get_job(a.id, None)
    assert again.state == "QUEUED" and again.attempts == 1 and again.lease_owner is None
    assert store.get_job(b.id, None).state == "RUNNING"
    assert [j.id for j in store.queued_jobs(10)] == [a.id]


def test_ownership_hides_other_keys_rows(store) -> None:
    job, _ = store.create_job(_job(owner="key_a"))
    with pytest.raises(NotFoundError):
        store.get_job(job.id, "key_b")
    assert store.get_job(job.id, None).id == job.id
    assert store.list_jobs("key_b") == ([], 0)
    store.add_checkpoint(_ckpt())
    with pytest.raises(NotFoundError):
        store.get_checkpoint("a" * 64, "key_b")


def test_idempotency_key_same_body_same_job_other_body_422(store) -> None:
    first, created = store.create_job(_job(key="k1"))
    again, created_again = store.create_job(_job(key="k1"))
    assert created and not created_again and again.id == first.id
    with pytest.raises(IdempotencyConflictError):
        store.create_job(_job(key="k1", spec_hash="other"))
    other_owner, created_other = store.create_job(_job(owner="key_b", key="k1"))
    assert created_other and other_owner.id != first.id


def test_eight_threads_one_idempotency_key_make_one_job(store) -> None:
    ids: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        try:
            barrier.wait()
            job, _ = store.create_job(_job(key="race"))
            ids.append(job.id)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(ids) == 8 and len(set(ids)) == 1
    assert store.list_jobs("key_a")[1] == 1


def test_trial_results_are_written_once(store) -> None:
    job, _ = store.create_job(_job())
    r = TrialRecord(job_id=job.id, study="m:harmful:n20:s0", trial=3, value=0.7, payload={"ok": True})
    assert store.record_trial(r) is True
    assert store.record_trial(TrialRecord(job_id=job.id, study=r.study, trial=3, value=0.1, payload={})) is False
    rows = store.trial_results(job.id)
    assert len(rows) == 1 and rows[0].value == 0.7


def test_events_have_increasing_sequence_numbers(store) -> None:
    job, _ = store.create_job(_job())
    seqs = [store.append_event(job.id, {"i": i}, time.time()) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert [e.payload["i"] for e in store.events_since(job.id, 2)] == [2, 3, 4]


def test_progress_merges(store) -> None:
    job, _ = store.create_job(_job())
    store.update_progress(job.id, {"stage": "search", "trials_done": 1})
    store.update_progress(job.id, {"trials_done": 2})
    assert store.get_job(job.id, None).progress == {"stage": "search", "trials_done": 2}


def test_list_filters_and_pagination(store) -> None:
    made = [store.create_job(_job(spec_hash=str(i)))[0] for i in range(5)]
    store.start_job(made[0].id, "p", time.time() + 60)
    page, total = store.list_jobs("key_a", limit=2, offset=0)
    assert total == 5 and len(page) == 2
    rest, _ = store.list_jobs("key_a", limit=10, offset=2)
    assert len(rest) == 3 and not {j.id for j in page} & {j.id for j in rest}
    running, n_running = store.list_jobs("key_a", state="RUNNING")
    assert n_running == 1 and running[0].id == made[0].id
    assert store.list_jobs("key_a", kind="censor")[1] == 0


def test_checkpoint_content_addressing_and_delete_guard(store) -> None:
    row, created = store.add_checkpoint(_ckpt())
    again, created_again = store.add_checkpoint(_ckpt())
    assert created and not created_again and again.sha256 == row.sha256
    store.add_checkpoint(_ckpt(owner="key_b"))
    job, _ = store.create_job(_job(checkpoint_sha="a" * 64))
    with pytest.raises(ConflictError):
        store.delete_checkpoint("a" * 64, "key_a")
    store.finish_job(job.id, "CANCELLED")
    assert store.delete_checkpoint("a" * 64, "key_a") == 1  # key_b's row remains: keep the files
    with pytest.raises(NotFoundError):
        store.delete_checkpoint("a" * 64, "key_a")
    assert store.delete_checkpoint("a" * 64, None) == 0


def test_identical_checkpoints_of_two_keys_are_guarded_by_their_own_jobs_and_schedules(store) -> None:
    """Identical uploads share an id across keys: one key's schedule must not pin (or reveal) another's row."""
    store.add_checkpoint(_ckpt(owner="key_a"))
    store.add_checkpoint(_ckpt(owner="key_b"))
    store.add_schedule(_schedule(owner="key_a", checkpoint_id="a" * 64))
    with pytest.raises(ConflictError):
        store.delete_checkpoint("a" * 64, "key_a")
    assert store.delete_checkpoint("a" * 64, "key_b") == 1
    with pytest.raises(NotFoundError):
        store.get_checkpoint("a" * 64, "key_b")
    assert store.get_checkpoint("a" * 64, "key_a").owner == "key_a"


def test_migration_0003_marks_rows_standing_on_another_keys_upload(store_url: str) -> None:
    """Rows from when ids were the weights' sha256: the first uploader's directory stood behind later keys' rows."""
    from sqlalchemy import create_engine, insert

    from service.errors import ConflictError as Conflict
    from service.jobspec import checkpoint_path
    from service.store import migrate, normalize_url
    from service.store.tables import checkpoints

    engine = create_engine(normalize_url(store_url))
    migrate.upgrade(engine, "0001")
    w, v = "1" * 64, "2" * 64
    rows = [("key_a", w, "/c/" + w, 1.0), ("key_b", w, "/c/" + w, 2.0), ("key_c", w, "/c/" + w, 3.0),
            ("key_b", v, "/c/" + v, 4.0), ("key_a", v, "/jobs/job_1/censored", 5.0)]
    with engine.begin() as conn:
        for owner, sha, path, t in rows:
            conn.execute(insert(checkpoints).values(sha256=sha, owner=owner, name="m", path=path, size_bytes=1,
                                                    info={"files": ["config.json"]}, created_at=t))
    engine.dispose()
    store = get_store(store_url)
    try:
        got = {(c.owner, c.sha256): c.info for c in store.list_checkpoints(None, 10, 0)[0]}
        assert {k: i.get("legacy_shared", False) for k, i in got.items()} == {
            ("key_a", w): False, ("key_b", w): True, ("key_c", w): True, ("key_b", v): False, ("key_a", v): False}
        assert all(i["weights_sha256"] == sha for (_, sha), i in got.items())
        assert checkpoint_path(store, w, "key_a") == "/c/" + w
        with pytest.raises(Conflict) as refused:
            checkpoint_path(store, w, "key_b")
        assert refused.value.code == "reupload_required"
    finally:
        store.close()


def test_dataset_delete_guard(store) -> None:
    ds = DatasetRec(id="ds_1", owner="key_a", name="d", source="synthetic", path="/d", num_rows=3, fingerprint="f",
                    info={}, created_at=time.time())
    store.add_dataset(ds)
    store.add_schedule(_schedule(dataset_id="ds_1"))
    with pytest.raises(ConflictError):
        store.delete_dataset("ds_1", "key_a")
    store.delete_schedule("sch_1", "key_a")
    assert store.delete_dataset("ds_1", "key_a").id == "ds_1"
    assert store.list_datasets("key_a", 10, 0) == ([], 0)


def test_schedule_slot_fires_once_even_concurrently(store) -> None:
    store.add_schedule(_schedule())
    results: list[object] = []
    barrier = threading.Barrier(4)

    def fire(i: int) -> None:
        barrier.wait()
        results.append(store.fire_slot("sch_1", "2030-01-01T00:00:00Z", _job(schedule_id="sch_1", spec_hash=str(i)),
                                       f"proc-{i}", time.time()))

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fired = [r for r in results if r is not None]
    assert len(fired) == 1
    assert store.list_jobs(None, schedule_id="sch_1")[1] == 1
    runs = store.schedule_runs("sch_1")
    assert [r.slot for r in runs] == ["2030-01-01T00:00:00Z"]
    assert store.get_schedule("sch_1", None).last_slot == "2030-01-01T00:00:00Z"
    assert store.set_schedule_paused("sch_1", "key_a", True).paused
    assert store.active_schedules() == []


def test_api_keys_by_hash_and_revocation(store) -> None:
    key = store.add_api_key("ci", "f" * 64, False)
    assert store.add_api_key("ci", "f" * 64, False).id == key.id
    assert store.api_key_by_hash("f" * 64) == key
    store.revoke_api_key(key.id)
    assert store.api_key_by_hash("f" * 64) is None
    with pytest.raises(NotFoundError):
        store.revoke_api_key("key_missing")


def test_the_last_active_admin_key_cannot_be_revoked_even_concurrently(store) -> None:
    from sqlalchemy import update

    from service.store.tables import api_keys

    a, b = store.add_api_key("a", "a" * 64, True), store.add_api_key("b", "b" * 64, True)
    with pytest.raises(NotFoundError):
        store.revoke_api_key("key_missing")
    outcome: list[str] = []

    def revoke_b() -> None:
        try:
            store.revoke_api_key(b.id)
            outcome.append("revoked")
        except ConflictError:
            outcome.append("conflict")

    # a revocation of ``a`` in flight (uncommitted) while ``b`` is revoked: the second must wait and then refuse
    with store.engine.connect().execution_options(immediate=True) as conn, conn.begin():
        conn.execute(update(api_keys).where(api_keys.c.id == a.id).values(revoked=True))
        thread = threading.Thread(target=revoke_b)
        thread.start()
        time.sleep(0.5)
    thread.join()
    assert outcome == ["conflict"]
    assert [k.id for k in store.list_api_keys() if k.is_admin and not k.revoked] == [b.id]
    with pytest.raises(ConflictError, match="last active admin key"):
        store.revoke_api_key(b.id)
    store.reinstate_api_key(a.id)
    store.revoke_api_key(b.id)  # another admin is active again
    assert store.api_key_by_hash(b.key_hash) is None and store.api_key_by_hash(a.key_hash) is not None


def test_a_broken_schedule_leaves_the_work_list_until_cleared(store) -> None:
    store.add_schedule(_schedule("sch_1"))
    store.add_schedule(_schedule("sch_2"))
    store.mark_schedule_broken("sch_1", "cron expression '0 0 30 2 *' never fires")
    assert [s.id for s in store.active_schedules()] == ["sch_2"]
    assert store.get_schedule("sch_1", "key_a").broken == "cron expression '0 0 30 2 *' never fires"
    assert {s.id: s.broken for s in store.list_schedules("key_a")[0]}["sch_2"] is None
    store.mark_schedule_broken("sch_1", None)
    assert [s.id for s in store.active_schedules()] == ["sch_1", "sch_2"]
    with pytest.raises(NotFoundError):
        store.mark_schedule_broken("sch_missing", "x")


def test_driver_errors_are_translated(tmp_path) -> None:
    with pytest.raises(StoreUnavailableError):
        get_store("postgresql://nobody@127.0.0.1:1/none")
    bad = tmp_path / "not-a-db.db"
    bad.write_bytes(b"this is not a sqlite file" * 100)
    with pytest.raises(StoreUnavailableError):
        get_store(f"sqlite:///{bad}")
