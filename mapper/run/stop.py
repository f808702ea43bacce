"""How a run ends early (Stop, with its status and located reason), and the evaluations that end it so."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mapper.language.expressions import EvaluationError
from mapper.language.plan import Plan, Value
from mapper.run.masking import Masker
from mapper.run.outcome import Status


class Stop(Exception):
    """Ends a run early with its result (a skip or a failure)."""

    def __init__(self, status: Status, reason: str, step: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.step, self.retry_after = status, reason, step, retry_after


def at(plan: Plan, line: int) -> str:
    return f"{plan.file}:{line}"


def evaluate(plan: Plan, expression: Any, scope: Mapping[str, Any], where: str | None = None) -> Any:
    try:
        return expression.search(scope)
    except EvaluationError as exc:
        place = where or f"{expression.where} ({at(plan, expression.location.line)})"
        raise Stop("dead", f"{place}: `{expression.source}` failed: {exc}") from None


def render(plan: Plan, value: Value | None, scope: Mapping[str, Any], where: str | None = None) -> Any:
    if value is None:
        return None
    try:
        return value.render(scope)
    except EvaluationError as exc:
        place = f"{where}, {value.where.split(' > ', 1)[-1]}" if where else value.where
        raise Stop("dead", f"{place} ({at(plan, value.location.line)}): {exc}") from None


def text_of(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def cut(masker: Masker, text: str, limit: int) -> str:
    """The first `limit` characters, masked before the cut (which must not leave half a secret)."""
    return masker.text(text) if len(text) <= limit else masker.excerpt(text, limit + 1)[:-1]
