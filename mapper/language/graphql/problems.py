"""What the GraphQL checks report: problems located by character offset in the query text."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GraphQLProblem:
    message: str
    offset: int  # character offset in the query text
    width: int = 1
    hint: str | None = None
    variable: str | None = None  # set when the place to fix is the `variables:` entry of that name
    severity: str = "error"


class QuerySyntaxError(Exception):
    """The query text cannot be parsed; the message is in plain words, the offset at the offending token."""

    def __init__(self, message: str, offset: int, width: int = 1) -> None:
        super().__init__(message)
        self.message, self.offset, self.width = message, offset, max(1, width)


class SchemaFileError(Exception):
    """A `--graphql-schema` file that cannot be read; the message says why in plain words."""


def offset_of(text: str, line: int, column: int) -> int:
    """The character offset of a 1-based line and column of `text`."""
    lines = text.split("\n")
    line = min(max(line, 1), len(lines))
    return sum(len(x) + 1 for x in lines[: line - 1]) + max(column - 1, 0)
