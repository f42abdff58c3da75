"""The defense seam: what a defense is (:class:`Defense`), the registry, and the typed data that crosses it.

A defense turns a base checkpoint into a defended one on the train split of a dataset (MLAC, adversarial
censoring, a beneficial-only fine-tune, ...). Adding one is one module: a class with a ``name``, a frozen
config dataclass, ``presets`` per audit preset name and ``apply``, passed to :func:`register`. Everything
else (job specs, :func:`mlac.jobs.run_job`, the Ray censor actor, the cost estimate) finds it by name.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from mlac.errors import ConfigError

Progress = Callable[[dict[str, Any]], None]
ShouldStop = Callable[[], bool]


@dataclass(frozen=True)
class DefenseResult:
    """What :meth:`Defense.apply` produced: the defended checkpoint and how its training went."""

    checkpoint: str  #: directory of a loadable checkpoint (``mlac.models.load_checkpoint``)
    weights_sha256: str | None = None
    steps_done: int = 0
    resumed_from: int | None = None  #: the step a resumed run started from (None: from scratch)
    best_step: int | None = None
    best_objective: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain form (what the Ray censor actor returns)."""
        return dataclasses.asdict(self)


@runtime_checkable
class Defense(Protocol):
    """A defense: a name, a typed config, presets per audit preset name, and ``apply``."""

    name: str
    #: The frozen config dataclass :meth:`config_from_dict` builds.
    config_type: type[Any]
    #: Overrides of the config's defaults per audit preset name (``smoke``, ``quick``, ``paper``, ``strong``).
    presets: Mapping[str, Mapping[str, Any]]

    def config_from_dict(self, values: Mapping[str, Any]) -> Any:
        """The validated config (ConfigError naming what to fix, unknown keys included)."""

    def config_to_dict(self, config: Any) -> dict[str, Any]:
        """Plain JSON form of a config (inverse of :meth:`config_from_dict`)."""

    def training_steps(self, config: Any) -> tuple[int, int]:
        """(optimizer steps of the defender, simulated attacker steps per defender step): what a job is priced by."""

    def apply(self, base: str, dataset: str, split_seed: int, config: Any, out_dir: Path, *, device: str | None = None,
              progress: Progress | None = None, should_stop: ShouldStop | None = None) -> DefenseResult:
        """Defend checkpoint ``base`` on the train split (``split_seed``) of ``dataset``; write a loadable checkpoint
        into ``out_dir`` (resuming from a state kept there where the training can). ``device`` overrides the
        config's; ``should_stop`` is polled during training (then StoppedError)."""


_REGISTRY: dict[str, Defense] = {}
_LOCK = threading.Lock()


def register(defense: Defense, *, replace: bool = False) -> Defense:
    """Make ``defense`` known by its name (ConfigError when the name is taken, unless ``replace``)."""
    if not isinstance(defense, Defense):
        raise ConfigError(f"{defense!r} is not a Defense (name, config_type, presets, config_from_dict, "
                          "config_to_dict, training_steps, apply)")
    with _LOCK:
        if defense.name in _REGISTRY and not replace:
            raise ConfigError(f"a defense named {defense.name!r} is already registered")
        _REGISTRY[defense.name] = defense
    return defense


def unregister(name: str) -> None:
    """Forget a defense (tests that register their own)."""
    with _LOCK:
        _REGISTRY.pop(name, None)


def defense_names() -> tuple[str, ...]:
    """Names of the registered defenses, sorted."""
    with _LOCK:
        return tuple(sorted(_REGISTRY))


def get_defense(name: str) -> Defense:
    """The defense registered as ``name`` (ConfigError listing the known names)."""
    with _LOCK:
        found = _REGISTRY.get(name)
    if found is None:
        raise ConfigError(f"unknown defense {name!r}; choose from {', '.join(defense_names())}")
    return found


@dataclass(frozen=True)
class DefenseSpec:
    """A defense by name with its typed config (what a job spec carries)."""

    name: str
    config: Any

    @classmethod
    def build(cls, name: str, preset: str | None = None, overrides: Mapping[str, Any] | None = None) -> DefenseSpec:
        """The defense's config for audit preset ``preset`` (None: the config's defaults) with ``overrides``."""
        defense = get_defense(name)
        if preset is not None and preset not in defense.presets:
            raise ConfigError(f"defense {name!r} has no preset {preset!r}; choose from {', '.join(defense.presets)}")
        values = {**(defense.presets[preset] if preset is not None else {}), **(overrides or {})}
        return cls(name=name, config=defense.config_from_dict(values))

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., "config": {...}}``."""
        return {"name": self.name, "config": get_defense(self.name).config_to_dict(self.config)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DefenseSpec:
        """Inverse of :meth:`to_dict` (the config is validated by its defense)."""
        if not isinstance(data, Mapping) or "name" not in data:
            raise ConfigError(f"a defense is {{'name': ..., 'config': {{...}}}}, got {data!r}")
        unknown = sorted(set(data) - {"name", "config"})
        if unknown:
            raise ConfigError(f"unknown defense keys {unknown}; a defense has 'name' and 'config'")
        config = data.get("config") or {}
        if not isinstance(config, Mapping):
            raise ConfigError(f"defense config must be a mapping, got {type(config).__name__}")
        name = str(data["name"])
        return cls(name=name, config=get_defense(name).config_from_dict(dict(config)))

    def steps(self) -> tuple[int, int]:
        """:meth:`Defense.training_steps` of this config."""
        return get_defense(self.name).training_steps(self.config)


@dataclass(frozen=True)
class DefenseCall:
    """One defense run: what :func:`run_defense` (in this process, or in the Ray censor actor) needs."""

    defense: DefenseSpec
    base: str  #: checkpoint directory to defend
    dataset: str  #: saved dataset (parquet written by ``mlac.data.save_dataset``)
    split_seed: int
    out_dir: str  #: where the defended checkpoint (and any resume state) goes

    def to_dict(self) -> dict[str, Any]:
        """Plain form."""
        return {"defense": self.defense.to_dict(), "base": self.base, "dataset": self.dataset,
                "split_seed": self.split_seed, "out_dir": self.out_dir}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DefenseCall:
        """Inverse of :meth:`to_dict`."""
        return cls(defense=DefenseSpec.from_dict(data["defense"]), base=str(data["base"]), dataset=str(data["dataset"]),
                   split_seed=int(data["split_seed"]), out_dir=str(data["out_dir"]))


def run_defense(call: DefenseCall, *, device: str | None = None, progress: Progress | None = None,
                should_stop: ShouldStop | None = None) -> DefenseResult:
    """Run ``call`` with its registered defense (a defense that keeps a resume state in ``out_dir`` continues it)."""
    defense = get_defense(call.defense.name)
    out = Path(call.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return defense.apply(call.base, call.dataset, call.split_seed, call.defense.config, out, device=device,
                         progress=progress, should_stop=should_stop)


__all__ = ["Defense", "DefenseCall", "DefenseResult", "DefenseSpec", "defense_names", "get_defense",
           "register", "run_defense", "unregister"]
