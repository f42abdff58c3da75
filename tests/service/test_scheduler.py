"""Scheduler with a frozen clock: one job per slot across two instances on one database; downtime catch-up."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from mlac.errors import ConfigError
from service.scheduler import (
    Scheduler,
    check_cron,
    check_schedule,
    job_from_template,
    latest_slot,
    next_slots,
    slot_key,
)
from service.store.records import DatasetRec, Schedule

from .conftest import ADMIN_KEY

T0 = datetime(2030, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


class FrozenClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _setup(store, cron: str = "0 * * * *", tz: str = "UTC") -> Schedule:
    store.add_dataset(DatasetRec(id="ds_" + "1" * 20, owner="key_a", name="d", source="synthetic", path="/d", num_rows=10,
                                 fingerprint="f", info={}, created_at=0.0))
    template = {"kind": "audit", "dataset_id": "ds_" + "1" * 20, "audit": {"baselines": ["random"], "tiny_base": True}}
    return store.add_schedule(Schedule(id="sch_" + "2" * 20, owner="key_a", name="hourly", cron=cron, timezone=tz,
                                       template=template, webhook_url=None, paused=False,
                                       created_at=(T0 - timedelta(hours=5)).timestamp(), last_slot=None))


def test_two_instances_on_one_database_fire_each_slot_once(store) -> None:
    schedule = _setup(store)
    clock = FrozenClock(T0 + timedelta(minutes=1))
    a = Scheduler(store, instance="a", clock=clock)
    b = Scheduler(store, instance="b", clock=clock)
    fired = a.tick() + b.tick() + a.tick() + b.tick()
    assert len(fired) == 1
    assert fired[0].schedule_id == schedule.id and fired[0].state == "QUEUED" and fired[0].owner == "key_a"
    clock.now = T0 + timedelta(minutes=59)
    assert a.tick() + b.tick() == []
    clock.now = T0 + timedelta(hours=1, seconds=5)
    fired = b.tick() + a.tick()
    assert len(fired) == 1 and fired[0].id != ""
    runs = store.schedule_runs(schedule.id)
    assert [r.slot for r in runs] == [slot_key(T0 + timedelta(hours=1)), slot_key(T0)]
    assert store.list_jobs(None, schedule_id=schedule.id)[1] == 2


def test_catch_up_after_downtime_runs_only_the_latest_missed_slot_once(store) -> None:
    schedule = _setup(store)
    clock = FrozenClock(T0)
    sched = Scheduler(store, instance="a", clock=clock)
    assert len(sched.tick()) == 1  # the 12:00 slot
    clock.now = T0 + timedelta(hours=7, minutes=30)  # down from 12:00 to 19:30: 7 slots missed
    fired = sched.tick()
    assert len(fired) == 1
    assert store.schedule_runs(schedule.id)[0].slot == slot_key(T0 + timedelta(hours=7))
    assert sched.tick() == []
    assert store.list_jobs(None, schedule_id=schedule.id)[1] == 2


def test_slots_before_creation_and_paused_schedules_do_not_fire(store) -> None:
    schedule = _setup(store, cron="0 0 1 1 *")  # yearly, last slot long before creation
    sched = Scheduler(store, instance="a", clock=FrozenClock(T0))
    assert sched.tick() == []
    store.set_schedule_paused(schedule.id, None, True)
    sched.clock = FrozenClock(datetime(2031, 1, 1, 0, 0, 1, tzinfo=timezone.utc))
    assert sched.tick() == []
    store.set_schedule_paused(schedule.id, None, False)
    assert len(sched.tick()) == 1


def test_time_zones_and_next_runs() -> None:
    now = datetime(2030, 3, 30, 12, 0, tzinfo=timezone.utc)
    # 03:00 in Paris: 02:00 UTC in winter, 01:00 UTC in summer (DST starts on 2030-03-31)
    assert next_slots("0 3 * * *", "Europe/Paris", now, 2) == ["2030-03-31T01:00:00Z", "2030-04-01T01:00:00Z"]
    assert slot_key(latest_slot("0 3 * * *", "Europe/Paris", now)) == "2030-03-30T02:00:00Z"
    exact = datetime(2030, 3, 30, 2, 0, tzinfo=timezone.utc)
    assert slot_key(latest_slot("0 3 * * *", "Europe/Paris", exact)) == "2030-03-30T02:00:00Z"
    for cron, tz in (("not a cron", "UTC"), ("0 3 * * * *", "UTC"), ("0 3 * * *", "Mars/Olympus")):
        with pytest.raises(ConfigError):
            check_cron(cron, tz)


def test_schedule_api_next_runs_past_runs_pause_resume(client) -> None:
    from .conftest import auth

    client.app.state.ctx.dispatcher.max_running = 0  # record jobs only
    ds = client.post("/v1/datasets/synthetic", json={"n_bios": 600}, headers=auth()).json()["id"]
    body = {"name": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Paris",
            "job": {"kind": "audit", "dataset_id": ds, "audit": {"baselines": ["random"], "tiny_base": True}}}
    r = client.post("/v1/schedules", json=body, headers=auth())
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert len(r.json()["next_runs"]) == 5 and r.json()["past_runs"] == []
    assert client.post(f"/v1/schedules/{sid}/pause", headers=auth()).json()["paused"] is True
    assert client.post(f"/v1/schedules/{sid}/resume", headers=auth()).json()["paused"] is False
    bad = client.post("/v1/schedules", json={**body, "cron": "61 * * * *"}, headers=auth())
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_config"
    store = client.app.state.ctx.store
    row = store.get_schedule(sid, None)
    slot = slot_key(datetime.fromtimestamp(time.time() + 3600, timezone.utc).replace(minute=0, second=0))
    fired = store.fire_slot(sid, slot, job_from_template(row), "t", time.time())
    assert fired is not None
    got = client.get(f"/v1/schedules/{sid}", headers=auth()).json()
    assert [p["job_id"] for p in got["past_runs"]] == [fired.id]
    assert client.get(f"/v1/jobs?schedule_id={sid}", headers=auth()).json()["total"] == 1
    assert client.delete(f"/v1/schedules/{sid}", headers=auth()).status_code == 204
    assert client.get(f"/v1/schedules/{sid}", headers=auth()).status_code == 404


def test_horizon_refuses_crons_that_never_fire_and_keeps_feb_29() -> None:
    for cron in ("0 0 30 2 *", "0 0 30,31 2 *", "0 0 31 4,6,9,11 *"):
        with pytest.raises(ConfigError, match="never fires"):
            check_schedule(cron, "UTC", T0)
    # Feb 29 is the rarest date a 5-field cron can name: 4 years apart, 8 across 2100 (not a leap year)
    check_schedule("0 0 29 2 *", "UTC", T0)
    check_schedule("0 0 29 2 *", "Pacific/Kiritimati", datetime(2096, 2, 29, 0, 0, 1, tzinfo=timezone.utc))
    assert next_slots("0 0 29 2 *", "UTC", datetime(2096, 3, 1, tzinfo=timezone.utc), 1) == ["2104-02-29T00:00:00Z"]
    for tz in ("Etc", "America", "Mars/Olympus", "localtime"):  # folders and host-dependent names are no zones
        with pytest.raises(ConfigError, match="time zone"):
            check_schedule("0 3 * * *", tz, T0)


def test_schedule_api_refuses_never_firing_crons_and_bad_zones_with_422_and_stores_nothing(client) -> None:
    from .conftest import auth

    ds = client.post("/v1/datasets/synthetic", json={"n_bios": 600}, headers=auth()).json()["id"]
    body = {"name": "n", "cron": "0 3 * * *", "timezone": "UTC",
            "job": {"kind": "audit", "dataset_id": ds, "audit": {"baselines": ["random"], "tiny_base": True}}}
    for change in ({"cron": "0 0 30 2 *"}, {"cron": "0 0 31 4,6,9,11 *"}, {"timezone": "Etc"}, {"timezone": "Mars/Olympus"}):
        r = client.post("/v1/schedules", json={**body, **change}, headers=auth())
        assert r.status_code == 422, (change, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_config" and next(iter(change.values())) in error["message"], error
    assert client.get("/v1/schedules", headers=auth()).json()["total"] == 0
    leap = client.post("/v1/schedules", json={**body, "cron": "0 0 29 2 *"}, headers=auth())
    assert leap.status_code == 201, leap.text
    assert leap.json()["broken"] is None
    assert all(s.endswith("-02-29T00:00:00Z") for s in leap.json()["next_runs"]) and len(leap.json()["next_runs"]) == 5


def test_a_poison_row_is_marked_broken_and_never_stops_the_others(client) -> None:
    """Rows written before validation (or corrupted) beside a good one: the good one fires, listing works."""
    from .conftest import auth

    ctx = client.app.state.ctx
    ctx.dispatcher.max_running = 0  # record jobs only
    alice = client.post("/v1/keys", json={"name": "alice"}, headers=auth()).json()
    ds = client.post("/v1/datasets/synthetic", json={"n_bios": 600}, headers=auth(alice["key"])).json()["id"]
    template = {"kind": "audit", "dataset_id": ds, "audit": {"baselines": ["random"], "tiny_base": True}}
    created = (T0 - timedelta(hours=5)).timestamp()

    def row(n: int, cron: str, tz: str = "UTC", tmpl: object = template) -> Schedule:
        return ctx.store.add_schedule(Schedule(id=f"sch_{n:020d}", owner=alice["id"], name=f"s{n}", cron=cron, timezone=tz,
                                               template=tmpl, webhook_url=None, paused=False,  # type: ignore[arg-type]
                                               created_at=created + n, last_slot=None))

    poison = {row(1, "0 0 30 2 *").id: "never fires", row(2, "0 * * * *", tz="Etc").id: "time zone",
              row(3, "0 * * * *", tmpl={"kind": "nope"}).id: "job template", row(4, "0 * * * *", tmpl="x").id: "job template"}
    good = row(5, "0 * * * *")

    def listing(key: str) -> dict[str, dict]:
        r = client.get("/v1/schedules", headers=auth(key))
        assert r.status_code == 200, r.text
        assert r.json()["total"] == 5
        return {s["id"]: s for s in r.json()["items"]}

    for key in (ADMIN_KEY, alice["key"]):  # before the scheduler saw them: found when read
        items = listing(key)
        for sid, why in poison.items():
            assert why in (items[sid]["broken"] or ""), items[sid]
            assert items[sid]["next_runs"] == []
        assert items[good.id]["broken"] is None and len(items[good.id]["next_runs"]) == 5

    ctx.scheduler.clock = clock = FrozenClock(T0 + timedelta(minutes=1))
    assert [j.schedule_id for j in ctx.scheduler.tick()] == [good.id]
    for sid, why in poison.items():
        assert why in (ctx.store.get_schedule(sid, None).broken or "")
    assert [s.id for s in ctx.store.active_schedules()] == [good.id]  # broken rows are skipped from now on
    clock.now = T0 + timedelta(hours=1, minutes=1)
    assert [j.schedule_id for j in ctx.scheduler.tick()] == [good.id]
    for key in (ADMIN_KEY, alice["key"]):
        items = listing(key)
        assert all(why in (items[sid]["broken"] or "") for sid, why in poison.items())
        got = client.get(f"/v1/schedules/{next(iter(poison))}", headers=auth(key))
        assert got.status_code == 200 and "never fires" in got.json()["broken"]
    assert client.get(f"/v1/jobs?schedule_id={good.id}", headers=auth(alice["key"])).json()["total"] == 2
    # resume checks a broken row again: still bad -> 422 and still broken; fine now (say, after a tzdata
    # update) -> the mark is cleared and the scheduler takes it back
    bad = client.post(f"/v1/schedules/{next(iter(poison))}/resume", headers=auth(alice["key"]))
    assert bad.status_code == 422 and "never fires" in bad.json()["error"]["message"]
    assert ctx.store.get_schedule(next(iter(poison)), None).broken is not None
    ctx.store.mark_schedule_broken(good.id, "unknown time zone 'UTC'")
    assert ctx.store.active_schedules() == []
    resumed = client.post(f"/v1/schedules/{good.id}/resume", headers=auth(alice["key"]))
    assert resumed.status_code == 200 and resumed.json()["broken"] is None and len(resumed.json()["next_runs"]) == 5
    assert [s.id for s in ctx.store.active_schedules()] == [good.id]
