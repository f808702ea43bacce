"""Render problems for people (text with a caret), machines (JSON) and GitHub (workflow annotations)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from mapper.errors import Problem
from mapper.errors import as_text as text  # beside the type: the service logs problems too

__all__ = ["as_json", "github", "summary", "text"]


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
