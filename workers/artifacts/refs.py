"""References to published trees: what job and trial specs carry instead of paths.

``mlac-artifact://<tree id>/<folder>`` names a directory published from a folder called ``<folder>``;
``mlac-artifact://<tree id>/<folder>/<file>`` a file in it (a dataset's ``data.parquet``). The folder's name is kept
because the audit labels a model by its folder's name (``censored``, an uploaded checkpoint's id): a model fetched on
another node keeps its label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workers.artifacts.store import ArtifactError, check_key

SCHEME = "mlac-artifact://"
_REF = re.compile(r"mlac-artifact://([0-9a-f]{64})/([^/]+)(?:/(.+))?")


@dataclass(frozen=True)
class ArtifactRef:
    """A tree, the folder name it was published from and, optionally, one file in it."""

    tree_id: str
    folder: str
    file: str | None = None

    def __post_init__(self) -> None:
        check_key(self.folder)
        if self.file is not None:
            check_key(self.file)

    def __str__(self) -> str:
        return f"{SCHEME}{self.tree_id}/{self.folder}" + (f"/{self.file}" if self.file else "")

    @classmethod
    def parse(cls, value: str) -> ArtifactRef:
        """Inverse of ``str``; ArtifactError for anything else."""
        m = _REF.fullmatch(value)
        if m is None:
            raise ArtifactError(f"not an artifact reference: {value!r}")
        return cls(m.group(1), m.group(2), m.group(3) or None)


def is_ref(value: object) -> bool:
    """Whether ``value`` is a string in the reference form."""
    return isinstance(value, str) and value.startswith(SCHEME)
