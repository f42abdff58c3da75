"""Per-piece cache: every finished piece of the study leaves a JSON marker, so a rerun skips it."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger("replication")
T = TypeVar("T")


class Pieces:
    """JSON markers under ``<out>/pieces``; :meth:`run` computes a piece only when its marker is missing."""

    def __init__(self, out: Path) -> None:
        self.dir = out / "pieces"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.computed: list[str] = []
        self.reused: list[str] = []

    def path(self, name: str) -> Path:
        """Marker file of piece ``name`` (slashes make sub-folders)."""
        safe = "/".join(re.sub(r"[^A-Za-z0-9_.=-]+", "_", part) for part in name.split("/"))
        return self.dir / f"{safe}.json"

    def get(self, name: str) -> Any | None:
        """The stored value of a finished piece, or None."""
        path = self.path(name)
        if not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))["value"]

    def put(self, name: str, value: Any, wall_s: float = 0.0, cpu_s: float = 0.0) -> None:
        """Record piece ``name`` as finished (atomic write)."""
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"name": name, "wall_s": wall_s, "cpu_s": cpu_s, "value": value}, indent=1, sort_keys=True),
                       encoding="utf-8")
        os.replace(tmp, path)

    def run(self, name: str, fn: Callable[[], T]) -> T:
        """``fn()`` unless piece ``name`` is already finished; its (JSON-able) value either way."""
        cached = self.get(name)
        if cached is not None:
            self.reused.append(name)
            return cached  # type: ignore[no-any-return]
        started, cpu = time.monotonic(), time.process_time()
        log.info("piece %s ...", name)
        value = fn()
        wall, cpu = time.monotonic() - started, time.process_time() - cpu
        self.put(name, value, wall, cpu)
        self.computed.append(name)
        log.info("piece %s done in %.1fs wall, %.1fs CPU", name, wall, cpu)
        return value

    def wall_s(self, name: str, key: str = "wall_s") -> float:
        """Wall (or, with ``key="cpu_s"``, CPU) seconds recorded for a finished piece (0 when unknown)."""
        path = self.path(name)
        return float(json.loads(path.read_text(encoding="utf-8")).get(key, 0.0)) if path.is_file() else 0.0
