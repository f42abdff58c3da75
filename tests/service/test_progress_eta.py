"""Live progress: the censor stage's own ETA reaches the job, and ``mlac-audit watch`` shows it."""

from __future__ import annotations

from pathlib import Path

from service.cli import progress_line
from service.dispatcher import StoreSink
from service.store import get_store
from service.store.records import NewJob


def test_censor_eta_reaches_the_job_progress(tmp_path: Path) -> None:
    store = get_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    job, _ = store.create_job(NewJob(owner="key_a", kind="censor", spec={}, spec_hash="h", idempotency_key=None))
    sink = StoreSink(store, webhooks=None, metrics=None, closing=lambda: False)
    sink.event(job.id, {"stage": "censor", "event": "step", "step": 30, "outer_steps": 150, "eta_s": 95.5})
    progress = store.get_job(job.id, None).progress
    assert (progress["stage"], progress["step"], progress["eta_s"]) == ("censor", 30, 95.5)
    sink.event(job.id, {"stage": "censor", "event": "step", "step": 31, "eta_s": None})
    assert store.get_job(job.id, None).progress["step"] == 31


def test_watch_line_shows_step_total_and_eta() -> None:
    line = progress_line({"stage": "censor", "step": 30, "outer_steps": 150, "eta_s": 95.5})
    assert line == "censor  step 30/150  ETA 1m35s"
    line = progress_line({"stage": "search", "trials_done": 4, "trials_total": 96, "studies_done": 1, "studies_total": 24})
    assert line == "search  trials 4/96  searches 1/24"
