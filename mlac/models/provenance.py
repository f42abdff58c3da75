"""Provenance records: what a checkpoint is, where it came from, and with which software."""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path

TRACKED_PACKAGES = ("mlac-audit", "torch", "transformers", "datasets", "optuna", "safetensors", "numpy")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that decide a result (missing ones are omitted)."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def code_version() -> str:
    """This code's version: the package version, plus ``+g<commit>`` (and ``.dirty``) when it runs from a git checkout."""
    import subprocess

    try:
        version = metadata.version("mlac-audit")
    except metadata.PackageNotFoundError:
        version = "unknown"
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return version
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{commit}{'.dirty' if dirty else ''}" if commit else version
