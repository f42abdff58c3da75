"""What a job will cost before it runs: upper bounds on its fine-tuning runs and optimizer steps.

Pure arithmetic on an :class:`~mlac.audit.protocol.AuditRequest` (and a defense run's config: a censor run's
:class:`~mlac.censor.config.MLACConfig`, or any :class:`~mlac.defenses.DefenseSpec`), so the service can refuse or
price a job at submission.

How the bound follows from :class:`~mlac.audit.study.StudyDriver` (one study per model x task x size x
seed, baselines included):

* the search phase runs at most ``max_trials`` trials: the budget counts every finished trial (complete,
  pruned or failed), the reference grid of ``grid_start`` is enqueued *inside* that budget (it is not
  added to it), and trials a crash left running are re-run under their own numbers (no extra budget);
  patience can only stop it earlier;
* then the winner is re-run exactly ``reruns`` times (fewer only when stored reruns are reused).

So a study runs at most ``max_trials + reruns`` trial runs, exactly that when patience never fires
(e.g. ``patience >= max_trials``). Each run takes at most the largest steps value of the search space
(grid members and reruns use values inside it too); pruning only shortens runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mlac.audit.protocol import TINY_BASE, AuditRequest, model_labels
from mlac.audit.space import SearchSpace
from mlac.censor.config import MLACConfig

if TYPE_CHECKING:
    from mlac.defenses import DefenseSpec


@dataclass(frozen=True)
class AuditCost:
    """Upper bounds of one audit's work."""

    models: int  #: models audited, baselines included
    studies: int  #: one search per model x task x size x seed
    search_trials: int  #: at most ``max_trials`` per study (the reference grid is part of it)
    reruns: int  #: ``reruns`` per study: the winner re-run with fresh seeds
    trial_runs: int  #: search_trials + reruns: every fine-tuning run of the attacker
    attack_steps: int  #: trial_runs x the largest steps value of the search space
    baseline_steps: int  #: training steps that build the baselines (tiny base, beneficial fine-tune, AC)


@dataclass(frozen=True)
class CensorCost:
    """The work of one defense run (MLAC's censoring run; K = 0 for a defense without simulated fine-tuning)."""

    outer_steps: int
    inner_steps: int  #: simulated fine-tuning steps per outer step (K)
    inner_updates: int  #: outer_steps x inner_steps


@dataclass(frozen=True)
class JobCost:
    """A job's estimate: the audit part, the censor part, and the totals quotas compare."""

    trial_runs: int
    attack_steps: int
    censor_steps: int
    audit: AuditCost | None = None
    censor: CensorCost | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return asdict(self)


def max_steps(space: SearchSpace) -> int:
    """The largest steps value a trial of ``space`` can have (the top of its steps grid)."""
    return space.steps_min + (space.steps_max - space.steps_min) // space.steps_step * space.steps_step


def baseline_steps(request: AuditRequest) -> int:
    """Training steps the baselines of ``request`` take when none is cached yet."""
    if not request.baselines:
        return 0
    cfg = request.baseline_config
    steps = cfg.tiny_base_steps if request.base == TINY_BASE else 0
    if "beneficial_tuned" in request.baselines:
        steps += cfg.beneficial_steps
    if "ac" in request.baselines:
        steps += cfg.ac_steps
    return steps


def audit_cost(request: AuditRequest, *, extra_models: int = 0) -> AuditCost:
    """Upper bounds of ``request`` (see the module docstring). ``extra_models``: models added when the job
    runs (a ``defend_then_audit`` job audits the defended model too)."""
    models = len(model_labels(request)) + extra_models
    studies = models * len(request.tasks) * len(request.sizes) * len(request.seeds)
    search, reruns = studies * request.search.max_trials, studies * request.search.reruns
    runs = search + reruns
    return AuditCost(models=models, studies=studies, search_trials=search, reruns=reruns, trial_runs=runs,
                     attack_steps=runs * max_steps(request.space), baseline_steps=baseline_steps(request))


def censor_cost(config: MLACConfig) -> CensorCost:
    """The outer and simulated inner steps of one censoring run."""
    return CensorCost(outer_steps=config.outer_steps, inner_steps=config.inner_steps,
                      inner_updates=config.outer_steps * config.inner_steps)


def defense_cost(defense: DefenseSpec) -> CensorCost:
    """The defender steps and simulated inner steps of one defense run (:meth:`Defense.training_steps`)."""
    outer, inner = defense.steps()
    return CensorCost(outer_steps=outer, inner_steps=inner, inner_updates=outer * inner)


def job_cost(audit: AuditCost | None, censor: CensorCost | None) -> JobCost:
    """Totals of a job made of an audit, a censoring run, or both."""
    return JobCost(trial_runs=audit.trial_runs if audit else 0, attack_steps=audit.attack_steps if audit else 0,
                   censor_steps=censor.inner_updates if censor else 0, audit=audit, censor=censor)
