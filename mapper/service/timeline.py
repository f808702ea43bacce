"""A stored trace read as a timeline: each stage in order, each request with its answer, and the outcome.

The console draws it as HTML and `wlmap events show` prints it as text (report.timeline), from these values;
neither reads the trace itself. A trace holds only what the runner kept after masking (run.trace): nothing here
unmasks or adds anything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

Mark = Literal["ok", "failed", "skipped", "note"]

AUXILIARY: Final = {"oauth2-token": "OAuth2 token", "csrf-fetch": "CSRF token fetch"}
QUIET_HEADERS: Final = frozenset({"user-agent", "accept-encoding", "connection", "content-length", "host"})
BODY_SHOWN: Final = 4000  # characters of a body a timeline shows (the stored trace keeps more)


@dataclass(frozen=True)
class Exchange:
    """One request and what came back: a call of a step, or an auxiliary one (a token or a CSRF fetch)."""

    label: str  # "" for the step's own call, else "OAuth2 token", "CSRF token fetch", "GraphQL"
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: str | None
    status: int | None
    duration_ms: float | None
    answer: str | None  # the response body
    error: str | None  # no answer: why

    @property
    def failed(self) -> bool:
        return self.error is not None or (self.status is not None and self.status >= 400)


@dataclass(frozen=True)
class Entry:
    """One stage: the query, extract, the link check, skip_unless, a step (with its item), in run order."""

    kind: str
    title: str
    mark: Mark
    lines: tuple[str, ...] = ()
    exchanges: tuple[Exchange, ...] = ()


@dataclass(frozen=True)
class Timeline:
    mapping: str
    file: str
    digest: str
    notes: tuple[str, ...]  # what normalising the webhook noticed
    entries: tuple[Entry, ...]
    outcome: str
    reason: str
    step: str | None
    duration_ms: float | None


def text(value: Any, limit: int = BODY_SHOWN) -> str:
    """A value as readable text: JSON pretty-printed, a string as it is; cut past `limit` characters."""
    shown: str
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            shown = value
        else:
            shown = json.dumps(parsed, indent=2, ensure_ascii=False) if isinstance(parsed, dict | list) else value
    else:
        shown = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return shown if len(shown) <= limit else shown[:limit] + f"… ({len(shown)} characters)"


def is_trace(trace: Any) -> bool:
    """Whether a stored trace is the runner's (with stages), rather than a note or another runner's record."""
    return isinstance(trace, Mapping) and isinstance(trace.get("stages"), list)


def read(trace: Mapping[str, Any]) -> Timeline:
    """The timeline of a runner's trace (see `is_trace`)."""
    outcome = trace.get("outcome") or {}
    failed_step = outcome.get("step") if outcome.get("status") in ("retry", "dead") else None
    entries = tuple(_entry(stage, failed_step) for stage in trace.get("stages") or [] if isinstance(stage, Mapping))
    event = trace.get("event") or {}
    return Timeline(
        str(trace.get("mapping") or "-"),
        str(trace.get("file") or ""),
        str(trace.get("digest") or ""),
        tuple(str(note) for note in event.get("problems") or []),
        entries,
        str(outcome.get("status") or "unknown"),
        str(outcome.get("reason") or ""),
        outcome.get("step"),
        outcome.get("duration_ms"),
    )


def _entry(stage: Mapping[str, Any], failed_step: str | None) -> Entry:
    kind = str(stage.get("stage"))
    exchanges = tuple(_exchange(e) for e in stage.get("exchanges") or [] if isinstance(e, Mapping))
    if kind == "query":
        lines = [f"variables {text(stage.get('variables'), 300)}"]
        if "data" in stage:
            lines.append(f"data {text(stage.get('data'))}")
        mark: Mark = "failed" if any(e.failed for e in exchanges) else "ok"
        return Entry(kind, f"query on `{stage.get('connection')}`", mark, tuple(lines), exchanges)
    if kind == "extract":
        values = stage.get("values") or {}
        shown = [f"{name} = {text(value, 300)}" for name, value in values.items()] or ["(nothing)"]
        return Entry(kind, "extract", "ok", tuple(shown))
    if kind == "link":
        verified = bool(stage.get("verified"))
        return Entry(
            kind, "link", "ok" if verified else "failed", (f"signature {'matches' if verified else 'does not match'}",)
        )
    if kind == "skip_unless":
        passed = bool(stage.get("passed"))
        return Entry(
            kind,
            f"skip_unless `{stage.get('expression')}`",
            "ok" if passed else "skipped",
            ("passes" if passed else "skips",),
        )
    if kind == "step":
        item = f" [item {stage['item']}]" if stage.get("item") is not None else ""
        title = f"step `{stage.get('name')}`{item}"
        if not stage.get("ran"):
            return Entry(kind, title, "skipped", (f"not run: {stage.get('reason')}",))
        captured = stage.get("captured") or {}
        noted = tuple(f"captured {name} = {text(value, 300)}" for name, value in captured.items())
        failed = stage.get("name") == failed_step or any(e.failed and not e.label for e in exchanges)
        return Entry(kind, title, "failed" if failed else "ok", noted, exchanges)
    return Entry(kind, kind, "note", (text({k: v for k, v in stage.items() if k != "stage"}, 600),))


def _exchange(raw: Mapping[str, Any]) -> Exchange:
    kind = str(raw.get("kind") or "request")
    label = AUXILIARY.get(kind, "GraphQL" if kind == "graphql" else "")
    headers = tuple(
        (str(name), str(value))
        for name, value in (raw.get("request_headers") or {}).items()
        if str(name).lower() not in QUIET_HEADERS
    )
    body = raw.get("request_body")
    answer = raw.get("response_body")
    status = raw.get("status")
    return Exchange(
        label,
        str(raw.get("method") or ""),
        str(raw.get("url") or ""),
        headers,
        None if body in (None, "") else text(body),
        int(status) if isinstance(status, int) else None,
        raw.get("duration_ms"),
        None if answer in (None, "") else text(answer),
        None if raw.get("error") in (None, "") else str(raw.get("error")),
    )


def requests(trace: Mapping[str, Any]) -> list[str]:
    """The requests a run sent, as lines to compare one attempt with another (`history.replay_diff`)."""
    lines: list[str] = []
    for entry in read(trace).entries:
        for exchange in entry.exchanges:
            label = f" ({exchange.label})" if exchange.label else ""
            lines.append(f"{entry.title}{label}: {exchange.method} {exchange.url}")
            lines.extend(f"  {name}: {value}" for name, value in exchange.headers)
            if exchange.body is not None:
                lines.extend("  " + row for row in exchange.body.splitlines())
    return lines
