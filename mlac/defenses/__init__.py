"""Defenses as plug-ins: a :class:`Defense` turns a base checkpoint into a defended one, found by name in a registry.

Built in: ``mlac`` (:mod:`~mlac.defenses.mlac_censor`), ``ac`` (adversarial censoring, K = 0:
:mod:`~mlac.defenses.adversarial`) and ``beneficial_only`` (:mod:`~mlac.defenses.beneficial_only`). Adding one is
a module with a class like theirs, passed to :func:`register` (see :mod:`mlac.defenses.base`); other packages
add theirs through the entry-point group ``mlac_audit.defenses`` (:mod:`mlac.plugins`).
"""

from __future__ import annotations

from mlac.defenses import adversarial, beneficial_only, mlac_censor
from mlac.defenses.base import (
    Defense,
    DefenseCall,
    DefenseResult,
    DefenseSpec,
    defense_names,
    get_defense,
    register,
    run_defense,
    unregister,
)
from mlac.plugins import DEFENSES_GROUP, load_plugins

#: The built-in defenses (registered on import).
BUILT_IN = (mlac_censor.DEFENSE.name, adversarial.DEFENSE.name, beneficial_only.DEFENSE.name)
#: Defenses other packages offer (entry points ``mlac_audit.defenses``), imported here: they register themselves.
PLUGINS = load_plugins(DEFENSES_GROUP)

__all__ = ["BUILT_IN", "Defense", "DefenseCall", "DefenseResult", "DefenseSpec", "defense_names",
           "get_defense", "register", "run_defense", "unregister"]
