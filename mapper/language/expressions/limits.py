"""How much one expression or template may produce, so that a mapping cannot allocate gigabytes."""

from __future__ import annotations

from typing import Any

from mapper.language.expressions.errors import EvaluationError

MAX_OUTPUT = 1024 * 1024  # characters one template or expression may produce
MAX_RESULT_ITEMS = 100_000
MAX_REPEAT = 100_000  # longest string or list `*` may build
MAX_EXPONENT = 64
MAX_RANGE = 10_000


def guard_size(result: Any) -> None:
    """A JMESPath result: at most MAX_RESULT_ITEMS items, or MAX_OUTPUT characters."""
    if isinstance(result, list) and len(result) > MAX_RESULT_ITEMS:
        raise EvaluationError(f"an expression produced {len(result)} items; at most {MAX_RESULT_ITEMS} are allowed")
    if isinstance(result, str) and len(result) > MAX_OUTPUT:
        raise EvaluationError(f"an expression produced {len(result)} characters; at most {MAX_OUTPUT} are allowed")


def too_long() -> EvaluationError:
    return EvaluationError(f"the template produced more than {MAX_OUTPUT} characters")
