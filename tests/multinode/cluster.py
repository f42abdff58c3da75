"""A real multi-node Ray cluster on one machine, started with ``ray start`` (used by the tests and the benchmark).

Each node is one ``ray start --block`` process in its own session (process group): stopping a node signals
that group only, never ``ray stop`` (which would stop every Ray on the machine, other people's included).
Token authentication stays on: every node, the drivers and the service get ``RAY_AUTH_MODE=token`` and the
same ``RAY_AUTH_TOKEN_PATH``. Ray's temp dirs live under the caller's folder behind short symlinks
(:func:`workers.runtime.short_temp_dir`), because Ray's AF_UNIX socket paths must stay under 107 bytes.

Several nodes on one machine need cluster mode (``ray start --address`` refuses to join otherwise), so the
nodes advertise the machine's routable address and Ray's servers bind every interface; the token is what
guards them. Each node's dashboard agent gets its own free port (the default 52365 would collide).

A node started with ``hidden=[...]`` plays a separate machine: its ``ray start`` runs in its own mount namespace
(``unshare --mount``, private propagation) with an empty tmpfs mounted over each hidden folder, so neither it nor
any worker it starts can see the files there (the API's data directory, the other nodes' caches); it shares
the network, so it still reaches the GCS, the API and a local S3 server. :func:`mount_namespace_refusal` says why
the kernel refuses that, if it does.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from workers.runtime import ensure_token, short_temp_dir

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
REDIS_PORT = 6379  # held by Redis on these machines: never used for the GCS
#: Custom resource the test nodes advertise and every trial asks for (``MLAC_RAY_TRIAL_RESOURCES``).
TRIAL_RESOURCE = "mlac_trial"


def free_port() -> int:
    """A currently free TCP port on loopback (never 6379)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != REDIS_PORT:
            return port


def hidden_command(cmd: list[str], hidden: list[Path]) -> list[str]:
    """``cmd`` run in a new mount namespace with an empty tmpfs over each of ``hidden`` (which must exist)."""
    mounts = " && ".join(f"mount -t tmpfs -o size=4g,mode=0700 mlac-hidden {shlex.quote(str(p))}" for p in hidden)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{mounts} && exec "$@"', "sh", *cmd]


def mount_namespace_refusal(scratch: Path) -> str | None:
    """None where :func:`hidden_command` works here; else why not (no unshare, or the kernel or the container
    refuses a mount namespace or a tmpfs mount in it)."""
    if shutil.which("unshare") is None:
        return "no unshare(1) on this machine (util-linux)"
    probe = scratch / "mount-probe"
    probe.mkdir(parents=True, exist_ok=True)
    (probe / "visible").write_text("x", encoding="utf-8")
    cmd = hidden_command(["sh", "-c", f"test ! -e {shlex.quote(str(probe / 'visible'))}"], [probe])
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare --mount failed: {exc}"
    if done.returncode != 0:
        return f"the kernel refused a mount namespace with a tmpfs: {(done.stderr or done.stdout).strip()[:300]}"
    return None


def quiet_env(token_path: Path) -> dict[str, str]:
    """This process's environment for Ray nodes, drivers and the service: token auth on, no usage stats,
    one torch thread per process, no hub downloads, no inherited cluster address."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path),
           "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1",
           # Patience on a starved 2-core machine (these tests run at nice 19 beside other work): Ray's
           # defaults give its dashboard 60 s to start and a worker process 60 s to register.
           "RAY_DASHBOARD_STARTUP_TIMEOUT_S": "300", "RAY_worker_register_timeout_seconds": "300"}
    for name in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):
        env.pop(name, None)
    return env


class GroupProcess:
    """A subprocess in its own session; stopped (or killed) as a whole process group."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> None:
        self.cmd, self.log = cmd, log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    @property
    def pid(self) -> int:
        """The group leader's pid (also the process group id)."""
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the group leader still runs."""
        return self.proc.poll() is None

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group at once (a node lost with everything on it)."""
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the leader (``ray start --block`` stops its processes), then SIGKILL what is left of the group."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace_s)
        self._signal_group(signal.SIGKILL)  # stragglers (workers, agents) of this group only
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def tail(self, chars: int = 3000) -> str:
        """The end of the process's log (for assertion messages)."""
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


@dataclass
class LocalCluster:
    """A head node and any number of worker nodes, each a separate raylet with its own resources."""

    root: Path
    object_store_bytes: int = 200 * 1024**2
    port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    nodes: list[GroupProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.token_path = ensure_token(self.root / "ray")
        self.env = quiet_env(self.token_path)

    @property
    def address(self) -> str:
        """The GCS address drivers and worker nodes join (``RAY_ADDRESS``)."""
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        """The head's dashboard (loopback only)."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def headers(self) -> dict[str, str]:
        """The token as the dashboard's REST API wants it."""
        return {"Authorization": f"Bearer {self.token_path.read_text(encoding='utf-8').strip()}"}

    def _start(self, name: str, args: list[str], cpus: int, resources: dict[str, float] | None,
               hidden: list[Path] | None = None, env: dict[str, str] | None = None) -> GroupProcess:
        temp = short_temp_dir(self.root / f"t-{name}")
        cmd = [RAY, "start", "--block", "--disable-usage-stats", "--node-ip-address", "127.0.0.1",
               f"--num-cpus={cpus}", "--num-gpus=0", f"--object-store-memory={self.object_store_bytes}",
               f"--temp-dir={temp}", f"--dashboard-agent-listen-port={free_port()}", *args]
        if resources:
            cmd.append(f"--resources={json.dumps(resources)}")
        if hidden:
            cmd = hidden_command(cmd, hidden)
        node = GroupProcess(cmd, {**self.env, **(env or {})}, self.root / f"{name}.log")
        self.nodes.append(node)
        return node

    def start_head(self, cpus: int = 1, resources: dict[str, float] | None = None, timeout_s: float = 360) -> GroupProcess:
        """``ray start --head`` on :attr:`port` (dashboard on 127.0.0.1); returns once the dashboard answers."""
        head = self._start("head", ["--head", f"--port={self.port}", "--dashboard-host=127.0.0.1",
                                    f"--dashboard-port={self.dashboard_port}", f"--ray-client-server-port={free_port()}"],
                           cpus, resources)
        self.wait_for_nodes(1, timeout_s, head)
        return head

    def add_node(self, cpus: int = 1, resources: dict[str, float] | None = None, timeout_s: float = 300,
                 hidden: list[Path] | None = None, env: dict[str, str] | None = None) -> GroupProcess:
        """``ray start --address`` a further node; returns once the cluster lists it alive. ``hidden``: folders the
        node cannot see (a separate machine, see the module docstring); ``env``: its own environment variables."""
        expected = len(self.alive_nodes()) + 1
        node = self._start(f"node{len(self.nodes)}", [f"--address={self.address}"], cpus, resources, hidden, env)
        self.wait_for_nodes(expected, timeout_s, node)
        return node

    def node_table(self) -> list[dict[str, Any]]:
        """Every node the cluster knows (state API through the dashboard, with the token)."""
        r = httpx.get(f"{self.dashboard_url}/api/v0/nodes", params={"limit": 100, "detail": "true"},
                      headers=self.headers(), timeout=10)
        r.raise_for_status()
        return list(r.json()["data"]["result"]["result"])

    def alive_nodes(self) -> list[dict[str, Any]]:
        """The nodes in state ALIVE (``[]`` while the dashboard is not up yet)."""
        try:
            return [n for n in self.node_table() if n.get("state") == "ALIVE"]
        except (httpx.HTTPError, KeyError, ValueError):
            return []

    def wait_for_nodes(self, count: int, timeout_s: float, proc: GroupProcess | None = None) -> list[dict[str, Any]]:
        """Block until exactly ``count`` nodes are alive (AssertionError with the node's log otherwise)."""
        deadline = time.monotonic() + timeout_s
        while True:
            alive = self.alive_nodes()
            if len(alive) == count:
                return alive
            if proc is not None and not proc.alive():
                raise AssertionError(f"{proc.cmd[:4]} exited ({proc.proc.returncode}):\n{proc.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(alive)} alive nodes after {timeout_s:.0f} s, expected {count}:\n"
                                     f"{proc.tail() if proc else ''}")
            time.sleep(0.5)

    def head_id(self) -> str:
        """The head node's id."""
        return next(n["node_id"] for n in self.alive_nodes() if n.get("is_head_node"))

    def worker_ids(self) -> list[str]:
        """The ids of the alive nodes other than the head."""
        return [n["node_id"] for n in self.alive_nodes() if not n.get("is_head_node")]

    def remove_node(self, node: GroupProcess, timeout_s: float = 60) -> None:
        """Stop a worker node gracefully and wait until the cluster no longer lists it alive."""
        expected = len(self.alive_nodes()) - 1
        node.stop()
        self.wait_for_nodes(expected, timeout_s)

    def actor_node_id(self, name: str) -> str | None:
        """The node the alive actor called ``name`` runs on (None while it is not placed)."""
        r = httpx.get(f"{self.dashboard_url}/api/v0/actors", headers=self.headers(), timeout=10,
                      params={"filter_keys": "name", "filter_predicates": "=", "filter_values": name, "detail": "true"})
        r.raise_for_status()
        alive = [a for a in r.json()["data"]["result"]["result"] if a.get("state") == "ALIVE"]
        return str(alive[0]["node_id"]) if alive else None

    def stop(self, grace_s: float = 20.0) -> None:
        """Stop every node (only its own process group): SIGTERM to each ``ray start``, workers before the
        head, then SIGKILL whatever is left after ``grace_s``."""
        for node in reversed(self.nodes):
            if node.alive():
                with contextlib.suppress(ProcessLookupError):
                    node.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for node in reversed(self.nodes):
            node.stop(grace_s=max(0.1, deadline - time.monotonic()))


def nodes_with(cluster: LocalCluster, resource: str) -> list[str]:
    """The ids of the alive nodes that advertise ``resource``."""
    return [n["node_id"] for n in cluster.alive_nodes() if resource in (n.get("resources_total") or {})]
