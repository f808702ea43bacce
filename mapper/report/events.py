"""`wlmap events list|show` output: events as a table or JSON, one event with its history and timelines."""

import json
import re
import textwrap
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from mapper.report.timeline import timeline_text
from mapper.service.history import DeliveryView, JobView, delivery_view, job_view, when
from mapper.service.operations import EventLine, parse_id

if TYPE_CHECKING:
    from mapper.service.store import Store

HEADER = ("ID", "RECEIVED", "MAPPING", "STATUS", "ATTEMPTS", "RESOURCE", "REASON")


_BREAK = re.compile(r"[ \t]*[\r\n]+[ \t]*")


def render_table(lines: Sequence[EventLine], width: int | None = None) -> str:
    """A plain-text table. Reasons are never cut: with `width` (a terminal's) a long one wraps under the REASON
    column; without, each row is one line however long."""
    if not lines:
        return "no events"
    rows = [HEADER]
    for line in lines:
        rows.append(
            (line.id, when(line.received), line.mapping, line.status, str(line.attempts), line.resource, line.reason)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER) - 1)]
    lead = sum(widths) + 2 * len(widths)
    room = None if width is None else max(20, width - lead)
    out = []
    for row in rows:
        start = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  "
        reason = _one_line(row[-1])
        if room is None or len(reason) <= room:
            out.append(start + reason)
            continue
        wrapped = textwrap.wrap(reason, room, break_long_words=True, break_on_hyphens=False) or [""]
        out.append(start + wrapped[0])
        out.extend(" " * lead + part for part in wrapped[1:])
    return "\n".join(out)


def _one_line(reason: str) -> str:
    """A reason quoting a multi-line expression (a folded `skip_unless`) on one line: each line break and the
    indentation around it become one space, so a row stays one line for grep and cut."""
    return _BREAK.sub(" ", reason) if "\n" in reason or "\r" in reason else reason


def events_json(lines: Sequence[EventLine], older: str | None = None) -> str:
    """The events as JSON: one object per event (times in ISO 8601), and the cursor of the next page."""
    events = [{**asdict(line), "received": when(line.received), "made": when(line.made)} for line in lines]
    return json.dumps({"events": events, "older": older}, indent=2, ensure_ascii=False)


def show_event(store: "Store", ident: str) -> str:
    """Everything stored about a job (its history, every attempt's timeline, a replay's diff) or a delivery."""
    kind, number = parse_id(ident)
    if kind == "delivery":
        return _delivery_text(delivery_view(store, number))
    return _job_text(job_view(store, number))


def event_json(store: "Store", ident: str) -> str:
    """`wlmap events show --format json`: the same, as JSON (every trace as stored, masked)."""
    kind, number = parse_id(ident)
    value: dict[str, Any]
    if kind == "delivery":
        view = delivery_view(store, number)
        value = {
            "delivery": _delivery_dict(view),
            "jobs": [j.id for j in view.jobs],
            "passed": dict(view.passed),
            "problems": list(view.problems),
            "history": _history(view.history),
            "event": view.event,
        }
    else:
        job = job_view(store, number)
        value = {
            "job": {**_plain(asdict(job.job)), "reason": job.reason, "waiting": job.waiting or None},
            "delivery": _delivery_dict(job),
            "event": job.event,
            "history": _history(job.history),
            "attempts": [
                {**_plain(asdict(a.row)), "started_at": when(a.row.started_at), "finished_at": when(a.row.finished_at)}
                for a in job.attempts
            ],
            "replay_diff": list(job.diff) if job.diff is not None else None,
        }
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    times = ("received_at", "next_attempt_at", "created_at", "updated_at")
    return {k: (when(v) if k in times and isinstance(v, float) else v) for k, v in value.items()}


def _delivery_dict(view: JobView | DeliveryView) -> dict[str, Any]:
    d = view.delivery
    return {
        "id": f"d{d.id}",
        "received_at": when(d.received_at),
        "delivery_id": d.delivery_id,
        "status": d.status,
        "signature": d.signature,
        "summary": d.summary,
        "duplicate_of": d.duplicate_of,
        "headers": dict(view.headers),
        "body": view.body,
    }


def _history(history: Sequence[Any]) -> list[dict[str, str]]:
    return [{"at": when(h.at), "who": h.who, "what": h.what} for h in history]


def _job_text(view: JobView) -> str:
    job, d = view.job, view.delivery
    lines = [
        f"job {job.id} · mapping {job.mapping} ({job.mapping_file}) · {job.status} · "
        f"{job.attempts} attempt{'s' * (job.attempts != 1)}",
        f"webhook d{d.id} received {when(d.received_at)} · delivery id {d.delivery_id or '-'} · "
        f"signature {d.signature} · {d.summary}",
    ]
    if view.reason:
        lines.append(f"reason: {view.reason}")
    if view.waiting:
        lines.append(f"waiting: {view.waiting}")
    if job.replay_of is not None:
        lines.append(f"replay of job {job.replay_of}")
    if job.superseded_by is not None:
        verb = "replayed as" if job.status == "replayed" else "superseded by"
        lines.append(f"{verb} job {job.superseded_by}")
    lines += ["", "history:", *(f"  {when(h.at)}  {h.who}: {h.what}" for h in view.history)]
    for attempt in view.attempts:
        row = attempt.row
        took = "" if row.finished_at is None else f" ({row.finished_at - row.started_at:.3f} s)"
        lines += [
            "",
            f"attempt {row.number} · {when(row.started_at)}{took} · {row.status}"
            + (f" · step {row.step}" if row.step else ""),
        ]
        if row.reason:
            lines.append(f"  reason: {row.reason}")
        if attempt.timeline is not None:
            lines += ["  timeline:", timeline_text(attempt.timeline, "    ")]
        elif row.trace:
            lines.append("  trace:")
            text = json.dumps(row.trace, indent=2, ensure_ascii=False)
            lines.extend("    " + part for part in text.splitlines())
    if view.diff is not None:
        lines += ["", f"what the replay changed in the requests (job {job.replay_of} → job {job.id}):"]
        lines += ["  " + part for part in view.diff]
    return "\n".join(lines)


def _delivery_text(view: DeliveryView) -> str:
    d = view.delivery
    lines = [
        f"webhook d{d.id} · {d.status} · received {when(d.received_at)} · "
        f"delivery id {d.delivery_id or '-'} · signature {d.signature}",
        f"summary: {d.summary}",
    ]
    if d.duplicate_of is not None:
        lines.append(f"duplicate of d{d.duplicate_of}")
    if view.jobs:
        lines.append("jobs: " + ", ".join(f"{j.id} ({j.mapping}: {j.status})" for j in view.jobs))
    if view.passed:
        lines += ["why no mapping took it (at arrival):", *(f"  {name}: {why}" for name, why in view.passed)]
    if view.problems:
        lines += ["noticed while reading it:", *(f"  {problem}" for problem in view.problems)]
    lines += ["history:", *(f"  {when(h.at)}  {h.who}: {h.what}" for h in view.history)]
    lines += ["headers:", *(f"  {k}: {v}" for k, v in view.headers)]
    if view.body:
        lines += ["body:", *("  " + row for row in view.body.splitlines())]
    return "\n".join(lines)
