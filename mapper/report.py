"""Render problems for people (text with a caret), machines (JSON) and GitHub (workflow annotations)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from mapper.errors import Problem


def text(problems: Iterable[Problem]) -> str:
    blocks = []
    for problem in problems:
        label = "warning: " if problem.severity == "warning" else ""
        lines = [f"{problem.location}: {label}{problem.message}"]
        if problem.source_line is not None and problem.location.line:
            number = str(problem.location.line)
            pad = " " * len(number)
            shown = _visible(problem.source_line)
            lines.append(f"   {number} | {shown}")
            width = max(1, min(problem.location.width, max(1, len(shown) - problem.location.column + 1)))
            lines.append(f"   {pad} | {' ' * (problem.location.column - 1)}{'^' * width}")
        # A lone top-level key the message already names in backticks would only repeat it.
        if problem.path and not (len(problem.path) == 1 and f"`{problem.path[0]}`" in problem.message):
            lines.append(f"  in: {problem.where}")
        if problem.hint:
            lines.append(f"  hint: {problem.hint}")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def _visible(line: str) -> str:
    """The line as it can be shown: a tab as one space, other control characters as their symbol (␇)."""
    return "".join(
        " " if c == "\t" else chr(0x2400 + ord(c)) if ord(c) < 0x20 else "\u2421" if c == "\x7f" else c for c in line
    )


def as_json(problems: Iterable[Problem]) -> str:
    return json.dumps(
        [
            {
                "file": p.location.file,
                "line": p.location.line,
                "column": p.location.column,
                "severity": p.severity,
                "message": p.message,
                "path": list(p.path),
                "hint": p.hint,
            }
            for p in problems
        ],
        indent=2,
        ensure_ascii=False,
    )


def _escape(value: str, property_value: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def github(problems: Iterable[Problem]) -> str:
    """GitHub Actions workflow commands: `::error file=f,line=l,col=c::message`."""
    lines = []
    for p in problems:
        message = p.message + (f" (in: {p.where})" if p.path else "") + (f" hint: {p.hint}" if p.hint else "")
        lines.append(
            f"::{p.severity} file={_escape(p.location.file, True)},line={p.location.line},"
            f"col={p.location.column}::{_escape(message)}"
        )
    return "\n".join(lines)


def summary(files: int, problems: list[Problem]) -> str:
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = len(problems) - errors
    noun = "file" if files == 1 else "files"
    if not problems:
        return f"{files} {noun} checked: all valid"
    return f"{files} {noun} checked: {errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
