"""How an expression or template fails: a located syntax error when compiled, a plain-worded one on an event."""

from __future__ import annotations


class ExpressionSyntaxError(Exception):
    """A syntax error at `offset` (0-based character index in the expression or template text)."""

    def __init__(self, message: str, offset: int, width: int = 1, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = max(0, offset)
        self.width = max(1, width)
        self.hint = hint


class EvaluationError(Exception):
    """An expression or template failed on the data of one event; the message is in plain words."""
