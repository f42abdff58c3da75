"""A resumed audit rebuilds the job store's trial records from the Optuna storage: records lost with a crashed
process (here: a first run whose events never reached the store) come back on the next run, once each, and the
re-announced trials do not flood the job's event log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from mlac.audit.presets import build_request
from mlac.audit.runner import execute_audit
from mlac.data import SynthConfig, generate_synthetic, save_dataset
from service.dispatcher import StoreSink
from service.store import get_store
from service.store.records import NewJob

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_trial_records_come_back_from_the_optuna_storage(tmp_path: Path, tiny_checkpoint: Path, sqlite_url: str) -> None:
    ds, task = generate_synthetic(SynthConfig(n_bios=600, seed=1))
    dataset = save_dataset(ds, task, tmp_path / "bios.parquet")
    request = build_request("smoke", dataset=str(dataset), models=(str(tiny_checkpoint),), tasks=("harmful",),
                            sizes=(20,), seeds=(0,), selection_max=40, report_max=40)
    out = tmp_path / "audit"
    execute_audit(request, out, progress=lambda event: None, study_namespace="job-1")  # the store saw nothing

    store = get_store(sqlite_url)
    job, _ = store.create_job(NewJob(owner="key_a", kind="audit", spec={}, spec_hash="h", idempotency_key=None))
    sink = StoreSink(store, webhooks=None, metrics=None, closing=lambda: False)
    events: list[dict[str, Any]] = []

    def progress(event: dict[str, Any]) -> None:
        events.append(event)
        sink.event(job.id, event)

    _, results = execute_audit(request, out, progress=progress, study_namespace="job-1")
    assert results[0].trials_executed_now == 0  # nothing ran again
    replayed = [e for e in events if e.get("replayed")]
    assert len(replayed) == results[0].trials_run >= 1
    records = store.trial_results(job.id)
    assert sorted(r.trial for r in records) == sorted(e["trial"] for e in replayed)
    assert not any(e.payload.get("replayed") for e in store.events_since(job.id, 0))
    execute_audit(request, out, progress=progress, study_namespace="job-1")  # again: still one record per trial
    assert len(store.trial_results(job.id)) == len(records)
    store.close()
