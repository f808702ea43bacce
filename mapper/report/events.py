"""Stored events as text: the `wlmap events list` table and everything `wlmap events show` prints."""

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mapper.run.masking import MASK, SENSITIVE_HEADERS
from mapper.service.operations import EventLine, parse_id, when

if TYPE_CHECKING:
    from mapper.service.store import Store


def render_table(lines: Sequence[EventLine], width: int = 60) -> str:
    """A plain-text table; long reasons are cut to `width` characters."""
    if not lines:
        return "no events"
    rows = [("ID", "RECEIVED", "MAPPING", "STATUS", "ATTEMPTS", "RESOURCE", "REASON")]
    for line in lines:
        reason = line.reason if len(line.reason) <= width else line.reason[: width - 3] + "..."
        rows.append(
            (line.id, when(line.received), line.mapping, line.status, str(line.attempts), line.resource, reason)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1] for row in rows
    )


def _masked(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    return {name: MASK if name.lower() in SENSITIVE_HEADERS else value for name, value in headers}


def _body_text(body: bytes, limit: int = 20_000) -> str:
    try:
        text = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        text = body.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters)"


def show_event(store: "Store", ident: str) -> str:
    """Everything stored about a job (every attempt with its trace) or a delivery."""
    kind, number = parse_id(ident)
    if kind == "delivery":
        return _show_delivery(store, number)
    detail = store.job(number)
    job, d = detail.job, detail.delivery
    lines = [
        f"job {job.id} · mapping {job.mapping} ({job.mapping_file}) · {job.status} · "
        f"{job.attempts} attempt{'s' * (job.attempts != 1)}",
        f"webhook d{d.id} received {when(d.received_at)} · delivery id {d.delivery_id or '-'} · "
        f"signature {d.signature} · {d.summary}",
    ]
    if job.last_reason:
        lines.append(f"reason: {job.last_reason}")
    if job.replay_of is not None:
        lines.append(f"replay of job {job.replay_of}")
    if job.superseded_by is not None:
        verb = "replayed as" if job.status == "replayed" else "superseded by"
        lines.append(f"{verb} job {job.superseded_by}")
    if job.status in ("pending", "retry"):
        lines.append(f"next attempt: {when(job.next_attempt_at)}")
    for attempt in detail.attempts:
        took = "" if attempt.finished_at is None else f" ({attempt.finished_at - attempt.started_at:.3f} s)"
        lines += [
            "",
            f"attempt {attempt.number} · {when(attempt.started_at)}{took} · {attempt.status}"
            + (f" · step {attempt.step}" if attempt.step else ""),
        ]
        if attempt.reason:
            lines.append(f"  reason: {attempt.reason}")
        if attempt.trace:
            lines.append("  trace:")
            text = json.dumps(attempt.trace, indent=2, ensure_ascii=False)
            lines.extend("    " + row for row in text.splitlines())
    return "\n".join(lines)


def _show_delivery(store: "Store", number: int) -> str:
    d = store.delivery(number)
    lines = [
        f"webhook d{d.id} · {d.status} · received {when(d.received_at)} · "
        f"delivery id {d.delivery_id or '-'} · signature {d.signature}",
        f"summary: {d.summary}",
    ]
    if d.duplicate_of is not None:
        lines.append(f"duplicate of d{d.duplicate_of}")
    jobs = store.jobs(delivery=d.id, limit=1000)
    if jobs:
        lines.append("jobs: " + ", ".join(f"{j.id} ({j.mapping}: {j.status})" for j in reversed(jobs)))
    lines += ["headers:", *(f"  {k}: {v}" for k, v in _masked(d.headers).items())]
    if d.body:
        lines += ["body:", *("  " + row for row in _body_text(d.body).splitlines())]
    return "\n".join(lines)
