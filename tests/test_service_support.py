"""Not tests: the stand-in runner the service subprocess loads with `--runner test_service_support:EffectRunner`.

It makes one POST per run to $WLMAP_TEST_TARGET/effect carrying the idempotency key (header and body), the
delivery id and the resource id, and turns the answer into a RunResult the way the real runner would:
2xx done; 408/429/5xx and timeouts retry (honouring Retry-After); any other status dead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from mapper.events import Event
from mapper.outcome import RunResult
from mapper.plan import Plan

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class EffectRunner:
    """Runner(env) with `run(plan, event, *, idempotency_key, attempt)` and `aclose()`, like mapper.runner."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.url = env["WLMAP_TEST_TARGET"].rstrip("/") + "/effect"
        self.client = httpx.AsyncClient(timeout=float(env.get("WLMAP_TEST_TIMEOUT", "2")))

    async def run(self, plan: Plan, event: Event, *, idempotency_key: str, attempt: int) -> RunResult:
        body = {"key": idempotency_key, "delivery_id": event.delivery_id, "resource_id": event.resource_id,
                "mapping": plan.name, "attempt": attempt, "payload": event.payload}
        trace: dict[str, Any] = {"request": {"method": "POST", "url": "<target>/effect", "json": body}}
        try:
            response = await self.client.post(self.url, json=body, headers={"Idempotency-Key": idempotency_key})
        except httpx.TimeoutException:
            return RunResult(plan.name, "retry", "step `post`: the target did not answer in time", "post",
                             trace=trace)
        except httpx.HTTPError as exc:
            return RunResult(plan.name, "retry", f"step `post`: {type(exc).__name__}", "post", trace=trace)
        trace["response"] = {"status": response.status_code}
        if response.status_code < 300:
            return RunResult(plan.name, "done", "every step succeeded", trace=trace)
        if response.status_code in RETRY_STATUSES:
            after = response.headers.get("retry-after")
            return RunResult(plan.name, "retry", f"step `post`: the target answered {response.status_code}", "post",
                             retry_after=float(after) if after else None, trace=trace)
        return RunResult(plan.name, "dead", f"step `post`: the target answered {response.status_code}", "post",
                         trace=trace)

    async def aclose(self) -> None:
        await self.client.aclose()
