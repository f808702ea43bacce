"""The record of one run: every stage, every request and response (auxiliary ones too), secrets masked.

A trace is JSON so it can be stored with the event as it is, printed by `wlmap run`, compared by `wlmap test`
and shown by `wlmap events show`. Masking happens once, in `finish`, over the whole serialised record.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from mapper.events import Event
from mapper.language.plan import Plan
from mapper.run.masking import Masker
from mapper.run.outcome import RunResult, Status


class Trace:
    def __init__(self, plan: Plan, event: Event, attempt: int) -> None:
        self.plan = plan
        self.started = time.perf_counter()
        self.record: dict[str, Any] = {
            "mapping": plan.name,
            "file": plan.file,
            "digest": plan.digest[:12],
            "attempt": attempt,
            "event": event.as_dict(),
            "stages": [],
        }

    def stage(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Add a stage; the returned dict may be filled in further while the stage runs."""
        entry = {"stage": kind, **fields}
        self.record["stages"].append(entry)
        return entry

    def finish(
        self, status: Status, reason: str, step: str | None, retry_after: float | None, masker: Masker
    ) -> RunResult:
        self.record["outcome"] = {
            "status": status,
            "reason": reason,
            "step": step,
            "retry_after": retry_after,
            "duration_ms": round((time.perf_counter() - self.started) * 1000, 2),
        }
        return RunResult(self.plan.name, status, masker.text(reason), step, retry_after, mask(self.record, masker))


def mask(record: dict[str, Any], masker: Masker) -> str:
    """The record as JSON text (ASCII, so lone surrogates survive storage) with every secret masked.

    One pass over the serialised record (the masker knows each secret's JSON-escaped forms) is an order of
    magnitude faster than visiting every string. Where a secret could have spanned JSON syntax the masked text
    is parsed to make sure; if it no longer parses, every string is visited instead.
    """
    text = json.dumps(record, default=_json_default)
    masked, surely_json = masker.json_text(text)
    if not surely_json:
        try:
            json.loads(masked)
        except json.JSONDecodeError:
            return json.dumps(masker.value(_plain(record)), default=_json_default)
    return masked


def _json_default(value: Any) -> Any:
    as_dict = getattr(value, "as_dict", None)  # an Exchange
    if callable(as_dict):
        return as_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def _plain(value: Any) -> Any:
    """Dataclasses (exchanges) and tuples to plain dicts and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


# Where a trace keeps what a system answered (or was sent): the query's `data`, and each exchange's bodies.
BODIES = ("data", "request_body", "response_body")


def cap(trace_json: str, limit: int) -> str:
    """The trace with each body over `limit` bytes cut to its first `limit` bytes plus "… N bytes more", and
    its full size kept beside it as `<key>_bytes`; any other text over `limit` is cut the same way.

    A 200 KB GraphQL answer per event made the store grow by that much per event (issue 15). The text is
    ASCII JSON, so a trace no longer than `limit` has nothing in it to cut and is returned untouched.
    """
    if len(trace_json) <= limit:
        return trace_json
    record = json.loads(trace_json)
    return json.dumps(_capped(record, limit))


def _capped(value: Any, limit: int) -> Any:
    if isinstance(value, dict):
        out = dict(value)
        for key, item in value.items():
            if key in BODIES and item is not None and not isinstance(item, str):
                text = json.dumps(item, ensure_ascii=False)
                if len(text.encode()) > limit:
                    item = text  # cut below as text: a structure cut in the middle is no structure
            if key in BODIES and isinstance(item, str) and len(item.encode()) > limit:
                # An exchange that kept an excerpt already knows the size of the whole body.
                size = value.get(f"{key}_bytes") or len(item.encode())
                out[f"{key}_bytes"] = size
                out[key] = _cut(item.rsplit("…", 1)[0] if f"{key}_bytes" in value else item, limit, size)
            else:
                out[key] = _capped(item, limit)
        return out
    if isinstance(value, list):
        return [_capped(item, limit) for item in value]
    if isinstance(value, str) and len(value.encode()) > limit:
        return _cut(value, limit, len(value.encode()))
    return value


def _cut(text: str, limit: int, size: int) -> str:
    kept = text.encode()[:limit].decode("utf-8", errors="ignore")
    return f"{kept}… {size - len(kept.encode())} bytes more"
