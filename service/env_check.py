"""Unknown ``MLAC_`` variables are named at start-up instead of being silently ignored.

:class:`~service.settings.Settings` ignores variables it does not know (``extra="ignore"``), so a typo or a
name from older docs (``MLAC_ADMIN_API_KEY`` for ``MLAC_ADMIN_KEY``, the removed ``MLAC_WEBHOOK_SECRET``)
would otherwise leave a deployment on a default without a word. :func:`unknown_variables` lists them with the
closest known name; the service logs one warning line at start-up.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import AliasChoices

from service.settings import Settings

#: Read outside the service settings: the client commands (service.cli), the container entry point and health
#: check (docker/), and the Ray layer (workers.settings, added in :func:`known_variables`).
OTHER_READERS = ("MLAC_URL", "MLAC_API_KEY", "MLAC_CONFIG", "MLAC_PORT", "MLAC_HOST", "MLAC_ROLE_FILE",
                 "MLAC_HEALTHCHECK_TIMEOUT", "MLAC_FUZZ_EXAMPLES")
#: Documented for a feature that does not exist yet: named with the reason instead of a guess (none today).
NOT_YET_READ: dict[str, str] = {}

#: Read once, no longer: named with what replaced them.
REMOVED = {"MLAC_WEBHOOK_SECRET": "removed: each API key signs with its own secret (GET /v1/webhooks/secret)",
           "MLAC_ALLOW_PRIVATE_WEBHOOKS": "removed: list internal receivers in MLAC_WEBHOOK_ALLOW"}


@dataclass(frozen=True)
class UnknownVariable:
    """An ``MLAC_`` variable nothing reads, and what the user probably meant."""

    name: str
    hint: str | None

    def __str__(self) -> str:
        return f"{self.name} ({self.hint})" if self.hint else self.name


def known_variables() -> set[str]:
    """Every ``MLAC_`` name some part of mlac-audit reads (``*_FILE`` forms are checked against these)."""
    from workers.artifacts.access import ARTIFACT_URL_ENV
    from workers.artifacts.cache import CACHE_DIR_ENV, CACHE_MAX_ENV
    from workers.settings import DRIVER_RESOURCES_ENV, ENV_FIELDS, TRIAL_RESOURCES_ENV

    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    names = {prefix + field.upper() for field in Settings.model_fields}
    for info in Settings.model_fields.values():
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias] if isinstance(alias, str) else []
        names.update(c.upper() for c in choices if isinstance(c, str))
    workers = {TRIAL_RESOURCES_ENV, DRIVER_RESOURCES_ENV, ARTIFACT_URL_ENV, CACHE_DIR_ENV, CACHE_MAX_ENV}
    return {n for n in names | set(ENV_FIELDS) | workers | set(OTHER_READERS) if n.startswith("MLAC_")}


def unknown_variables(environ: Mapping[str, str]) -> list[UnknownVariable]:
    """The ``MLAC_`` variables of ``environ`` that nothing reads, sorted, each with a hint where one helps."""
    known = known_variables()
    out: list[UnknownVariable] = []
    for name in sorted(environ):
        base = name.removesuffix("_FILE")  # the container entry point turns VAR_FILE into VAR
        if not name.startswith("MLAC_") or name in known or base in known:
            continue
        reason = NOT_YET_READ.get(base) or REMOVED.get(base)
        if reason is not None:
            out.append(UnknownVariable(name, reason))
            continue
        close = difflib.get_close_matches(base, sorted(known), n=1, cutoff=0.75)
        out.append(UnknownVariable(name, f"did you mean {close[0]}?" if close else None))
    return out
