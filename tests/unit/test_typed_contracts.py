"""The typed contracts of mlac.contracts keep the plain forms that cross processes and lie on disk unchanged."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from mlac.attacks import TrialOutcome
from mlac.contracts import PLACEMENT_KEYS, ProgressEvent, StudyKey, TrialResult


def _outcome(pruned: bool = False) -> TrialOutcome:
    return TrialOutcome(selection_curve=[(20, 0.5), (40, 0.625)], best_selection_accuracy=0.625, best_step=40,
                        report_accuracy=None if pruned else 0.6, steps_run=40, pruned=pruned, wall_s=1.5,
                        flops=2e9, report_majority_rate=0.52, seen_ids={"train": ["a", "b"]})


def test_a_trial_result_carries_every_outcome_field() -> None:
    """A field added to TrialOutcome must be added here, or run_trial would drop it from what the search stores."""
    assert {f.name for f in fields(TrialOutcome)} <= {f.name for f in fields(TrialResult)}
    assert set(PLACEMENT_KEYS) <= {f.name for f in fields(TrialResult)}


@pytest.mark.parametrize("pruned", [False, True])
def test_the_plain_form_is_the_outcome_plus_ok(pruned: bool) -> None:
    outcome = _outcome(pruned)
    result = TrialResult.succeeded(outcome)
    assert result.to_dict() == {"ok": True, **outcome.to_dict()}
    assert list(result.to_dict()) == ["ok", *outcome.to_dict()]
    assert TrialResult.from_dict(result.to_dict()) == result
    placed = result.placed("node-1", 99)
    assert placed.to_dict() == {"ok": True, **outcome.to_dict(), "node_id": "node-1", "worker_pid": 99}
    assert placed.placement() == {"node_id": "node-1", "worker_pid": 99}
    assert TrialResult.from_dict({**placed.to_dict(), "reused": True}).reused


def test_a_failure_round_trips() -> None:
    failed = TrialResult.failed("DataError [x]: bad", user_error=True)
    assert failed.to_dict() == {"ok": False, "error": "DataError [x]: bad", "user_error": True}
    assert TrialResult.from_dict(failed.to_dict()) == failed
    assert TrialResult.from_dict({"ok": False, "error": "tb"}) == TrialResult(ok=False, error="tb")


def test_values_pass_through_unconverted() -> None:
    """What comes back is what was sent: an int stays an int, so the stored JSON is byte for byte the same."""
    plain = {"ok": True, "selection_curve": [[10, 0.5]], "best_selection_accuracy": 0.5, "best_step": 10,
             "report_accuracy": 0.5, "steps_run": 10, "pruned": False, "wall_s": 1, "flops": 7, "report_majority_rate": 0.5,
             "seen_ids": {}}
    assert TrialResult.from_dict(plain).to_dict() == plain
    assert isinstance(TrialResult.from_dict(plain).to_dict()["flops"], int)


def test_a_successful_result_needs_what_the_search_tells_optuna() -> None:
    with pytest.raises(ValueError, match="best_selection_accuracy"):
        TrialResult.from_dict({"ok": True, "pruned": False})
    with pytest.raises(ValueError, match="no 'ok'"):
        TrialResult.from_dict({"error": "x"})


def test_one_study_label() -> None:
    key = StudyKey("model-a", "/ckpt/a", "harmful", 20, 3)
    assert key.label() == "model-a:harmful:n20:s3"
    assert key.label(sep="__") == "model-a__harmful__n20__s3"
    assert key.tag() == {"model": "model-a", "task": "harmful", "n": 20, "seed": 3}
    event = ProgressEvent(stage="search", study=0, **key.tag())
    assert event.study_label() == key.label()
    assert ProgressEvent(stage="prepare").study_label() is None


def _search(**changes: object) -> ProgressEvent:
    base = ProgressEvent(stage="search", study=1, studies_done=0, studies_total=4, trials_done=2, trials_total=16,
                         model="m", task="harmful", n=20, seed=0)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_progress_events_keep_their_plain_shape() -> None:
    head = {"stage": "search", "study": 1, "studies_done": 0, "studies_total": 4, "trials_done": 2, "trials_total": 16,
            "model": "m", "task": "harmful", "n": 20, "seed": 0}
    failed = ProgressEvent.finished_trial(3, ok=False)
    assert _search(ok=failed.ok, trial=failed.trial).to_dict() == {**head, "best_so_far": None, "ok": False, "trial": 3}
    done = ProgressEvent.finished_trial(4, ok=True, value=0.7, pruned=False)
    assert _search(ok=done.ok, trial=done.trial, value=done.value, pruned=done.pruned, best_so_far=0.7).to_dict() == {
        **head, "best_so_far": 0.7, "ok": True, "trial": 4, "value": 0.7, "pruned": False}
    replayed = ProgressEvent.finished_trial(0, ok=True, value=None, pruned=True, replayed=True)
    assert _search(ok=True, trial=0, value=replayed.value, pruned=True, replayed=True).to_dict() == {
        **head, "best_so_far": None, "ok": True, "trial": 0, "value": None, "pruned": True, "replayed": True}
    assert _search(point=0.6, best_so_far=0.6).to_dict() == {**head, "point": 0.6, "best_so_far": 0.6}
    assert ProgressEvent(stage="done", studies_done=4, studies_total=4).to_dict() == {
        "stage": "done", "studies_done": 4, "studies_total": 4}
    assert ProgressEvent(stage="prepare").to_dict() == {"stage": "prepare"}


def test_a_plain_event_reads_back() -> None:
    event = _search(ok=True, trial=2, value=0.5, pruned=False, best_so_far=0.5)
    logged = {**event.to_dict(), "t": 123.0, "best_harmful_so_far": 0.5}  # what the worker's event log adds
    assert ProgressEvent.from_dict(logged) == event
