"""Server paths never reach a client: answers name checkpoints, datasets and jobs by their ids instead.

Errors from ``mlac`` name the files they are about, and an audit's ``result.json`` records the paths
it read; both are right for the CLI user who owns the disk, but to a tenant of the service they reveal the
server's layout. :class:`PathRedactor` rewrites ``<artifact_root>/checkpoints/<id>`` to
``checkpoint:<id>``, ``<artifact_root>/datasets/<id>/...`` to ``dataset:<id>``, a job's folder to
``job:<id>`` (what follows inside it is kept: it is the job's own layout), and any other path under the
data directory or the Python installation to ``<server>``. What is stored is never changed.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SERVER = "<server>"
#: what may follow a root inside one path (a path ends at white space, a quote, or ``:;,()[]{}<>``)
TAIL = r"(?:/[^\s'\"<>;:,()\[\]{}]*)?"


class PathRedactor:
    """Rewrites server paths in text and in JSON values."""

    def __init__(self, data_dir: Path, artifact_root: Path, extra_roots: Iterable[str] = ()) -> None:
        # absolute, or relative to the data directory (how runners store a failure's cause: mlac.job_failure)
        art = "(?:" + re.escape(str(artifact_root).rstrip("/")) + r"/|(?<![\w/.])(?:artifacts/)?)"
        named = [
            (re.compile(art + r"checkpoints/([0-9a-f]{64})" + TAIL), r"checkpoint:\1"),
            (re.compile(art + r"datasets/(ds_[0-9a-f]{20})" + TAIL), r"dataset:\1"),
            (re.compile(art + r"jobs/(job_[0-9a-f]{20})"), r"job:\1"),
        ]
        roots = sorted({str(data_dir).rstrip("/"), sys.prefix.rstrip("/"), sys.base_prefix.rstrip("/"),
                        *(r.rstrip("/") for r in extra_roots)}, key=len, reverse=True)
        other = re.compile("(?:" + "|".join(re.escape(r) for r in roots if r) + r")(?![^\s/'\"<>;:,()\[\]{}])" + TAIL)
        self._rules = [*named, (other, SERVER)]

    def text(self, value: str) -> str:
        """``value`` with every server path replaced."""
        for pattern, replacement in self._rules:
            value = pattern.sub(replacement, value)
        return value

    def json(self, value: Any) -> Any:
        """A copy of a JSON value with every string (keys included) redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.json(v) for k, v in value.items()}
        return value
