"""Per-trial results written once, keyed by (job, study, trial), so a retried trial is never counted twice.

A trial's key is its study (the spec's tag: model, task, n, seed) and its trial seed, which the study
driver derives one-to-one from the Optuna trial number (reruns of the winner get their own seeds),
plus a hash of the whole spec so that a different spec can never pick up a stored result. The object
``<prefix>/<study>/<trial_seed>-<spec hash>.json`` lives in the :mod:`artifact store <workers.artifacts>`
(``jobs/<job id>/trials/...``), written by the job's driver only, which checks it before it runs a trial: a
trial whose result is stored (a driver restarted on another node, a re-submitted batch) is not run again, and the
first stored result of a trial is the one every later reader gets. Only successful results are stored.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from typing import Any

from mlac.contracts import TrialResult, study_label
from workers.artifacts.store import ArtifactStore, FsspecStore

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def spec_hash(spec: dict[str, Any]) -> str:
    """sha256 of the spec's canonical JSON (device excluded: it says where, not what), first 16 hex digits."""
    data = {k: v for k, v in spec.items() if k != "device"}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def study_folder(spec: dict[str, Any]) -> str:
    """The folder of the spec's study: :meth:`~mlac.contracts.StudyKey.label` of its tag with ``__`` for ``:``,
    made file-system safe (``base__harmful__n20__s0``; the folder names of existing job folders)."""
    tag = spec.get("tag") or {}
    label = study_label(tag.get("model", "model"), tag.get("task", spec.get("task")), tag.get("n", spec.get("n")),
                        tag.get("seed", ""), sep="__")
    return _UNSAFE.sub("_", label)[:120]


class TrialResultStore:
    """One prefix per job (``jobs/<id>/trials``); see the module docstring for the key and the write-once rule.

    A plain path is a local store rooted there (what tests and older callers pass)."""

    def __init__(self, store: ArtifactStore | str, prefix: str = "") -> None:
        self.store: ArtifactStore = FsspecStore(store) if isinstance(store, str) else store
        self.prefix = prefix.strip("/")
        self._lock = threading.Lock()

    def key(self, spec: dict[str, Any]) -> str:
        """Where the result of ``spec`` is (or will be) stored."""
        name = f"{study_folder(spec)}/{int(spec.get('trial_seed', 0))}-{spec_hash(spec)}.json"
        return f"{self.prefix}/{name}" if self.prefix else name

    def get(self, spec: dict[str, Any]) -> TrialResult | None:
        """The stored result of ``spec``, or None."""
        key = self.key(spec)
        if not self.store.exists(key):
            return None
        return TrialResult.from_dict(json.loads(self.store.read(key)))

    def put_once(self, spec: dict[str, Any], result: TrialResult) -> tuple[TrialResult, bool]:
        """Store ``result`` (its plain :meth:`~mlac.contracts.TrialResult.to_dict`, sorted keys) unless a result for
        ``spec`` exists; return (the stored result, whether it was ours)."""
        with self._lock:
            existing = self.get(spec)
            if existing is not None:
                return existing, False
            self.store.write(self.key(spec), json.dumps(result.to_dict(), sort_keys=True, default=str).encode())
            return result, True

    def count(self) -> int:
        """How many trial results are stored."""
        return sum(1 for k in self.store.list(self.prefix) if k.endswith(".json"))
