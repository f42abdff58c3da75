"""The audit engine: attacks, Optuna search, protocol expansion, curves, verdict and report.

Entry points: :func:`mlac.audit.runner.run_audit` (a whole audit), :func:`mlac.audit.presets.build_request`
(a request from a preset), :func:`mlac.audit.trial.run_trial` (one trial from plain data; what
executors run). Submodules are imported where used so that ``import mlac.audit`` stays light.
"""
