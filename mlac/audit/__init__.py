"""The audit engine: attacks, Optuna search, protocol expansion, curves, verdict and report.

Entry points: :func:`mlac.audit.runner.run_audit` (a whole audit), :func:`mlac.audit.presets.build_request`
(a request from a preset), :func:`mlac.audit.trial.run_trial` (one trial from plain data: what a
:class:`~mlac.audit.scheduling.TrialExecutor` runs, in this process or as a Ray task) and
:func:`mlac.audit.scheduling.run_studies_lockstep` (many searches through one executor). The search itself:
:mod:`~mlac.audit.space` (space, budget, reference grid), :mod:`~mlac.audit.study` (one study's driver),
:mod:`~mlac.audit.storage` (Optuna storages). Submodules are imported where used so that ``import mlac.audit``
stays light.
"""
