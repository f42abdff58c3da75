"""mlac: the pure core of mlac-audit.

MLAC censoring (Meta-Learned Adversarial Censoring) and the few-shot adversarial fine-tuning audit,
in plain PyTorch + transformers + datasets + optuna. This package imports neither Ray nor any web
framework: the Ray layer lives in ``workers`` and the HTTP layer in ``service``.

Two one-call entry points, loaded on first use (``import mlac`` stays light)::

    import mlac
    censored = mlac.censor("tiny", data="data/bios.parquet", out="runs/censored", outer_steps=150, inner_steps=2)
    result = mlac.audit("runs/censored", data="data/bios.parquet", out="runs/audit", base="tiny",
                        baselines=["random", "base"], preset="quick")
    print(result.verdict.status)  # PASS | FAIL | INCONCLUSIVE; runs/audit holds result.json and report.html

``mlac.audit`` and ``mlac.censor`` are the subpackages :mod:`mlac.audit` and :mod:`mlac.censor` made callable:
``mlac.audit.presets`` is still the module, and calling ``mlac.audit(...)`` runs :func:`run_audit_call`,
``mlac.censor(...)`` :func:`run_censor_call`.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlac.audit.result_schema import AuditResult
    from mlac.censor.config import MLACConfig
    from mlac.censor.train import CensorResult

__version__ = "0.1.0"

#: The audit presets, lightest first (= the keys of :data:`mlac.audit.presets.PRESETS`).
PRESET_NAMES: tuple[str, ...] = ("smoke", "quick", "paper", "strong")
#: The preset an audit uses when none is named: ``mlac-audit audit``, ``mlac-audit submit``, the API's
#: ``JobCreate.preset`` and :func:`run_audit_call` all default to it (tests check that they agree).
DEFAULT_PRESET = "smoke"


def run_audit_call(*models: str | Path, data: str | Path, out: str | Path, base: str | Path | None = None,
                   baselines: Iterable[str] = (), preset: str = DEFAULT_PRESET, device: str = "auto",
                   storage_url: str | None = None, progress: Callable[[dict[str, Any]], None] | None = None,
                   **overrides: Any) -> AuditResult:
    """Audit the checkpoint directories ``models`` on the dataset ``data`` (a .parquet of ``mlac-audit data``)
    into ``out``, as ``mlac-audit audit`` does; what ``mlac.audit(...)`` calls. Returns the AuditResult.

    ``base``: a checkpoint directory or ``"tiny"``, what the baselines (``random``, ``base``,
    ``beneficial_tuned``, ``ac``) are built from. ``preset``: one of :data:`PRESET_NAMES`. ``overrides``: the
    fields of :class:`mlac.audit.overrides.AuditOverrides` (``sizes=[20]``, ``seeds=[0]``, ``max_trials=3``,
    ``verdict={"delta_random": 0.05}``, ...). ``out`` resumes: finished Optuna trials are reused. Errors a user
    can cause are :class:`mlac.errors.MlacError` (ConfigError, DataError, CheckpointError). Example::

        result = mlac.audit("runs/censored", data="bios.parquet", out="runs/audit", base="tiny",
                            baselines=["random", "base"], preset="smoke", sizes=[20])
        print(result.verdict.status, [(c.model, c.task, c.n, c.mean) for c in result.curves])
    """
    from mlac.audit.overrides import AuditOverrides, build_audit_request
    from mlac.audit.runner import run_audit
    from mlac.errors import ConfigError

    try:
        options = AuditOverrides(**overrides)
    except TypeError as exc:  # an unknown keyword: name the known ones
        known = ", ".join(sorted(AuditOverrides.__dataclass_fields__))
        raise ConfigError(f"mlac.audit: {exc}; the overrides are {known}") from None
    request = build_audit_request(preset, dataset=str(data), models=tuple(str(m) for m in models),
                                  base=None if base is None else str(base), baselines=tuple(baselines),
                                  device=device, overrides=options)
    request.validate()
    result: AuditResult = run_audit(request, Path(out), progress=progress, storage_url=storage_url)
    return result


def run_censor_call(base: str | Path, *, data: str | Path, out: str | Path, config: MLACConfig | None = None,
                    split_seed: int = 0, base_steps: int = 300, resume: bool = True,
                    progress: Callable[[dict[str, Any]], None] | None = None,
                    should_stop: Callable[[], bool] | None = None, **changes: Any) -> CensorResult:
    """MLAC-censor ``base`` on the train split of ``data`` and save the censored checkpoint in ``out``, as
    ``mlac-audit censor`` does (without its closing attack summary); what ``mlac.censor(...)`` calls.

    ``base``: a checkpoint directory, ``"tiny"`` (a BERT-tiny-shaped model trained ``base_steps`` steps on both
    labels first, saved under ``out/base``) or ``"minilm"`` (the offline MiniLM-L6). ``config``: an
    :class:`~mlac.censor.config.MLACConfig` (default: its defaults); ``changes``: its fields to change
    (``outer_steps=150``, ``inner_steps=2``, ...). The resume state is kept in ``out/mlac_resume``; with
    ``resume`` a second call continues from it. Returns the :class:`~mlac.censor.train.CensorResult` (its
    ``model`` holds the best validated weights, ``weights_sha256`` the saved file's hash). Example::

        censored = mlac.censor("tiny", data="bios.parquet", out="runs/censored", outer_steps=150, inner_steps=2)
        print(censored.best_step, censored.weights_sha256)
    """
    from mlac.censor.config import MLACConfig
    from mlac.censor.train import train_mlac
    from mlac.cli.base_cmd import build_tiny_base, check_model_arg
    from mlac.data import load_saved_dataset, make_splits
    from mlac.device import resolve_device
    from mlac.errors import ConfigError
    from mlac.models import load_checkpoint, load_minilm

    cfg = config or MLACConfig()
    try:
        cfg = cfg.replace(**changes) if changes else cfg
    except TypeError as exc:
        known = ", ".join(sorted(MLACConfig.__dataclass_fields__))
        raise ConfigError(f"mlac.censor: {exc}; the MLACConfig fields are {known}") from None
    check_model_arg("base", str(base), keywords=("tiny", "minilm"))
    out_dir, device = Path(out), resolve_device(cfg.device)
    ds, task = load_saved_dataset(Path(data))
    splits = make_splits(ds, seed=split_seed)
    num_ben = task.num_labels("beneficial")
    if str(base) == "tiny":
        model, tok, parent = build_tiny_base(Path(data), out_dir / "base", steps=base_steps, seed=cfg.seed,
                                             split_seed=split_seed, max_length=cfg.max_length, device=str(device))
    else:
        loaded = (load_minilm(num_ben, seed=cfg.seed, device=device) if str(base) == "minilm"
                  else load_checkpoint(base, num_beneficial=num_ben, seed=cfg.seed, device=device))
        model, tok, parent = loaded.model, loaded.tokenizer, loaded.sha256
    return train_mlac(model, tok, splits.train, task, cfg, out_dir=out_dir, progress=progress,
                      should_stop=should_stop, resume=resume, parent_sha256=parent,
                      dataset_fingerprint=splits.fingerprints.get("train"), beneficial_names=task.beneficial_names)


#: Subpackages that are also one-call entry points, and the function a call runs.
_CALLS: dict[str, Callable[..., Any]] = {"mlac.audit": run_audit_call, "mlac.censor": run_censor_call}


class _CallablePackage(types.ModuleType):
    """A subpackage that can be called: ``mlac.audit(...)`` runs an audit, ``mlac.audit.presets`` is a module."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _CALLS[self.__name__](*args, **kwargs)


class _Mlac(types.ModuleType):
    """The ``mlac`` package: makes ``audit`` and ``censor`` callable when the import system attaches them (a
    function of the same name would be replaced by the subpackage as soon as anything imports it)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if (isinstance(value, types.ModuleType) and value.__name__ in _CALLS
                and not isinstance(value, _CallablePackage)):
            value.__class__ = _CallablePackage
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Mlac


def __getattr__(name: str) -> Any:
    if f"mlac.{name}" in _CALLS:  # first use of mlac.audit / mlac.censor: import it (light), callable
        module = importlib.import_module(f"mlac.{name}")
        if not isinstance(module, _CallablePackage):  # imported before this module was (never, in practice)
            module.__class__ = _CallablePackage
        return module
    raise AttributeError(f"module 'mlac' has no attribute {name!r}")
