"""`import mlac` (and its subpackages) must pull in neither Ray nor any web framework."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import mlac


def test_core_imports_no_ray_or_http() -> None:
    modules = sorted(m.name for m in pkgutil.walk_packages(mlac.__path__, "mlac."))
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'fastapi', 'starlette', 'uvicorn', 'sqlalchemy'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"mlac imported: {out.stdout.strip()}"
    assert len(modules) >= 5
