"""Per-trial results written once, keyed by (job, study, trial), so a retried trial is never counted twice.

A trial's key is its study (the spec's tag: model, task, n, seed) and its trial seed, which the study
driver derives one-to-one from the Optuna trial number (reruns of the winner get their own seeds),
plus a hash of the whole spec so that a different spec can never pick up a stored result. The file
``<root>/<study>/<trial_seed>-<spec hash>.json`` is created atomically with ``os.link`` (fails if it
exists): the first completed attempt wins and any later attempt of the same trial (a Ray retry after
its worker died just after writing, a re-submitted batch) reads that result back instead of running
or recording a second one. Only successful results are stored; a failed attempt is retried.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from mlac.contracts import TrialResult, study_label

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
    """One folder per job; see the module docstring for the key and the write-once rule."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, spec: dict[str, Any]) -> Path:
        """Where the result of ``spec`` is (or will be) stored."""
        return self.root / study_folder(spec) / f"{int(spec.get('trial_seed', 0))}-{spec_hash(spec)}.json"

    def get(self, spec: dict[str, Any]) -> TrialResult | None:
        """The stored result of ``spec``, or None."""
        path = self.path(spec)
        try:
            return TrialResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None

    def put_once(self, spec: dict[str, Any], result: TrialResult) -> tuple[TrialResult, bool]:
        """Store ``result`` (its plain :meth:`~mlac.contracts.TrialResult.to_dict`, as the file keeps it) unless a
        result for ``spec`` exists; return (the stored result, whether it was ours)."""
        path = self.path(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(result.to_dict(), fh, sort_keys=True, default=str)
            try:
                os.link(tmp, path)
            except FileExistsError:
                existing = self.get(spec)
                if existing is not None:
                    return existing, False
                raise
            return result, True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def count(self) -> int:
        """How many trial results are stored."""
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.is_dir() else 0
