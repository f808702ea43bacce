"""Where a node sits in the YAML text, and where a character of a scalar's value was typed.

An error inside an expression has an offset in the decoded value; the person needs the line and column
in the file, through quotes, escapes, folded lines and block indentation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """Where a node sits in the text: 1-based, end exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int
    style: str | None = None  # scalar style: None plain, "'" or '"' quoted, "|" or ">" block


def scalar_offset(lines: list[str], span: Span, offset: int) -> tuple[int, int]:
    """Map a character offset in a scalar's value back to (line offset, 1-based column) in the YAML text."""
    raw = _raw_scalar(lines, span)
    if span.style in ("|", ">"):
        return _block_offset(raw, span.style == ">", offset)
    return _flow_offset(raw, span, offset)


def _raw_scalar(lines: list[str], span: Span) -> list[str]:
    # The end is exclusive: a block scalar ends at column 1 of the line after it, which is not part of it.
    end = span.end_line - 1 if span.end_column == 1 and span.end_line > span.line else span.end_line
    return lines[span.line - 1 : end]


def _block_indent(raw: list[str]) -> int:
    """The indentation of a block scalar's content: the indicator's digit, else the first non-blank line's."""
    header = raw[0] if raw else ""
    digit = re.search(r"[|>][-+]?([1-9])|[|>]([1-9])[-+]?", header)
    body = raw[1:]
    first = next((x for x in body if x.strip(" \t")), "")
    detected = len(first) - len(first.lstrip(" "))
    if digit:
        parent = len(header) - len(header.lstrip(" "))
        # The digit counts from the parent node's indentation; for `key: |2` that is the key's column.
        return min(parent + int(digit.group(1) or digit.group(2)), detected) if first else detected
    return detected


def _block_offset(raw: list[str], folded: bool, offset: int) -> tuple[int, int]:
    body = raw[1:]
    indent = _block_indent(raw)
    remaining = offset
    for index, line in enumerate(body):
        length = max(len(line) - indent, 0)
        if remaining <= length:
            return index + 1, indent + remaining + 1
        remaining -= length
        # A folded scalar turns the break before a run of blank lines into nothing (the blank lines are the
        # newlines); every other break is one character (a newline, or a space when folded).
        following_blank = index + 1 < len(body) and not body[index + 1].strip(" \t")
        if not (folded and line.strip(" \t") and following_blank):
            remaining -= 1
        if remaining < 0:
            return index + 1, indent + length + 1
    return max(len(body), 1), indent + 1


def _flow_offset(raw: list[str], span: Span, offset: int) -> tuple[int, int]:
    """Walk the raw characters of a plain or quoted scalar, counting decoded ones: escapes and quotes shift right."""
    quote = span.style if span.style in ("'", '"') else None
    line_index, col = 0, span.column - 1 + (1 if quote else 0)
    decoded = 0
    while decoded < offset and line_index < len(raw):
        line = raw[line_index]
        if col >= len(line.rstrip(" \t")) and line_index + 1 < len(raw):
            # A line break inside a flow scalar reads as one space; the next line's indentation is dropped.
            line_index, col = _next_line(raw, line_index)
            decoded += 1
            continue
        if col >= len(line):
            break
        char = line[col]
        if quote == '"' and char == "\\" and col == len(line) - 1 and line_index + 1 < len(raw):
            # An escaped line break: the value goes on at the next line's first non-blank, with nothing between.
            line_index, col = _next_line(raw, line_index)
            continue
        col += _raw_length(line, col, quote)
        decoded += 1
    return line_index, col + 1


def _next_line(raw: list[str], line_index: int) -> tuple[int, int]:
    following = raw[line_index + 1]
    return line_index + 1, len(following) - len(following.lstrip(" \t"))


def _raw_length(line: str, col: int, quote: str | None) -> int:
    """How many typed characters make the decoded character at `col`: an escape, a doubled quote, or one."""
    if quote == '"' and line[col] == "\\":
        return {"x": 4, "u": 6, "U": 10}.get(line[col + 1 : col + 2], 2)
    if quote == "'" and line[col] == "'" and line[col + 1 : col + 2] == "'":
        return 2
    return 1
