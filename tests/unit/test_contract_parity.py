"""CLI, API and core declare the same audit overrides and verdict thresholds.

The verdict thresholds are declared three times (the API's ``VerdictOptions``, the core's ``VerdictPolicy``,
the CLI's ``--verdict-*`` flags) and the audit overrides twice (the API's ``AuditOptions``, the core's
``AuditOverrides``, which the CLI builds from its flags). These tests fail when one of them gains, loses or
renames a field, quotes another default, or accepts other values than the core does.
"""

from __future__ import annotations

import argparse
import inspect
import re
import typing
from dataclasses import MISSING, fields
from typing import Any

import pytest
from pydantic import ValidationError

from mlac.audit.overrides import SEARCH_FIELDS, AuditOverrides, build_audit_request
from mlac.audit.verdict import STATISTICS, VerdictPolicy
from mlac.cli.audit_cmd import OVERRIDE_FLAGS, VERDICT_FLAGS, build_request_from_args
from mlac.cli.main import build_parser
from mlac.errors import ConfigError
from service.schemas import AuditOptions, VerdictOptions

#: AuditOptions fields that are build_audit_request's inputs (which models to build), not preset overrides.
API_INPUTS = {"baselines": "baselines", "base_checkpoint_id": "base", "tiny_base": "base"}
#: AuditOverrides fields the API does not offer (yet): the attack kinds are a CLI-only choice.
NOT_IN_API = {"kinds"}
#: AuditOverrides fields the CLI has no flag for (the API sets them).
NOT_IN_CLI = {"selection_max", "report_max", "max_length", "split_seed", "verdict"}


def _policy_default(name: str) -> Any:
    default = next(f.default for f in fields(VerdictPolicy) if f.name == name)
    assert default is not MISSING, f"VerdictPolicy.{name} has no default"
    return default


def _audit_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["audit"]


def _actions() -> dict[str, argparse.Action]:
    return {a.dest: a for a in _audit_parser()._actions}


def test_api_audit_options_and_core_overrides_declare_the_same_fields() -> None:
    api = set(AuditOptions.model_fields)
    core = {f.name for f in fields(AuditOverrides)}
    assert api - set(API_INPUTS) == core - NOT_IN_API
    params = set(inspect.signature(build_audit_request).parameters)
    assert set(API_INPUTS.values()) <= params  # each API-only input has its place in the one merge


def test_api_verdict_options_and_verdict_policy_declare_the_same_fields() -> None:
    assert list(VerdictOptions.model_fields) == [f.name for f in fields(VerdictPolicy)]
    assert AuditOptions.model_fields["verdict"].annotation is VerdictOptions


def test_api_verdict_defaults_are_the_policys() -> None:
    """Every API verdict field defaults to None (the policy's own default applies), and a description that quotes
    a default quotes VerdictPolicy's."""
    for name, info in VerdictOptions.model_fields.items():
        assert info.default is None, name
        quoted = re.findall(r"\((\d+(?:\.\d+)?)\)", info.description or "")
        for value in quoted:
            assert float(value) == _policy_default(name), f"VerdictOptions.{name} quotes {value}"
    statistic = typing.get_args(typing.get_args(VerdictOptions.model_fields["statistic"].annotation)[0])
    assert set(statistic) == set(STATISTICS)


@pytest.mark.parametrize("name", ["delta_random", "epsilon_beneficial", "competence_margin", "collapse_margin",
                                  "min_data_cost_multiplier"])
def test_api_and_policy_accept_the_same_threshold_values(name: str) -> None:
    for value in (-0.01, 0.0, 0.5, 1.0, 1.01):
        setting: dict[str, Any] = {name: value}
        try:
            VerdictPolicy(**setting)
            core_ok = True
        except ConfigError:
            core_ok = False
        try:
            VerdictOptions(**setting)
            api_ok = True
        except ValidationError:
            api_ok = False
        assert api_ok == core_ok, f"{name}={value}: API {'accepts' if api_ok else 'refuses'}, core does not agree"


def test_cli_flags_map_onto_override_and_policy_fields() -> None:
    actions = _actions()
    overrides = {f.name for f in fields(AuditOverrides)}
    assert set(OVERRIDE_FLAGS) <= overrides and set(OVERRIDE_FLAGS) <= set(actions)
    assert set(OVERRIDE_FLAGS) | NOT_IN_CLI == overrides
    assert set(SEARCH_FIELDS) <= set(OVERRIDE_FLAGS)
    policy = [f.name for f in fields(VerdictPolicy)]
    assert set(VERDICT_FLAGS) <= set(actions)
    assert len(set(VERDICT_FLAGS.values())) == len(VERDICT_FLAGS) and set(VERDICT_FLAGS.values()) <= set(policy)
    group = next(g for g in _audit_parser()._action_groups if g.title and g.title.startswith("verdict policy"))
    assert {a.dest for a in group._group_actions} == set(VERDICT_FLAGS)  # every verdict flag is mapped


def test_cli_verdict_flags_quote_the_policys_defaults() -> None:
    actions = _actions()
    for dest, name in VERDICT_FLAGS.items():
        action = actions[dest]
        assert action.default is None, dest  # unset: the preset's policy applies
        for value in re.findall(r"default (\S+?)\)", action.help or ""):
            assert value == str(_policy_default(name)), f"--{dest} help quotes {value}"
    assert tuple(actions["verdict_statistic"].choices or ()) == STATISTICS


def test_cli_flags_give_the_request_the_api_overrides_give() -> None:
    argv = ["audit", "--data", "d.parquet", "--out", "o", "--preset", "smoke", "--sizes", "20,50", "--seeds", "3",
            "--tasks", "harmful", "--kinds", "probe", "--max-trials", "3", "--patience", "2", "--reruns", "1",
            "--verdict-delta", "0.1", "--verdict-epsilon", "0.2", "--verdict-statistic", "ci", "--min-data-cost", "4",
            "--baselines", "random", "--base", "tiny"]
    from_cli = build_request_from_args(build_parser().parse_args(argv))
    api = AuditOptions(sizes=[20, 50], seeds=[3], tasks=["harmful"], max_trials=3, patience=2, reruns=1,
                       verdict=VerdictOptions(delta_random=0.1, epsilon_beneficial=0.2, statistic="ci",
                                              min_data_cost_multiplier=4.0))
    plain: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                             for k, v in api.model_dump(exclude={*API_INPUTS, "verdict"}).items()}
    overrides = AuditOverrides(kinds=("probe",), verdict=api.verdict.model_dump(exclude_none=True), **plain)
    from_api = build_audit_request("smoke", dataset="d.parquet", base="tiny", baselines=("random",), overrides=overrides)
    assert from_cli == from_api
    assert from_cli.verdict == VerdictPolicy(delta_random=0.1, epsilon_beneficial=0.2, statistic="ci",
                                             min_data_cost_multiplier=4.0)
    assert (from_cli.sizes, from_cli.search.max_trials, from_cli.space.kinds) == ((20, 50), 3, ("probe",))


def test_job_kinds_and_defenses_are_declared_once() -> None:
    """The API's job kinds are mlac.jobs.JOB_KINDS, and its defense union offers exactly the registered defenses."""
    import typing

    from mlac.defenses import BUILT_IN
    from mlac.jobs import JOB_KINDS
    from service.schemas import DefenseOptions, JobKind

    assert typing.get_args(JobKind) == JOB_KINDS
    union = typing.get_args(typing.get_args(DefenseOptions)[0])
    names = {typing.get_args(member.model_fields["name"].annotation)[0] for member in union}
    assert names == set(BUILT_IN)
