"""The ``mlac-audit`` parser: built without heavy imports (so ``--help`` answers at once), every command described
and every flag helped, one preset default everywhere, one-line usage errors, constants that mirror heavy modules."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import typing

import pytest

from mlac.cli.main import build_parser, main

HEAVY = ("torch", "transformers", "datasets", "ray", "optuna")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "RAY_USAGE_STATS_ENABLED": "0"}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every (nested) sub-command parser by its prog."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found[child.prog] = child
                found.update(_subparsers(child))
    return found


def test_help_builds_the_parser_without_heavy_packages() -> None:
    out = subprocess.run([sys.executable, "-m", "mlac.cli.main", "--help"], capture_output=True, text=True, env=ENV,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "upload-checkpoint" in out.stdout and "upload-dataset" in out.stdout
    code = ("import sys\nfrom mlac.cli.main import build_parser\nbuild_parser()\n"
            f"print(','.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120,
                            check=True).stdout.strip()
    assert loaded == "", f"building the parser imported {loaded}"


def test_import_mlac_is_light_and_entry_points_are_callable_packages() -> None:
    code = ("import sys, mlac\nassert callable(mlac.audit) and callable(mlac.censor)\n"
            "import mlac.audit.overrides as o\nassert callable(mlac.audit) and mlac.audit.overrides is o\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'fastapi', 'httpx'}))\n")
    light = ("import sys, mlac\nmlac.audit, mlac.censor\n"
             f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300,
                          check=True).stdout.strip() == "[]"
    assert subprocess.run([sys.executable, "-c", light], capture_output=True, text=True, env=ENV, timeout=120,
                          check=True).stdout.strip() == "[]"


def test_every_command_has_a_description_and_every_flag_a_help() -> None:
    parsers = _subparsers(build_parser())
    assert {"mlac-audit audit", "mlac-audit censor", "mlac-audit data synth", "mlac-audit watch",
            "mlac-audit upload-checkpoint", "mlac-audit upload-dataset"} <= set(parsers)
    missing = []
    for prog, p in parsers.items():
        if not p.description:
            missing.append(f"{prog}: no description")
        for action in p._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not action.help:
                missing.append(f"{prog} {'/'.join(action.option_strings) or action.dest}: no help")
    assert missing == []


def test_storage_help_names_the_real_default() -> None:
    audit = _subparsers(build_parser())["mlac-audit audit"]
    storage = next(a for a in audit._actions if "--storage" in a.option_strings)
    assert "SQLite" in (storage.help or "") and "optuna.db" in (storage.help or "")
    assert "journal" not in (storage.help or "")


def test_one_preset_default_for_audit_submit_and_the_api() -> None:
    import mlac
    from mlac.audit.presets import PRESETS
    from service.schemas import JobCreate

    parsers = _subparsers(build_parser())
    defaults = {prog: next(a.default for a in parsers[prog]._actions if "--preset" in a.option_strings)
                for prog in ("mlac-audit audit", "mlac-audit submit")}
    assert defaults == {"mlac-audit audit": mlac.DEFAULT_PRESET, "mlac-audit submit": mlac.DEFAULT_PRESET}
    assert JobCreate.model_fields["preset"].default == mlac.DEFAULT_PRESET
    assert tuple(PRESETS) == mlac.PRESET_NAMES
    assert typing.get_args(JobCreate.model_fields["preset"].annotation) == mlac.PRESET_NAMES
    import inspect

    assert inspect.signature(mlac.run_audit_call).parameters["preset"].default == mlac.DEFAULT_PRESET


def test_light_constants_mirror_the_heavy_modules() -> None:
    from mlac.audit.protocol import BASELINES
    from mlac.censor.train import RESUME_DIR
    from mlac.cli import audit_cmd, censor_cmd
    from mlac.jobs import JOB_KINDS
    from service import cli as service_cli

    assert service_cli.SUBMIT_KINDS == JOB_KINDS
    assert audit_cmd.BASELINE_NAMES == BASELINES
    assert censor_cmd.RESUME_DIR == RESUME_DIR


@pytest.mark.parametrize("argv", [
    ["audit", "--data", "d.parquet", "--out", "o", "--sizes", "20,a"],
    ["audit", "--data", "d.parquet", "--out", "o", "--preset", "fast"],
    ["censor", "--data", "d.parquet", "--out", "o", "--base", "tiny", "--steps", "many"],
])
def test_a_bad_flag_value_is_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"mlac-audit {argv[0]}: error: argument") and "usage:" not in err
