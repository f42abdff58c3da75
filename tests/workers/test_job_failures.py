"""A failed job's report: a one-line cause and the traceback apart (the job driver's error path; no Ray cluster)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from mlac.job_failure import JobFailure
from workers.artifacts.access import StoreAccess
from workers.jobs import JobDriver


def _driver(tmp_path: Path, request: object) -> JobDriver:
    access = StoreAccess(url=f"file://{tmp_path / 'data' / 'artifacts'}", gateway=False)
    return JobDriver("job_1", "audit", {"request": request}, {"data_dir": str(tmp_path / "data")}, access.to_dict())


def test_an_mlac_error_is_one_line_with_its_code(tmp_path: Path) -> None:
    outcome = _driver(tmp_path, {"no_such_key": 1}).run()
    assert outcome["state"] == "FAILED"
    assert outcome["error"].startswith("ConfigError [invalid_config]: unknown audit request keys ['no_such_key']")
    assert "\n" not in outcome["error"]
    assert "Traceback (most recent call last)" in outcome["error_detail"]


def test_an_unexpected_error_is_its_last_line_and_the_traceback_apart(tmp_path: Path) -> None:
    outcome = _driver(tmp_path, ["not", "a", "mapping"]).run()
    assert outcome["state"] == "FAILED"
    assert outcome["error"].startswith("ValueError: ") and "\n" not in outcome["error"]
    assert "Traceback (most recent call last)" in outcome["error_detail"] and "_run_once" in outcome["error_detail"]
    failure = JobFailure.from_outcome(outcome)
    assert failure is not None and failure.cause == outcome["error"] and failure.detail == outcome["error_detail"]
    assert str(tmp_path) not in outcome["error"]


def test_a_success_carries_no_failure() -> None:
    assert JobFailure.from_outcome({"state": "SUCCEEDED", "result_path": "x", "error": None}) is None


@pytest.mark.ray
def test_a_job_failing_in_the_censor_actor_reports_the_actors_error(ray_cluster, tiny_assets: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    """Through the Ray JobRunner: the error raised in the censor actor (wrapped by Ray) is the one-line cause."""
    from workers.jobs import JobRunner
    from workers.progress import CallbackSink
    from workers.settings import RaySettings

    base = tmp_path / "base"
    shutil.copytree(tiny_assets["base"], base)
    (base / "tokenizer.json").write_text("{", encoding="utf-8")  # a checkpoint written before the intake checks
    ended, outcome = threading.Event(), {}

    def on_finished(_: str, state: str, result_path: str | None, failure: JobFailure | None) -> None:
        outcome.update(state=state, failure=failure)
        ended.set()

    runner = JobRunner(RaySettings(data_dir=tmp_path), tmp_path / "artifacts", poll_s=0.3)
    runner.submit("bad-job", "censor", {"base": str(base), "dataset": str(tiny_assets["data"])},
                  CallbackSink(lambda _, e: None, on_finished))
    assert ended.wait(180), "the job did not finish"
    failure = outcome["failure"]
    assert outcome["state"] == "FAILED" and isinstance(failure, JobFailure), outcome
    assert failure.cause.startswith("CheckpointError [bad_tokenizer]: tokenizer.json: not valid JSON"), failure.cause
    assert "\n" not in failure.cause
    assert failure.detail and "ray::CensorRun.run()" in failure.detail and "in load_checkpoint" in failure.detail
