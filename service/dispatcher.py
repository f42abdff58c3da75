"""The dispatcher: moves QUEUED jobs to a runner, keeps leases alive, and records what runners report.

Crash safety: a job is claimed with a compare-and-set QUEUED -> RUNNING that stamps a lease (owner =
this process, expiry = now + lease). Every tick renews the leases of the jobs this process runs and
re-queues RUNNING jobs whose lease ran out (their process died); re-queued jobs are dispatched again and
resume from their artifacts (censor state, Optuna studies: finished trials are not re-run). On a clean
shutdown the leases are released at once so another process (or the next start) picks the jobs up.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlac.contracts import JobOutcome, study_label
from mlac.errors import MlacError
from mlac.job_failure import JobFailure, failure_of, one_line
from mlac.jobs import audits
from service.background import WakeableLoop
from service.checkpoint_store import dir_checkpoint
from service.errors import InvalidTransitionError, NotFoundError
from service.jobspec import dispatch_spec
from service.metrics import ServiceMetrics
from service.runners import Runner
from service.schedule_runs import RegressionPolicy, RunReading, regression_check
from service.store import JobStore
from service.store.records import Checkpoint, Job, TrialRecord
from service.webhooks import WebhookSender

log = logging.getLogger(__name__)
PROGRESS_KEYS = ("stage", "trials_done", "trials_total", "studies_done", "studies_total", "step")


def instance_id() -> str:
    """A name for this process, unique across restarts (leases and schedule slots record it)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


def defended_dir(kind: str, result_path: str) -> Path | None:
    """Where a finished job's defended checkpoint lies: the result of a defend job, ``censored/`` beside the
    audit of a defend-then-audit job; None for a plain audit."""
    if not audits(kind):
        return Path(result_path)
    folder = Path(result_path).parent / "censored"
    return folder if kind != "audit" and folder.is_dir() else None


class StoreSink:
    """Runner reports -> job store (progress, events, idempotent trial results, final state) -> webhooks."""

    def __init__(self, store: JobStore, *, webhooks: WebhookSender | None, metrics: ServiceMetrics | None,
                 closing: Callable[[], bool]) -> None:
        self.store, self.webhooks, self.metrics, self.closing = store, webhooks, metrics, closing

    def event(self, job_id: str, event: dict[str, Any]) -> None:
        """Merge the event into the live progress, append it to the SSE log, record a finished trial once."""
        try:
            now = time.time()
            payload = {k: v for k, v in event.items() if isinstance(v, (int, float, str, bool, type(None)))}
            progress: dict[str, Any] = {k: payload[k] for k in PROGRESS_KEYS if k in payload}
            best = payload.get("best_so_far", payload.get("best_report_accuracy"))
            if isinstance(best, (int, float)):
                progress["best_so_far"] = float(best)
            progress["updated_at"] = now
            eta = self._eta(job_id, payload, now)
            if eta is not None:
                progress["eta_s"] = eta
            self.store.update_progress(job_id, progress)
            if not payload.get("replayed"):  # a resumed search re-announces finished trials: records only
                self.store.append_event(job_id, payload, now)
            trial = payload.get("trial")
            if isinstance(trial, int) and "model" in payload:
                study = study_label(payload["model"], payload.get("task"), payload.get("n"), payload.get("seed"))
                value = payload.get("value")
                self.store.record_trial(TrialRecord(job_id=job_id, study=study, trial=trial,
                                                    value=float(value) if isinstance(value, (int, float)) else None,
                                                    payload=payload, recorded_at=now))
        except MlacError:
            log.exception("could not record progress of job %s", job_id)

    def _eta(self, job_id: str, payload: dict[str, Any], now: float) -> float | None:
        """Seconds left in the current stage: the censor run's own estimate, else trials done vs total."""
        own = payload.get("eta_s")
        if isinstance(own, (int, float)) and not isinstance(own, bool) and own >= 0:
            return float(own)
        done, total = payload.get("trials_done"), payload.get("trials_total")
        if not isinstance(done, int) or not isinstance(total, int) or done <= 0 or total <= 0:
            return None
        job = self.store.get_job(job_id, None)
        if job.started_at is None:
            return None
        return max(0.0, (now - job.started_at) * (total - done) / done)

    def finished(self, job_id: str, outcome: JobOutcome) -> None:
        """Record the end (compare-and-set) with the verdict the runner read from the audit's result, the failure's
        one-line cause and its traceback apart, and send webhooks. A succeeding job's defended checkpoint is
        registered and a scheduled audit's regression gate decided first, so that once a job is seen SUCCEEDED its
        checkpoint exists and its verdict is final."""
        state, result_path, failure = outcome.state, outcome.result_path, outcome.failure
        if self.closing() and state != "SUCCEEDED":
            try:
                if not self.store.get_job(job_id, None).cancel_requested:
                    log.info("job %s interrupted by shutdown: left for the next start to resume", job_id)
                    return
            except NotFoundError:
                return
        verdict = outcome.verdict if state == "SUCCEEDED" else None
        regression: tuple[RunReading, RegressionPolicy] | None = None
        if state == "SUCCEEDED" and result_path:
            try:
                running = self.store.get_job(job_id, None)
            except NotFoundError:
                return
            defended = defended_dir(running.kind, result_path)
            if defended is not None:
                self._register_defended(running, defended)
            regression = self._regression(running, result_path)
            if regression is not None and regression[0].regressed and regression[1].fail_on_regression:
                verdict = "FAIL"
        try:
            job = self.store.finish_job(job_id, state, result_path=result_path, verdict=verdict,
                                        error=None if failure is None else one_line(failure.cause),
                                        error_detail=None if failure is None else failure.detail)
        except (InvalidTransitionError, NotFoundError) as exc:
            log.warning("job %s finished as %s but the store refused: %s", job_id, state, exc)
            return
        if self.metrics is not None:
            self.metrics.jobs_finished.labels(state=state).inc()
        self._notify(job, regression[0] if regression is not None else None)

    def _register_defended(self, job: Job, path: Path) -> None:
        """Register a defend job's output as a checkpoint of the job's owner, with its lineage: the checkpoint it
        was made from (``parent_checkpoint``), the job and the defense (name and config)."""
        from mlac.models import validate_checkpoint_dir

        try:
            info = validate_checkpoint_dir(path)
        except MlacError:
            log.exception("defended checkpoint of job %s does not validate", job.id)
            return
        checkpoint_id, files = dir_checkpoint(path)
        size = sum((path / name).stat().st_size for name in files)
        spec = job.spec.get("worker_spec") if isinstance(job.spec.get("worker_spec"), dict) else {}
        defense = spec.get("defense") if isinstance(spec, dict) else None
        self.store.add_checkpoint(Checkpoint(
            sha256=checkpoint_id, owner=job.owner, name=f"defended-{job.id}", path=str(path), size_bytes=size,
            info={"model_type": info.model_type, "hidden_size": info.hidden_size, "num_parameters": info.num_parameters,
                  "num_beneficial": info.num_beneficial, "weights_sha256": info.sha256, "files": files,
                  "source_job": job.id, "parent_checkpoint": job.checkpoint_sha,
                  "defense": defense if isinstance(defense, dict) else None}, created_at=time.time()))

    def _regression(self, job: Job, result_path: str) -> tuple[RunReading, RegressionPolicy] | None:
        """A scheduled audit's regression gate: compared with the schedule's previous successful run; the reading
        goes into the job's event log (a regressed run's verdict is then made FAIL by the caller, under the policy)."""
        try:
            found = regression_check(self.store, job, result_path)
        except Exception:  # a gate that cannot read a result must not lose the job's end
            log.exception("regression check of job %s failed", job.id)
            return None
        if found is None:
            return None
        reading = found[0]
        statements = reading.comparison.statements if reading.comparison is not None else []
        try:
            self.store.append_event(job.id, {"stage": "regression", "regressed": reading.regressed,
                                             "previous_job_id": reading.previous_job_id,
                                             "statement": " ".join(statements) or reading.not_comparable}, time.time())
        except MlacError:
            log.exception("could not record the regression reading of job %s", job.id)
        return found

    def _notify(self, job: Job, regression: RunReading | None = None) -> None:
        """Enqueue the job's webhooks in the persistent outbox (the delivery loop sends them, signed with the
        owner's secret); a store error is logged, never raised into the runner."""
        url = job.webhook_url
        if url is None and job.schedule_id is not None:
            try:
                url = self.store.get_schedule(job.schedule_id, None).webhook_url
            except NotFoundError:
                url = None
        if url is None or self.webhooks is None:
            return
        payload = {"job_id": job.id, "kind": job.kind, "state": job.state, "verdict": job.verdict,
                   "schedule_id": job.schedule_id, "finished_at": job.finished_at,
                   "error": (job.error or "")[-2000:] or None}
        events: list[tuple[str, dict[str, Any]]] = [("job.completed", payload)]
        if job.verdict == "FAIL":
            events.append(("audit.verdict_fail", payload))
        if regression is not None and regression.regressed and regression.comparison is not None:
            events.append(("audit.regressed", {**payload, "previous_job_id": regression.previous_job_id,
                                               "comparison": regression.comparison.to_dict()}))
        for event, body in events:
            try:
                self.webhooks.enqueue(job.owner, url, event, body, job_id=job.id)
            except MlacError:
                log.exception("could not enqueue webhook %s of job %s", event, job.id)


class Dispatcher:
    """Background loop: re-queue expired leases, renew ours, start queued jobs, pass on cancellations."""

    def __init__(self, store: JobStore, runner: Runner, *, lease_s: float, max_running: int, poll_s: float = 1.0,
                 webhooks: WebhookSender | None = None, metrics: ServiceMetrics | None = None,
                 clock: Callable[[], float] = time.time, owner_id: str | None = None) -> None:
        self.store, self.runner, self.lease_s, self.max_running, self.poll_s = store, runner, lease_s, max_running, poll_s
        self.clock = clock
        self.owner_id = owner_id or instance_id()
        self._loop = WakeableLoop("mlac-dispatcher", self.tick, poll_s)
        self._cancelled: set[str] = set()
        self._mine: set[str] = set()
        self.sink = StoreSink(store, webhooks=webhooks, metrics=metrics, closing=self._loop.stopping.is_set)

    def start(self) -> None:
        """Run :meth:`tick` every ``poll_s`` seconds in a daemon thread."""
        self._loop.start()

    def wake(self) -> None:
        """Tick now (a job was just submitted)."""
        self._loop.wake()

    def tick(self) -> list[str]:
        """One round; returns the ids of the jobs it started. Free slots go to owners in turn
        (:meth:`JobStore.fair_queued_jobs`): one key's long queue cannot starve the others."""
        now = self.clock()
        for job_id in self.store.requeue_expired(now):
            log.warning("job %s lost its lease (its process died): re-queued", job_id)
        self.store.renew_leases(self.owner_id, now + self.lease_s)
        self._mine = {j for j in self._mine if self.runner.is_running(j)}
        for job_id in list(self._mine):
            if job_id not in self._cancelled and self.store.get_job(job_id, None).cancel_requested:
                self._cancelled.add(job_id)
                self.runner.cancel(job_id)
        started: list[str] = []
        free = self.max_running - len(self._mine)
        if free <= 0 or self._loop.stopping.is_set():
            return started
        for job in self.store.fair_queued_jobs(free):  # round-robin across owners, not global FIFO
            try:
                job = self.store.start_job(job.id, self.owner_id, now + self.lease_s)
            except InvalidTransitionError:
                continue  # another process claimed it first
            try:
                self.runner.submit(job.id, job.kind, dispatch_spec(job, self.store), self.sink)
            except MlacError as exc:
                self.sink.finished(job.id, JobOutcome("FAILED", failure=failure_of(exc)))
                continue
            except Exception as exc:
                log.exception("could not start job %s", job.id)
                failure = failure_of(exc)
                self.sink.finished(job.id, JobOutcome("FAILED", failure=JobFailure(f"could not start: {failure.cause}",
                                                                                   failure.detail)))
                continue
            self._mine.add(job.id)
            started.append(job.id)
        return started

    def shutdown(self) -> None:
        """Stop the loop and the runner; release our leases so the jobs resume at the next start."""
        self._loop.stop()
        self.runner.shutdown()
        try:
            self.store.renew_leases(self.owner_id, 0.0)
        except MlacError:
            log.exception("could not release leases")
