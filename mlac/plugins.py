"""Third-party attacks and defenses: modules named in the entry-point groups ``mlac_audit.attacks`` and
``mlac_audit.defenses`` are imported when :mod:`mlac.attacks` / :mod:`mlac.defenses` are, so that their
registration runs in every process that needs it (a Ray worker imports the package, never the user's script).

A package offers ``my_attack`` with ``[project.entry-points."mlac_audit.attacks"] my_attack = "my_pkg.my_attack"``
in its pyproject; the module calls :func:`mlac.attacks.register_attack` when imported.
"""

from __future__ import annotations

import importlib
import logging
from importlib import metadata

log = logging.getLogger(__name__)
ATTACKS_GROUP = "mlac_audit.attacks"
DEFENSES_GROUP = "mlac_audit.defenses"


def load_plugins(group: str) -> list[str]:
    """Import every module the entry-point ``group`` names; a module that fails to import is logged and skipped
    (one broken plug-in must not take the built-ins down). Returns the names loaded."""
    loaded = []
    for ep in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
        try:
            importlib.import_module(ep.module)
        except Exception:
            log.exception("plug-in %s (%s) of %s failed to import and is skipped", ep.name, ep.value, group)
            continue
        loaded.append(ep.name)
    return loaded
