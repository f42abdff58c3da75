"""How trials get run: the :class:`TrialExecutor` protocol, the in-process executor, and
:func:`run_studies_lockstep`, which keeps several study drivers in flight through one executor.

An executor receives plain trial specs (:meth:`~mlac.audit.trial.TrialSpec.to_dict`) and returns plain
results (:meth:`~mlac.contracts.TrialResult.to_dict`), so that one running on other machines (the Ray
layer's) only ever moves JSON-able dicts; the study driver reads them back as typed results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from mlac.audit.study import SearchError, ShouldStop, StudyDriver, StudyResult
from mlac.audit.trial import WorkerContext, run_trial
from mlac.audit.trial_group import DEFAULT_MAX_GROUP, run_trial_group, spec_groups
from mlac.errors import ConfigError, StoppedError


class TrialExecutor(Protocol):
    """Runs a batch of trial specs (plain dicts) and returns their results (plain
    :meth:`~mlac.contracts.TrialResult.to_dict` forms), in the same order.

    An executor may also have an ``int`` attribute ``concurrency`` (how many trials it runs at once);
    the runner then keeps enough studies in flight to fill it (see :func:`run_studies_lockstep`).
    """

    def map(self, specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run every spec (possibly in parallel); a failed trial is a result with ``ok=False``, not an exception."""
        ...


class InProcessExecutor:
    """Runs trials in this process, sharing one :class:`WorkerContext`.

    ``batched`` (the default): the trials of each batch that can train together do
    (:mod:`mlac.audit.trial_group`, at most ``max_group`` per group; trunk kinds on a CPU only with
    ``trunk_on_cpu``, see :func:`~mlac.audit.trial_group.batches_here`), and :attr:`concurrency` asks the runner
    for enough studies in flight to fill a group; otherwise one trial after the other. The results are the
    same either way (each trial's randomness is its own).
    """

    def __init__(self, context: WorkerContext | None = None, *, batched: bool = True,
                 max_group: int = DEFAULT_MAX_GROUP, trunk_on_cpu: bool = False) -> None:
        if max_group < 1:
            raise ConfigError(f"max_group must be at least 1, got {max_group}")
        self.context = context if context is not None else WorkerContext()
        self.batched, self.max_group, self.trunk_on_cpu = batched, max_group, trunk_on_cpu
        #: Trials this executor takes at once: a group's worth when batched, else one.
        self.concurrency = max_group if batched else 1
        self.executed = 0

    def map(self, specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run ``specs``: grouped when batched, else sequentially; results in spec order."""
        self.executed += len(specs)
        if not self.batched:
            return [run_trial(dict(spec), self.context).to_dict() for spec in specs]
        out: list[dict[str, Any] | None] = [None] * len(specs)
        for group in spec_groups(specs, self.max_group):
            ran = run_trial_group([specs[i] for i in group], self.context, max_group=self.max_group,
                                  trunk_on_cpu=self.trunk_on_cpu)
            for i, result in zip(group, ran, strict=True):
                out[i] = result.to_dict()
        return [r for r in out if r is not None]


def run_studies_lockstep(
    drivers: Sequence[StudyDriver],
    executor: TrialExecutor,
    *,
    width: int = 1,
    should_stop: ShouldStop | None = None,
    on_done: Callable[[int, StudyResult], None] | None = None,
) -> list[StudyResult]:
    """Run every driver to the end, ``width`` studies at a time, their batches sent to ``executor`` together.

    Each driver sees exactly the asks and tells it would see alone, so results do not depend on
    ``width`` or on the executor. ``on_done(index, result)`` is called as each study finishes.
    """
    if width < 1:
        raise ConfigError(f"width must be at least 1, got {width}")
    results: dict[int, StudyResult] = {}
    waiting = list(range(len(drivers)))
    active: list[int] = []
    while waiting or active:
        while waiting and len(active) < width:
            active.append(waiting.pop(0))
        if should_stop is not None and should_stop():
            raise StoppedError(f"audit stopped with {len(results)} of {len(drivers)} searches finished; "
                               "run again with the same storage to resume")
        batches: list[tuple[int, list[dict[str, Any]]]] = []
        for i in list(active):
            specs = drivers[i].next_specs()
            if specs:
                batches.append((i, specs))
            else:  # finished without needing another batch (reruns reused from the storage)
                active.remove(i)
                results[i] = drivers[i].result()
                if on_done:
                    on_done(i, results[i])
        if not batches:
            continue
        flat = [spec for _, specs in batches for spec in specs]
        out = executor.map(flat)
        if len(out) != len(flat):
            raise SearchError(f"the executor returned {len(out)} results for {len(flat)} trial specs")
        start = 0
        for i, specs in batches:
            drivers[i].deliver(out[start : start + len(specs)])
            start += len(specs)
            if drivers[i].done:
                active.remove(i)
                results[i] = drivers[i].result()
                if on_done:
                    on_done(i, results[i])
    return [results[i] for i in range(len(drivers))]
