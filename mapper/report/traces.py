"""Render a run's trace and `wlmap test` results as text a person reads top to bottom."""

from __future__ import annotations

import json
from typing import Any

MAX_BODY = 1500


def _json(value: Any, limit: int = MAX_BODY) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def _exchange(exchange: dict[str, Any], dry_run: bool) -> list[str]:
    kind = exchange.get("kind", "request")
    label = {"oauth2-token": " (OAuth2 token)", "csrf-fetch": " (CSRF token fetch)", "graphql": ""}.get(kind, "")
    lines = [f"  → {exchange.get('method')} {exchange.get('url')}{label}"]
    for name, value in (exchange.get("request_headers") or {}).items():
        if name.lower() not in ("user-agent", "accept-encoding", "connection", "content-length", "host"):
            lines.append(f"      {name}: {value}")
    if exchange.get("request_body"):
        lines.append(f"      body: {_json(exchange['request_body'])}")
    if exchange.get("error"):
        lines.append(f"  ← no answer: {exchange['error']}")
    elif exchange.get("status") is not None:
        stub = " (stub)" if dry_run else ""
        took = "" if dry_run else f" in {exchange.get('duration_ms', 0):.0f} ms"
        body = exchange.get("response_body")
        lines.append(f"  ← {exchange['status']}{stub}{took}" + (f" {_json(body, 300)}" if body else ""))
    return lines


def _given(trace: dict[str, Any], dry_run: bool) -> list[str]:
    """What the run was for: a webhook, a closed bucket (its contents and why it closed), or a schedule's time."""
    stages = {stage.get("stage"): stage for stage in trace.get("stages", [])}
    if "bucket" in stages:
        b = stages["bucket"]
        lines = [f"bucket   {b.get('id')} · group {_json(b.get('group'), 80)} · {b.get('count')} item(s)"]
        lines.append(f"         closed by {b.get('reason')}")
        lines += [f"  item {n}  {_json(item, 200)}" for n, item in enumerate(b.get("items") or [], 1)]
        return lines
    if "schedule" in stages:
        s = stages["schedule"]
        missed = f" · covering {s['missed']} missed due time(s)" if s.get("missed") else ""
        return [f"schedule since {s.get('since')} until {s.get('until')}{missed}"]
    return event_text(trace.get("event", {}), fields=dry_run)


def event_text(event: dict[str, Any], fields: bool = False) -> list[str]:
    """The event as wlmap understood it: one summary line, its notes, and (`fields`) every field a mapping
    reads as `event.NAME` that the webhook gave."""
    lines = [
        f"event    {event.get('generation')} · {event.get('name') or '-'} · {event.get('resource_type') or '-'} · "
        f"{event.get('resource_id') or '-'}"
        + (f" · delivery {event['delivery_id']}" if event.get("delivery_id") else "")
    ]
    if fields:
        given = [f"{k} = {_json(v, 120)}" for k, v in event.items() if k != "problems" and v not in (None, "")]
        lines.append("  fields " + ", ".join(given))
    for note in event.get("problems") or []:
        lines.append(f"         note: {note}")
    return lines


def trace_text(trace: dict[str, Any], dry_run: bool = False) -> str:
    lines = [
        f"mapping  {trace.get('mapping')} ({trace.get('file')}, version {trace.get('digest')})",
        *_given(trace, dry_run),
    ]
    if dry_run:
        lines.append("dry run  nothing is sent; answers come from the saved responses")
    for stage in trace.get("stages", []):
        kind = stage.get("stage")
        if kind == "query":
            lines.append(f"query    on `{stage.get('connection')}` with variables {_json(stage.get('variables'))}")
            for exchange in stage.get("exchanges") or []:
                lines.extend(_exchange(exchange, dry_run))
            if "data" in stage:
                lines.append(f"  data   {_json(stage['data'])}")
        elif kind == "extract":
            values = stage.get("values") or {}
            lines.append("extract  " + (", ".join(f"{k} = {_json(v, 120)}" for k, v in values.items()) or "(nothing)"))
        elif kind == "link":
            lines.append(f"link     signature {'matches' if stage.get('verified') else 'does not match'}")
        elif kind == "collect":
            lines.append(
                f"collect  into the bucket of group {_json(stage.get('group'), 80)}: {_json(stage.get('item'), 300)}"
            )
        elif kind == "skip_unless":
            lines.append(f"skip_unless `{stage.get('expression')}` → {'passes' if stage.get('passed') else 'skips'}")
        elif kind == "step":
            item = f" [item {stage['item']}]" if stage.get("item") is not None else ""
            if not stage.get("ran"):
                lines.append(f"step     {stage.get('name')}{item}: not run — {stage.get('reason')}")
                continue
            lines.append(f"step     {stage.get('name')}{item}")
            for exchange in stage.get("exchanges") or []:
                lines.extend(_exchange(exchange, dry_run))
            if stage.get("captured"):
                lines.append("  captured " + ", ".join(f"{k} = {_json(v, 120)}" for k, v in stage["captured"].items()))
    outcome = trace.get("outcome", {})
    lines.append(f"outcome  {outcome.get('status')}: {outcome.get('reason')}")
    return "\n".join(lines)
