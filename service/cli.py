"""``mlac-audit serve`` (the embedded service) and thin HTTP client commands: ``submit``, ``status``, ``watch``,
``result``, ``cancel``, ``upload-checkpoint``, ``upload-dataset``. Registered through the entry point
``mlac_audit.commands: service = service.cli:register``.

Client commands talk to the service through :class:`service.client.Client`. The URL is ``--url``, else
``$MLAC_URL``, else ``url`` in the config file (``$MLAC_CONFIG``, default ``~/.config/mlac-audit/config.toml``),
else http://127.0.0.1:8000; the key is ``--api-key``, else ``$MLAC_API_KEY``, else ``api_key`` in the config
file, else ``<data-dir>/admin_key`` of an embedded server. A service that cannot be reached, or an error answer,
is one line (``error [service_unreachable]: cannot reach the mlac-audit service at URL: connection refused ...``)
and exit 2. Nothing heavy (httpx, pydantic, the service) is imported until a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mlac import DEFAULT_PRESET, PRESET_NAMES
from mlac.errors import ConfigError

#: The API's job kinds (``mlac.jobs.JOB_KINDS``, kept here so that ``--help`` imports nothing heavy; a test checks).
SUBMIT_KINDS = ("audit", "defend", "defend_then_audit", "censor", "censor_then_audit")

if TYPE_CHECKING:
    from service.client import Client

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
CONFIG_HELP = ("URL and key: the flags, else $MLAC_URL / $MLAC_API_KEY, else url / api_key in "
               "~/.config/mlac-audit/config.toml ($MLAC_CONFIG), else http://127.0.0.1:8000 and "
               "<data-dir>/admin_key")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the service's sub-commands to the ``mlac-audit`` parser."""
    serve = sub.add_parser("serve", help="run the REST service (embedded default: SQLite + local Ray under --data-dir)",
                           description="Run the mlac-audit REST service (OpenAPI at /docs, web view at /ui). "
                           "Settings are MLAC_... environment variables (service/settings.py); the flags override "
                           "the main ones. The first admin key is MLAC_ADMIN_KEY, else generated into "
                           "<data-dir>/admin_key.")
    serve.add_argument("--data-dir", type=Path, default=None, help="data directory (default $MLAC_DATA_DIR or ./data)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--database-url", default=None, help="PostgreSQL URL (default: SQLite in the data dir)")
    serve.add_argument("--ray", dest="ray_address", default=None, metavar="ADDRESS", help="join this Ray cluster")
    serve.add_argument("--no-ray", action="store_true", help="run jobs in this process (no Ray)")
    serve.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    serve.set_defaults(func=cmd_serve)

    def client(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=f"{description} {CONFIG_HELP}.")
        p.add_argument("--url", default=None,
                       help="service URL (default: $MLAC_URL, the config file's url, else http://127.0.0.1:8000)")
        p.add_argument("--api-key", default=None, help="API key (default: $MLAC_API_KEY, the config file's api_key, "
                       "else <data-dir>/admin_key)")
        p.add_argument("--data-dir", type=Path, default=None,
                       help="data dir of an embedded server, whose admin_key is used when no key is given "
                       "(default $MLAC_DATA_DIR or ./data)")
        return p

    submit = client("submit", "submit a job to a running service",
                    "Submit a job (POST /v1/jobs) and print its id; `watch ID` follows it.")
    submit.add_argument("kind", choices=SUBMIT_KINDS,
                        help="audit a checkpoint, defend one (--options {\"defense\": {\"name\": \"mlac\"}}), or defend "
                             "then audit the result; censor and censor_then_audit are the older names of the MLAC ones")
    submit.add_argument("--dataset", required=True, help="dataset id (ds_..., as upload-dataset printed it)")
    submit.add_argument("--checkpoint", default=None,
                        help="checkpoint id (as upload-checkpoint printed it): the base (censor) or the model under audit")
    submit.add_argument("--preset", default=DEFAULT_PRESET, choices=PRESET_NAMES,
                        help=f"preset (default {DEFAULT_PRESET}, as for `mlac-audit audit` and the API)")
    submit.add_argument("--options", type=Path, default=None,
                        help="JSON file with the request's other fields ('audit', 'censor', 'webhook_url')")
    submit.add_argument("--idempotency-key", default=None,
                        help="bind the job to this key (default: a fresh one per invocation, reused by its retries)")
    submit.set_defaults(func=cmd_submit)
    status = client("status", "show a job", "Print a job (GET /v1/jobs/ID) as JSON: state, progress (with eta_s), "
                    "verdict, error.")
    status.add_argument("job_id", help="job id (job_...)")
    status.set_defaults(func=cmd_status)
    watch = client("watch", "follow a job's progress (Server-Sent Events) until it ends",
                   "Print a job's progress (stage, trials, searches, ETA) until it ends; exit 0 if it SUCCEEDED, "
                   "1 otherwise.")
    watch.add_argument("job_id", help="job id (job_...)")
    watch.set_defaults(func=cmd_watch)
    result = client("result", "print a job's curve table and fetch its report and figures",
                    "Print a finished job's curve table and verdict; with --out, save result.json, report.html and "
                    "the figures.")
    result.add_argument("job_id", help="job id (job_...)")
    result.add_argument("--out", type=Path, default=None, help="save result.json, report.html and figures here")
    result.set_defaults(func=cmd_result)
    cancel = client("cancel", "cancel a job", "Ask the service to cancel a queued or running job "
                    "(POST /v1/jobs/ID/cancel) and print its state.")
    cancel.add_argument("job_id", help="job id (job_...)")
    cancel.set_defaults(func=cmd_cancel)
    up_ckpt = client("upload-checkpoint", "upload a checkpoint directory and print its id",
                     "Upload the files of a checkpoint directory (config.json, model.safetensors, tokenizer files; "
                     "sub-directories are left out) to POST /v1/checkpoints and print the checkpoint id.")
    up_ckpt.add_argument("directory", type=Path, help="checkpoint directory (e.g. what `mlac-audit base` wrote)")
    up_ckpt.add_argument("--name", default=None, help="a name for the checkpoint (default: the directory's name)")
    up_ckpt.set_defaults(func=cmd_upload_checkpoint)
    up_ds = client("upload-dataset", "upload a dataset file and print its id",
                   "Upload one .parquet/.jsonl/.json file with a text column and two integer label columns to "
                   "POST /v1/datasets and print the dataset id.")
    up_ds.add_argument("file", type=Path, help="the dataset file (e.g. what `mlac-audit data synth` wrote)")
    up_ds.add_argument("--name", default=None, help="a name for the dataset (default: the file's stem)")
    up_ds.add_argument("--text-column", default="text", help="column of the texts (default text)")
    up_ds.add_argument("--beneficial-column", default="profession",
                       help="integer label column of the beneficial task (default profession)")
    up_ds.add_argument("--harmful-column", default="gender",
                       help="0/1 label column of the harmful task (default gender)")
    up_ds.set_defaults(func=cmd_upload_dataset)


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
    if settings.runner == "ray":  # a store it cannot open (MLAC_ARTIFACT_URL) is a one-line error now, not at a job
        from workers.artifacts.access import artifact_url
        from workers.artifacts.store import FsspecStore

        FsspecStore(artifact_url(settings.artifact_root))
    key_hint = "MLAC_ADMIN_KEY" if settings.admin_key else str(settings.data_dir / "admin_key")
    print(f"mlac-audit service on http://{args.host}:{args.port} (docs at /docs); admin key in {key_hint}", flush=True)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
    return 0


def _client(args: argparse.Namespace) -> Client:
    """A :class:`~service.client.Client` for the flags, the environment and the config file."""
    from service.client import Client, resolve_connection

    return Client.from_connection(resolve_connection(args.url, args.api_key, data_dir=args.data_dir))


def cmd_submit(args: argparse.Namespace) -> int:
    """POST /v1/jobs; prints the job id."""
    from pydantic import ValidationError

    from service.schemas import JobCreate

    body: dict[str, Any] = {"kind": args.kind, "dataset_id": args.dataset, "preset": args.preset}
    if args.checkpoint:
        body["checkpoint_id"] = args.checkpoint
    if args.options:
        try:
            options = json.loads(args.options.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--options {args.options}: {exc}") from None
        if not isinstance(options, dict):
            raise ConfigError(f"--options {args.options}: a JSON object is needed")
        body.update(options)
    try:
        job = JobCreate.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ConfigError(f"invalid job: {where}: {first.get('msg')}") from None
    # One key per invocation, reused by the client's retries: a request that reached the server but whose
    # answer was lost is answered with the job it made, never run twice.
    with _client(args) as c:
        print(c.submit(job, idempotency_key=args.idempotency_key).id)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """GET /v1/jobs/{id}; prints it as JSON."""
    with _client(args) as c:
        print(json.dumps(c.get_job(args.job_id).model_dump(mode="json"), indent=2))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """POST /v1/jobs/{id}/cancel; prints the job's state."""
    with _client(args) as c:
        job = c.cancel(args.job_id)
    print(f"job {job.id}: {job.state}" + (" (cancel requested)" if job.cancel_requested else ""))
    return 0


def cmd_upload_checkpoint(args: argparse.Namespace) -> int:
    """POST /v1/checkpoints with the directory's files; prints the checkpoint id."""
    with _client(args) as c:
        ckpt = c.upload_checkpoint(args.directory, name=args.name)
    print(f"checkpoint {ckpt.name!r}: {ckpt.size_bytes} bytes, {ckpt.num_parameters or '?'} parameters",
          file=sys.stderr)
    print(ckpt.id)
    return 0


def cmd_upload_dataset(args: argparse.Namespace) -> int:
    """POST /v1/datasets with the file; prints the dataset id."""
    with _client(args) as c:
        ds = c.upload_dataset(args.file, name=args.name, text_column=args.text_column,
                              beneficial_column=args.beneficial_column, harmful_column=args.harmful_column)
    print(f"dataset {ds.name!r}: {ds.num_rows} rows, {len(ds.beneficial_names)} beneficial classes", file=sys.stderr)
    print(ds.id)
    return 0


def format_eta(seconds: float) -> str:
    """``ETA 3m07s`` (``ETA 1h02m`` past an hour)."""
    s = max(0, int(seconds))
    return f"ETA {s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"ETA {s // 60}m{s % 60:02d}s"


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
    eta = event.get("eta_s")
    if isinstance(eta, (int, float)) and not isinstance(eta, bool):
        parts.append(format_eta(eta))
    return "  ".join(parts)


#: ``watch`` prints a progress line at most this often within a stage.
WATCH_EVERY_S = 2.0


def cmd_watch(args: argparse.Namespace) -> int:
    """Follow the SSE stream; exit 0 when the job SUCCEEDED, 1 otherwise.

    The stream's events are what the job reported; the ETA the API computes (``progress.eta_s`` of
    ``GET /v1/jobs/ID``, from the trials done so far) is read beside them when a line is printed."""
    last, last_stage, printed_at = "", "", 0.0
    with _client(args) as c:
        for event in c.events(args.job_id):
            data = event.data
            if event.kind == "end":
                print(f"job {args.job_id}: {data.get('state')} (verdict {data.get('verdict')})")
                return 0 if data.get("state") == "SUCCEEDED" else 1
            stage = str(data.get("stage"))
            # a line when the stage changes, else at most one every WATCH_EVERY_S seconds
            if stage == last_stage and time.monotonic() - printed_at < WATCH_EVERY_S:
                continue
            if data.get("eta_s") is None:
                eta = c.get_job(args.job_id).progress.eta_s
                data = {**data, "eta_s": eta} if eta is not None else data
            text = progress_line(data)
            if text != last:
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
        result = c.result(args.job_id)
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
                (args.out / "report.html").write_bytes(c.report(args.job_id))
                for name in ("curves", "attack_budget"):
                    png = c.figure(args.job_id, name)
                    if png is not None:
                        (args.out / f"{name}.png").write_bytes(png)
            print(f"saved to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m service COMMAND ...`` (the same commands without the plugin machinery)."""
    from mlac.cli.main import OneLineParser
    from mlac.errors import MlacError

    parser = OneLineParser(prog="python -m service")
    sub = cast("argparse._SubParsersAction[argparse.ArgumentParser]",
               parser.add_subparsers(dest="command", required=True))
    register(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MlacError as exc:
        print(f"error [{exc.code}]: {exc}", file=sys.stderr)
        return 2
