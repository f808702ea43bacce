"""What one run of one mapping for one event came to: the runner's answer, the worker's input.

done      every step succeeded (or the mapping said a status counts as success)
skipped   the trigger or `skip_unless` or a step's `on_status: skip` said this event needs nothing
retry     a failure that can succeed later (network, timeout, 5xx, 429, a `retry` outcome)
dead      a failure that will not fix itself (4xx, mapping error, GraphQL authorization): park it
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

Status = Literal["done", "skipped", "retry", "dead"]


@dataclass(frozen=True)
class RunResult:
    mapping: str
    status: Status
    # plain words, already masked: "step `update-incident` (mappings/servicenow.yaml:58): servicenow answered 404"
    reason: str
    step: str | None = None  # the step that decided the outcome, if any
    retry_after: float | None = None  # seconds the target asked us to wait (Retry-After), when it did
    trace_json: str = "{}"  # the trace as JSON text (ASCII), secrets masked: stored as it is
    collected: Any = None  # a collecting mapping's event: its item (run.buckets.Collected), to put in its bucket

    @cached_property
    def trace(self) -> dict[str, Any]:
        """The trace as data (parsed on first use: the service only stores the text)."""
        parsed: dict[str, Any] = json.loads(self.trace_json)
        return parsed

    @property
    def final(self) -> bool:
        return self.status != "retry"
