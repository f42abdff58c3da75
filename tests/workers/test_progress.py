"""Progress events are plain data, and the best harmful accuracy of a job only goes up."""

from __future__ import annotations

import json
import math

from workers.progress import EventLog, plain_event


def test_plain_event_keeps_json_scalars_only() -> None:
    event = plain_event({"stage": "search", "n": 20, "acc": 0.5, "bad": math.nan, "obj": object(), "ok": True}, now=1.0)
    assert event == {"stage": "search", "n": 20, "acc": 0.5, "bad": None, "ok": True, "t": 1.0}
    json.dumps(event, allow_nan=False)


def test_event_log_tracks_the_best_harmful_point() -> None:
    log = EventLog()
    log.append({"stage": "search", "task": "harmful", "best_so_far": 0.61})
    log.append({"stage": "search", "task": "beneficial", "best_so_far": 0.95})
    log.append({"stage": "search", "task": "harmful", "best_so_far": 0.58})
    assert log.best_harmful == 0.61
    assert [e.get("best_harmful_so_far") for e in log.since(0)] == [0.61, 0.61, 0.61]
    assert len(log.since(2)) == 1 and len(log) == 3
