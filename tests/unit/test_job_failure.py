"""A failed job's cause is one line without server paths; the traceback is kept apart."""

from __future__ import annotations

from pathlib import Path

from mlac.errors import CheckpointError
from mlac.job_failure import MAX_CAUSE_CHARS, JobFailure, failure_of, one_line, strip_paths


def _raised(exc: Exception) -> Exception:
    try:
        raise exc
    except Exception as caught:
        return caught


def test_an_mlac_error_is_its_type_code_and_message_without_the_data_dir(tmp_path: Path) -> None:
    root = tmp_path / "data"
    exc = _raised(CheckpointError(f"{root}/artifacts/checkpoints/abc/tokenizer.json: token id 40 >= 32", code="vocab_mismatch"))
    failure = failure_of(exc, roots=(root,))
    assert failure.cause == "CheckpointError [vocab_mismatch]: artifacts/checkpoints/abc/tokenizer.json: token id 40 >= 32"
    assert failure.detail is not None and failure.detail.startswith("Traceback") and str(root) not in failure.detail


def test_an_unexpected_error_is_one_line_and_bounded() -> None:
    failure = failure_of(_raised(ValueError("first\nsecond " + "x" * 2000)))
    assert failure.cause.startswith("ValueError: first second ") and "\n" not in failure.cause
    assert len(failure.cause) == MAX_CAUSE_CHARS and failure.cause.endswith("...")
    assert failure.detail is not None and "ValueError: first\nsecond" in failure.detail
    assert failure_of(_raised(KeyError())).cause == "KeyError"


def test_outcomes_round_trip_and_helpers() -> None:
    failure = JobFailure("RuntimeError: boom", "Traceback ...")
    assert JobFailure.from_outcome({"state": "FAILED", **failure.to_dict()}) == failure
    assert JobFailure.from_outcome({"error": "a\nb"}) == JobFailure("a b")
    assert one_line("  a \t b\n") == "a b"
    assert strip_paths("/srv/d/x and /srv/d", ["/srv/d"]) == "x and ."
