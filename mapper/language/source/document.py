"""A read mapping: its data, and the line and column of every key and value, to place problems by path."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from mapper.errors import Location, Problem
from mapper.language.source.positions import Span, scalar_offset

Path = tuple[str | int, ...]

# The line breaks PyYAML counts (https://yaml.org/spec/1.1/#id871136); str.splitlines() knows more (\v, \f, ...),
# which would put a problem on the wrong line.
_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def split_lines(text: str) -> list[str]:
    lines = _BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


@dataclass
class Document:
    file: str
    text: str
    data: Any
    values: dict[Path, Span]
    keys: dict[Path, Span]
    refused: set[Path] = field(default_factory=set)  # values replaced or dropped here: say nothing more about them
    incomplete: set[Path] = field(default_factory=set)  # mappings that lost keys to a refused merge key

    @cached_property
    def lines(self) -> list[str]:
        return split_lines(self.text)

    def line_text(self, line: int) -> str | None:
        lines = self.lines
        return lines[line - 1] if 0 < line <= len(lines) else None

    def is_refused(self, path: Path) -> bool:
        """True when a problem at `path` would only repeat one already reported while reading the YAML."""
        return path in self.incomplete or any(path[:n] in self.refused for n in range(len(path) + 1))

    def span(self, path: Path, key: bool = False) -> Span | None:
        """The span of `path` (its key when `key`), or of its nearest ancestor that has one."""
        if key and path in self.keys:
            return self.keys[path]
        while True:
            if path in self.values:
                return self.values[path]
            if not path:
                return None
            path = path[:-1]

    def location(self, path: Path, key: bool = False) -> Location:
        span = self.span(path, key)
        if span is None:
            return Location(self.file)
        width = span.end_column - span.column if span.end_line == span.line else 1
        return Location(self.file, span.line, span.column, max(1, width))

    def location_in_scalar(self, path: Path, offset: int, width: int = 1) -> Location:
        """The place of character `offset` of the string value at `path` (for errors inside expressions)."""
        span = self.values.get(path)
        if span is None:
            return self.location(path)
        line_offset, column = scalar_offset(self.lines, span, offset)
        return Location(self.file, span.line + line_offset, column, max(1, width))

    def problem(self, path: Path, message: str, hint: str | None = None, key: bool = False) -> Problem:
        location = self.location(path, key)
        return Problem(
            location, message, path=self.describe(path), hint=hint, source_line=self.line_text(location.line)
        )

    def describe(self, path: Path) -> tuple[str, ...]:
        """The breadcrumb of a path in words: ('steps', 0, 'json') → ('step "update-incident"', 'json')."""
        words: list[str] = []
        data: Any = self.data
        index = 0
        while index < len(path):
            part = path[index]
            child = data.get(part) if isinstance(data, dict) and isinstance(part, str) else None
            following = path[index + 1] if index + 1 < len(path) else None
            if part == "steps" and isinstance(following, int) and isinstance(child, list):
                item = child[following] if following < len(child) else None
                name = item.get("name") if isinstance(item, dict) else None
                words.append(f'step "{name}"' if isinstance(name, str) else f"step {following + 1}")
                data, index = item, index + 2
            elif part == "cases" and index == 0 and isinstance(following, int) and isinstance(child, list):
                item = child[following] if following < len(child) else None  # a tests file's case, by its name
                name = item.get("name") if isinstance(item, dict) else None
                words.append(f'case "{name}"' if isinstance(name, str) else f"case {following + 1}")
                data, index = item, index + 2
            elif part == "connections" and index == 0 and following is not None and isinstance(child, dict):
                words.append(f'connection "{following}"')
                data, index = child.get(str(following)), index + 2
            elif isinstance(part, int):
                words.append(f"item {part + 1}")
                data = data[part] if isinstance(data, list) and part < len(data) else None
                index += 1
            else:
                words.append(part)
                data, index = child, index + 1
        return tuple(words)
