"""``mlac-audit serve`` (the embedded service) and thin HTTP client commands: ``submit``, ``status``, ``watch``,
``result``. Registered through the entry point ``mlac_audit.commands: service = service.cli:register``.

Client commands read the server URL from ``--url`` (default ``$MLAC_URL`` or http://127.0.0.1:8000) and the
key from ``--api-key`` (default ``$MLAC_API_KEY``, else ``<data-dir>/admin_key`` of an embedded server).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from mlac.errors import ConfigError

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
SUBMIT_ATTEMPTS = 3  # transport failures of `submit` are retried with the same Idempotency-Key


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the service's sub-commands to the ``mlac-audit`` parser."""
    serve = sub.add_parser("serve", help="run the REST service (embedded default: SQLite + local Ray under --data-dir)")
    serve.add_argument("--data-dir", type=Path, default=None, help="data directory (default $MLAC_DATA_DIR or ./data)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--database-url", default=None, help="PostgreSQL URL (default: SQLite in the data dir)")
    serve.add_argument("--ray", dest="ray_address", default=None, metavar="ADDRESS", help="join this Ray cluster")
    serve.add_argument("--no-ray", action="store_true", help="run jobs in this process (no Ray)")
    serve.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray")
    serve.set_defaults(func=cmd_serve)

    def client(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--url", default=os.environ.get("MLAC_URL", "http://127.0.0.1:8000"))
        p.add_argument("--api-key", default=os.environ.get("MLAC_API_KEY"))
        p.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MLAC_DATA_DIR", "data")),
                       help="where an embedded server keeps admin_key (used when no key is given)")
        return p

    submit = client("submit", "submit a job to a running service")
    submit.add_argument("kind", choices=("censor", "audit", "censor_then_audit"))
    submit.add_argument("--dataset", required=True, help="dataset id (ds_...)")
    submit.add_argument("--checkpoint", default=None, help="checkpoint id (as POST /v1/checkpoints returned it)")
    submit.add_argument("--preset", default="smoke", choices=("smoke", "quick", "paper", "strong"))
    submit.add_argument("--options", type=Path, default=None, help="JSON file with 'audit'/'censor' overrides")
    submit.add_argument("--idempotency-key", default=None,
                        help="bind the job to this key (default: a fresh one per invocation, reused by its retries)")
    submit.set_defaults(func=cmd_submit)
    status = client("status", "show a job")
    status.add_argument("job_id")
    status.set_defaults(func=cmd_status)
    watch = client("watch", "follow a job's progress (Server-Sent Events) until it ends")
    watch.add_argument("job_id")
    watch.set_defaults(func=cmd_watch)
    result = client("result", "print a job's curve table and fetch its report and figures")
    result.add_argument("job_id")
    result.add_argument("--out", type=Path, default=None, help="save result.json, report.html and figures here")
    result.set_defaults(func=cmd_result)


def cmd_serve(args: argparse.Namespace) -> int:
    """Start the service (blocks until interrupted)."""
    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    overrides: dict[str, Any] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    if args.database_url:
        overrides["database_url"] = args.database_url
    if args.ray_address:
        overrides["ray_address"] = args.ray_address
    if args.no_ray:
        overrides["runner"] = "inprocess"
    if args.num_cpus:
        overrides["ray_num_cpus"] = args.num_cpus
    settings = Settings(**overrides)
    key_hint = "MLAC_ADMIN_KEY" if settings.admin_key else str(settings.data_dir / "admin_key")
    print(f"mlac-audit service on http://{args.host}:{args.port} (docs at /docs); admin key in {key_hint}", flush=True)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
    return 0


def _client(args: argparse.Namespace) -> httpx.Client:
    key = args.api_key
    if not key:
        path = Path(args.data_dir) / "admin_key"
        if not path.is_file():
            raise ConfigError("no API key: pass --api-key, set MLAC_API_KEY, or point --data-dir at the server's data dir")
        key = path.read_text(encoding="utf-8").strip()
    return httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _check(r: httpx.Response) -> Any:
    if r.status_code >= 400:
        try:
            err = r.json()["error"]
            raise ConfigError(f"HTTP {r.status_code} {err['code']}: {err['message']}")
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"HTTP {r.status_code}: {r.text[:300]}") from None
    return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.content


def cmd_submit(args: argparse.Namespace) -> int:
    """POST /v1/jobs; prints the job id."""
    body: dict[str, Any] = {"kind": args.kind, "dataset_id": args.dataset, "preset": args.preset}
    if args.checkpoint:
        body["checkpoint_id"] = args.checkpoint
    if args.options:
        body.update(json.loads(args.options.read_text(encoding="utf-8")))
    # One key per invocation, reused by the retries below: a request that reached the server but whose
    # answer was lost is answered with the job it made, never run twice.
    headers = {"Idempotency-Key": args.idempotency_key or f"cli-{uuid.uuid4().hex}"}
    with _client(args) as c:
        for attempt in range(SUBMIT_ATTEMPTS):
            try:
                job = _check(c.post("/v1/jobs", json=body, headers=headers))
                break
            except httpx.TransportError as exc:
                if attempt == SUBMIT_ATTEMPTS - 1:
                    raise ConfigError(f"cannot reach {args.url}: {exc}") from None
                time.sleep(2.0 * 2**attempt)
    print(job["id"])
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """GET /v1/jobs/{id}; prints it as JSON."""
    with _client(args) as c:
        print(json.dumps(_check(c.get(f"/v1/jobs/{args.job_id}")), indent=2))
    return 0


def progress_line(event: dict[str, Any]) -> str:
    """One human line per progress event."""
    parts = [str(event.get("stage", "?"))]
    if event.get("trials_total"):
        parts.append(f"trials {event.get('trials_done')}/{event.get('trials_total')}")
    if event.get("studies_total"):
        parts.append(f"searches {event.get('studies_done')}/{event.get('studies_total')}")
    if event.get("step") is not None and event.get("stage") == "censor":
        total = event.get("outer_steps")
        parts.append(f"step {event['step']}" + (f"/{total}" if total else ""))
    if isinstance(event.get("eta_s"), (int, float)):
        parts.append(f"ETA {int(event['eta_s']) // 60}m{int(event['eta_s']) % 60:02d}s")
    return "  ".join(parts)


#: ``watch`` prints a progress line at most this often within a stage.
WATCH_EVERY_S = 2.0


def cmd_watch(args: argparse.Namespace) -> int:
    """Follow the SSE stream; exit 0 when the job SUCCEEDED, 1 otherwise."""
    last, last_stage, printed_at = "", "", 0.0
    with _client(args) as c, c.stream("GET", f"/v1/jobs/{args.job_id}/events", timeout=None) as stream:
        if stream.status_code >= 400:
            stream.read()
            _check(stream)
        kind = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if kind == "end":
                    print(f"job {args.job_id}: {data['state']} (verdict {data.get('verdict')})")
                    return 0 if data["state"] == "SUCCEEDED" else 1
                text = progress_line(data)
                stage = str(data.get("stage"))
                # a line when the stage changes, else at most one every WATCH_EVERY_S seconds
                if text != last and (stage != last_stage or time.monotonic() - printed_at >= WATCH_EVERY_S):
                    print(text, flush=True)
                    last, last_stage, printed_at = text, stage, time.monotonic()
    return 1


def _num(v: Any) -> str:
    return f"{v:8.3f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else f"{'-':>8}"


#: Columns of ``result``'s curve table: the interval is the t-interval (``ci_t``) the verdict uses.
CURVE_HEADER = f"{'model':<24}{'task':<12}{'n':>6}{'mean':>8}{'t_low':>8}{'t_high':>8}{'chance':>8}  note"


def curve_row(row: dict[str, Any]) -> str:
    """One curve of a result's JSON as a table line: mean, 95% t-interval ("insufficient" with one seed, also
    for results of schema 1.0, which stored a zero-width interval), chance rate, "attack failed" flag."""
    ci = row.get("ci_t")
    one_seed = len(row.get("per_seed") or []) == 1
    notes = []
    if isinstance(ci, list) and len(ci) == 2 and not one_seed:
        low, high = ci
    else:
        low = high = None
        notes.append("insufficient (1 seed)" if one_seed or ci is None else "no interval")
    if row.get("attack_failed"):
        notes.append("attack failed (<= chance)")
    return (f"{row['model']:<24}{row['task']:<12}{row['n']:>6}{_num(row.get('mean'))}{_num(low)}{_num(high)}"
            f"{_num(row.get('majority_rate'))}  {'; '.join(notes)}").rstrip()


def cmd_result(args: argparse.Namespace) -> int:
    """Print the curve table; with --out, save result.json, report.html and the figures."""
    with _client(args) as c:
        result = _check(c.get(f"/v1/jobs/{args.job_id}/result"))
        print(CURVE_HEADER)
        for row in sorted(result.get("curves", []), key=lambda r: (r["model"], r["task"], r["n"])):
            print(curve_row(row))
        verdict = result.get("verdict") or {}
        if verdict:
            print(f"verdict: {verdict.get('status')}")
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
            if "curves" in result:
                (args.out / "report.html").write_bytes(_check_bytes(c.get(f"/v1/jobs/{args.job_id}/report")))
                for name in ("curves", "attack_budget"):
                    r = c.get(f"/v1/jobs/{args.job_id}/figures/{name}.png")
                    if r.status_code == 200:
                        (args.out / f"{name}.png").write_bytes(r.content)
            print(f"saved to {args.out}")
    return 0


def _check_bytes(r: httpx.Response) -> bytes:
    if r.status_code >= 400:
        _check(r)
    return r.content


def main(argv: list[str] | None = None) -> int:
    """``python -m service COMMAND ...`` (the same commands without the plugin machinery)."""
    from mlac.errors import MlacError

    parser = argparse.ArgumentParser(prog="python -m service")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MlacError as exc:
        print(f"error [{exc.code}]: {exc}", file=sys.stderr)
        return 2
