"""HTML of the web view: plain server-rendered pages built from the API's public models.

Every value that reaches a page goes through :func:`e` (``html.escape`` with quotes), job and schedule names,
errors and ids included; failure texts come already redacted (:func:`service.routes.jobs.view`), so no server
path is shown. The pages load only ``/ui/static/*`` (no external assets) and run no inline script.
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from typing import Any

from service.auth import Principal
from service.schemas import JobPublic, SchedulePublic
from service.ui.live import LiveView

TERMINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")


def e(value: object) -> str:
    """Escaped text (``None`` as an em dash)."""
    return "—" if value is None else html.escape(str(value), quote=True)


def when(ts: float | None) -> str:
    """An epoch time as UTC text."""
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``42s``."""
    if seconds is None:
        return "—"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def pct(value: float | None) -> str:
    """An accuracy as a percentage."""
    return "—" if value is None else f"{100 * value:.1f}%"


def badge(text: str | None, kind: str = "state") -> str:
    """A coloured label (state or verdict)."""
    if not text:
        return ""
    return f'<span class="badge {kind}-{e(text.lower())}">{e(text)}</span>'


def hidden_csrf(csrf: str) -> str:
    """The CSRF field every POST form carries."""
    return f'<input type="hidden" name="csrf" value="{e(csrf)}">'


def layout(title: str, body: str, principal: Principal | None = None, csrf: str = "", script: bool = False) -> str:
    """A whole page: header with navigation (when signed in), ``body``, the stylesheet and optionally the script."""
    nav = ""
    if principal is not None:
        who = f'{e(principal.name)}{" (admin)" if principal.is_admin else ""}'
        nav = (f'<nav><a href="/ui/jobs">Jobs</a><a href="/ui/compare">Compare</a><a href="/ui/schedules">Schedules</a>'
               f'<a href="/docs">API docs</a>'
               f'<span class="who">{who}</span>'
               f'<form method="post" action="/ui/logout" class="inline">{hidden_csrf(csrf)}'
               f'<button type="submit" class="link">Sign out</button></form></nav>')
    js = '<script src="/ui/static/ui.js" defer></script>' if script else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{e(title)} · mlac-audit</title><link rel="stylesheet" href="/ui/static/ui.css">{js}</head>'
            f'<body><header><a class="brand" href="/ui/jobs">mlac-audit</a>{nav}</header>'
            f'<main>{body}</main></body></html>')


def login_page(token: str, message: str | None = None, next_url: str = "/ui/jobs") -> str:
    """The sign-in form (paste an API key)."""
    note = f'<p class="error">{e(message)}</p>' if message else ""
    body = (f'<section class="card narrow"><h1>Sign in</h1>{note}'
            f'<form method="post" action="/ui/login"><input type="hidden" name="login_token" value="{e(token)}">'
            f'<input type="hidden" name="next" value="{e(next_url)}">'
            f'<label for="api_key">API key</label>'
            f'<input id="api_key" name="api_key" type="password" autocomplete="off" required maxlength="512" '
            f'placeholder="mlac_…">'
            f'<button type="submit">Sign in</button></form>'
            f'<p class="hint">The key is checked once and never stored in the browser: a session cookie '
            f'(HttpOnly, SameSite=Strict) stands for it. The JSON API under <code>/v1</code> still needs the key '
            f'in a header.</p></section>')
    return layout("Sign in", body)


def error_page(status: int, message: str, principal: Principal | None = None, csrf: str = "") -> str:
    """An error (404, 409, ...) as a page."""
    body = f'<section class="card narrow"><h1>{status}</h1><p>{e(message)}</p><p><a href="/ui/jobs">Jobs</a></p></section>'
    return layout(f"Error {status}", body, principal, csrf)


def _progress_text(job: JobPublic) -> str:
    p = job.progress
    parts = [e(p.stage)] if p.stage else []
    if p.trials_total:
        parts.append(f"trials {e(p.trials_done or 0)}/{e(p.trials_total)}")
    return " · ".join(parts) or "—"


def _job_model(job: JobPublic) -> str:
    req = job.request
    return e(f"{req.get('preset', '?')} · {req.get('dataset_id', '')}")


def short_when(ts: float | None) -> str:
    """An epoch time as compact UTC text (lists)."""
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%m-%d %H:%M")


def report_banner(job_id: str) -> str:
    """The line put on top of the audit card when the web view serves it (the card's own style only)."""
    return ('<body><p style="margin:0 0 12px;font:14px system-ui,sans-serif">'
            f'<a href="/ui/jobs/{e(job_id)}">← back to {e(job_id)}</a></p>')


def compare_banner(job_a: str, job_b: str) -> str:
    """The line put on top of a comparison page when the web view serves it."""
    return ('<body><p style="margin:0 0 12px;font:14px system-ui,sans-serif">'
            f'<a href="/ui/compare?a={e(job_a)}&amp;b={e(job_b)}&amp;edit=1">← change the comparison</a> · '
            f'<a href="/ui/jobs/{e(job_a)}">A: {e(job_a)}</a> · <a href="/ui/jobs/{e(job_b)}">B: {e(job_b)}</a></p>')


def compare_page(jobs: list[JobPublic], principal: Principal, csrf: str, picked: tuple[str, str] = ("", "")) -> str:
    """The form that picks two finished audits (or one audit twice, with two model labels) to compare."""

    def options(chosen: str) -> str:
        return "".join(f'<option value="{e(j.id)}"{" selected" if j.id == chosen else ""}>{e(j.id)} · '
                       f'{e(j.verdict or j.kind)} · {short_when(j.finished_at)}</option>' for j in jobs)

    if not jobs:
        body = ('<section class="card"><h1>Compare two audits</h1><p class="empty">No finished audit yet: a '
                'comparison needs two audit jobs that have SUCCEEDED (or one, to compare two of its models).</p></section>')
        return layout("Compare", body, principal, csrf)
    body = (f'<section class="card narrow"><h1>Compare two audits</h1>'
            f'<p class="hint">Per task and data size n: B minus A, paired by seed, with its interval and a '
            f'Holm-adjusted test. Both audits must use the same data, splits and attacker.</p>'
            f'<form method="get" action="/ui/compare">'
            f'<label for="a">A (before)</label><select id="a" name="a">{options(picked[0])}</select>'
            f'<label for="b">B (after)</label><select id="b" name="b">{options(picked[1] or picked[0])}</select>'
            f'<label for="model_a">model in A (optional)</label><input id="model_a" name="model_a" maxlength="200">'
            f'<label for="model_b">model in B (optional)</label><input id="model_b" name="model_b" maxlength="200">'
            f'<button type="submit">Compare</button></form></section>')
    return layout("Compare", body, principal, csrf)


def jobs_page(jobs: list[JobPublic], total: int, offset: int, limit: int, principal: Principal, csrf: str,
              owners: dict[str, str] | None = None) -> str:
    """The jobs list, newest first (the admin's shows each job's key by name)."""
    owners = owners or {}
    rows = "".join(
        f'<tr><td><a href="/ui/jobs/{e(j.id)}">{e(j.id)}</a></td><td>{e(j.kind)}</td><td>{badge(j.state)}</td>'
        f'<td>{badge(j.verdict, "verdict")}</td><td>{_progress_text(j)}</td><td>{_job_model(j)}</td>'
        f'<td class="nowrap" title="{when(j.created_at)}">{short_when(j.created_at)}</td>'
        f'<td>{_schedule_link(j.schedule_id)}</td>'
        + (f'<td title="{e(j.owner)}">{e(owners.get(j.owner, j.owner))}</td>' if principal.is_admin else "") + "</tr>"
        for j in jobs)
    head = ("<tr><th>Job</th><th>Kind</th><th>State</th><th>Verdict</th><th>Progress</th><th>Preset · dataset</th>"
            "<th>Created (UTC)</th><th>Schedule</th>" + ("<th>Key</th>" if principal.is_admin else "") + "</tr>")
    table = f'<table class="list"><thead>{head}</thead><tbody>{rows}</tbody></table>' if jobs else \
        '<p class="empty">No jobs yet. Submit one with <code>POST /v1/jobs</code> (see <a href="/docs">API docs</a>).</p>'
    pager = _pager("/ui/jobs", total, offset, limit)
    body = f'<section class="card"><h1>Jobs <small>{e(total)}</small></h1>{table}{pager}</section>'
    return layout("Jobs", body, principal, csrf)


def _schedule_link(schedule_id: str | None) -> str:
    return f'<a href="/ui/schedules/{e(schedule_id)}">{e(schedule_id)}</a>' if schedule_id else ""


def _pager(base: str, total: int, offset: int, limit: int) -> str:
    links = []
    if offset > 0:
        links.append(f'<a href="{base}?offset={max(0, offset - limit)}">← newer</a>')
    if offset + limit < total:
        links.append(f'<a href="{base}?offset={offset + limit}">older →</a>')
    return f'<p class="pager">{" ".join(links)}</p>' if links else ""


def _stat(label: str, value: str, ident: str) -> str:
    return f'<div class="stat"><span class="label">{e(label)}</span><span class="value" id="{ident}">{value}</span></div>'


def job_page(job: JobPublic, now: LiveView, principal: Principal, csrf: str, has_report: bool, has_curves: bool,
             owner_name: str | None = None) -> str:
    """One job: state, live progress (``now``, then updated by the script over ``/ui/jobs/{id}/events``), curves,
    report link."""
    p, jid = now, e(job.id)
    live = job.state not in TERMINAL_STATES
    trials = f"{p.trials_done or 0} / {p.trials_total}" if p.trials_total else "—"
    studies = f"{p.studies_done or 0} / {p.studies_total}" if p.studies_total else "—"
    bar_max, bar_val = (p.trials_total or 1), (p.trials_done or 0)
    if job.state == "SUCCEEDED":
        bar_val, bar_max = 1, 1
    stats = "".join((
        _stat("Stage", e(p.stage), "stage"),
        _stat("Trials", e(trials), "trials"),
        _stat("Searches", e(studies), "studies"),
        _stat("Harmful best so far", pct(p.harmful_best), "harmful-best"),
        _stat("ETA", e(duration(p.eta_s)) if live and p.eta_s is not None else "—", "eta"),
    ))
    cancel = (f'<form method="post" action="/ui/jobs/{jid}/cancel" class="inline">{hidden_csrf(csrf)}'
              f'<button type="submit" class="danger">Cancel job</button></form>') if live and not job.cancel_requested else ""
    error = ""
    if job.error:
        error = f'<div class="error-box"><strong>Error:</strong> <code id="job-error">{e(job.error)}</code></div>'
    links = []
    if has_report:
        links.append(f'<a class="button" id="report-link" href="/ui/jobs/{jid}/report">Open the audit report</a>')
    links.append(f'<a href="/ui/jobs/{jid}/result.json">result JSON</a>' if job.state == "SUCCEEDED" else "")
    curves = (f'<figure><img id="curves" alt="attack curves" src="/ui/jobs/{jid}/figures/curves.png"></figure>'
              if has_curves else "")
    request = e(json.dumps(job.request, indent=2, sort_keys=True))
    meta = "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in (
        ("Kind", e(job.kind)), ("Created", when(job.created_at)), ("Started", when(job.started_at)),
        ("Finished", f'<span id="finished">{when(job.finished_at)}</span>'), ("Attempts", e(job.attempts)),
        ("Schedule", _schedule_link(job.schedule_id) or "—"),
        *((("Key", f"{e(owner_name)} <small>({e(job.owner)})</small>"),) if principal.is_admin else ())))
    body = (
        f'<section class="card" id="job" data-job="{jid}" data-live="{"1" if live else "0"}">'
        f'<h1>{jid} <span id="state">{badge(job.state)}</span> <span id="verdict">{badge(job.verdict, "verdict")}</span></h1>'
        f'<div class="stats">{stats}</div>'
        f'<progress id="bar" value="{e(bar_val)}" max="{e(bar_max)}"></progress>'
        f'<p class="actions">{" ".join(x for x in links if x)} {cancel}</p>{error}</section>'
        f'<section class="card"><h2>Curves</h2>'
        f'<div id="live-curves" class="chart"{"" if live else " hidden"}><p class="hint">Points appear as searches '
        f'finish: harmful accuracy (solid) and beneficial (dashed) against the attacker’s data size.</p></div>'
        f'{curves}{"" if curves or live else "<p class=hint>No curves (the job did not finish an audit).</p>"}</section>'
        f'<section class="card"><h2>Details</h2><dl>{meta}</dl>'
        f'<details><summary>Request</summary><pre>{request}</pre></details></section>')
    return layout(job.id, body, principal, csrf, script=True)


def schedules_page(items: list[SchedulePublic], total: int, principal: Principal, csrf: str) -> str:
    """The schedules list."""
    rows = "".join(
        f'<tr><td><a href="/ui/schedules/{e(s.id)}">{e(s.name)}</a></td><td><code>{e(s.cron)}</code></td>'
        f'<td>{e(s.timezone)}</td><td>{_schedule_state(s)}</td><td>{e(s.next_runs[0]) if s.next_runs else "—"}</td>'
        f'<td>{_last_run(s)}</td></tr>' for s in items)
    table = ('<table class="list"><thead><tr><th>Name</th><th>Cron</th><th>Time zone</th><th>State</th><th>Next run</th>'
             f'<th>Last run</th></tr></thead><tbody>{rows}</tbody></table>') if items else \
        '<p class="empty">No schedules. Create one with <code>POST /v1/schedules</code>.</p>'
    return layout("Schedules", f'<section class="card"><h1>Schedules <small>{e(total)}</small></h1>{table}</section>',
                  principal, csrf)


def _schedule_state(s: SchedulePublic) -> str:
    if s.broken:
        return f'<span class="badge state-failed" title="{e(s.broken)}">broken</span>'
    return badge("paused") if s.paused else badge("active")


def _last_run(s: SchedulePublic) -> str:
    if not s.past_runs:
        return "—"
    run = s.past_runs[0]
    return f'<a href="/ui/jobs/{e(run.job_id)}">{e(run.slot)}</a>'


def schedule_page(s: SchedulePublic, jobs: dict[str, JobPublic], principal: Principal, csrf: str) -> str:
    """One schedule: its settings, next slots, and its history (the jobs it created, with their outcome)."""
    sid = e(s.id)
    action = "resume" if s.paused or s.broken else "pause"
    toggle = (f'<form method="post" action="/ui/schedules/{sid}/{action}" class="inline">{hidden_csrf(csrf)}'
              f'<button type="submit">{action.capitalize()}</button></form>')
    broken = f'<div class="error-box"><strong>Cannot fire:</strong> {e(s.broken)}</div>' if s.broken else ""
    none = "none while paused" if s.paused else "none (it cannot fire)" if s.broken else "—"
    nxt = "<ul>" + "".join(f"<li>{e(r)}</li>" for r in s.next_runs) + "</ul>" if s.next_runs else e(none)
    history = "".join(
        f'<tr><td>{e(r.slot)}</td><td><a href="/ui/jobs/{e(r.job_id)}">{e(r.job_id)}</a></td>'
        f'<td>{badge(jobs[r.job_id].state) if r.job_id in jobs else ""}</td>'
        f'<td>{badge(jobs[r.job_id].verdict, "verdict") if r.job_id in jobs else ""}</td><td>{when(r.fired_at)}</td></tr>'
        for r in s.past_runs)
    table = ('<table class="list"><thead><tr><th>Slot</th><th>Job</th><th>State</th><th>Verdict</th><th>Fired</th></tr>'
             f'</thead><tbody>{history}</tbody></table>') if history else '<p class="empty">Not fired yet.</p>'
    body = (f'<section class="card"><h1>{e(s.name)} {_schedule_state(s)}</h1>{broken}'
            f'<dl><dt>Id</dt><dd>{sid}</dd><dt>Cron</dt><dd><code>{e(s.cron)}</code> ({e(s.timezone)})</dd>'
            f'<dt>Created</dt><dd>{when(s.created_at)}</dd><dt>Next runs</dt><dd>{nxt}</dd></dl>'
            f'<p class="actions">{toggle}</p>'
            f'<details><summary>Job template</summary><pre>{e(json.dumps(s.job, indent=2, sort_keys=True))}</pre>'
            f'</details></section><section class="card"><h2>History</h2>{table}</section>')
    return layout(s.name, body, principal, csrf)


def as_json(value: Any) -> str:
    """Compact JSON (SSE data lines)."""
    return json.dumps(value, separators=(",", ":"), default=str)
