"""The lazily exported names of mlac.censor and mlac.data are what they say, whatever was imported before.

A name that is also a submodule's name (``simulated_attack`` once was) would come back as the submodule as soon
as anything imports that submodule directly: no exported name may shadow a submodule.
"""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest


@pytest.mark.parametrize("package", ["mlac.censor", "mlac.data", "mlac.attacks", "mlac.defenses"])
def test_no_exported_name_is_a_submodule_name_and_each_resolves_to_its_object(package: str) -> None:
    pkg = importlib.import_module(package)
    submodules = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
    exported = set(pkg.__all__)
    assert not exported & submodules, f"{package} exports names of its submodules: {sorted(exported & submodules)}"
    for sub in sorted(submodules):  # import every submodule first: the exported names must still be theirs
        importlib.import_module(f"{package}.{sub}")
    for name in exported:
        assert not isinstance(getattr(pkg, name), types.ModuleType), (package, name)
    from mlac.censor import finetune_attack, simulated_attack

    assert callable(simulated_attack) and callable(finetune_attack)
