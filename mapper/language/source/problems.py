"""Problems found while reading YAML: placed at PyYAML's marks, worded for a person, with the fix as a hint."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import yaml
from yaml.nodes import Node

from mapper.errors import Location, Problem
from mapper.language.source.document import split_lines

DEEP_HINT = "a mapping needs only a few levels; look for a long run of `[` or `{`"


class Mark(NamedTuple):
    line: int  # 0-based, like PyYAML's marks
    column: int


@dataclass(frozen=True)
class At:
    """Makes a located problem from a 0-based mark (PyYAML's or a Mark)."""

    file: str
    lines: list[str]

    def __call__(self, mark: Any, message: str, hint: str | None = None, width: int = 1) -> Problem:
        lines = self.lines
        line = getattr(mark, "line", -1) + 1
        column = getattr(mark, "column", -1) + 1
        if line > len(lines) and lines:  # PyYAML marks the end of input one line past the last
            line, column = len(lines), len(lines[-1]) + 1
        line, column = max(line, 1), max(column, 1)
        source_line = lines[line - 1] if 0 < line <= len(lines) else None
        return Problem(Location(self.file, line, column, width), message, hint=hint, source_line=source_line)


def tag_problem(node: Node, at: At) -> Problem:
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    return at(
        node.start_mark,
        f"tags such as `{tag}` are not allowed",
        "remove the tag; quote the value if it must stay text",
        width=len(tag),
    )


def quote_hint(raw: str) -> str:
    shown = raw if len(raw) <= 60 and "\n" not in raw else "{{ ... }}"
    quote = "'" if '"' in shown else '"'
    return f"put the whole value in quotes: {quote}{shown}{quote} (an unquoted `{{` starts a YAML mapping)"


def not_utf8(raw: bytes, exc: UnicodeDecodeError, file: str) -> Problem:
    before = raw[: exc.start]
    line = before.count(b"\n") + 1
    line_start = before.rfind(b"\n") + 1
    column = len(raw[line_start : exc.start].decode("utf-8", "replace")) + 1
    line_end = raw.find(b"\n", exc.start)
    shown = raw[line_start : line_end if line_end >= 0 else len(raw)].decode("utf-8", "replace").rstrip("\r")
    byte = raw[exc.start]
    return Problem(
        Location(file, line, column),
        f"the file is not UTF-8 text: byte 0x{byte:02X} cannot be read",
        hint="save the file as UTF-8 (it was probably saved as Latin-1 or Windows-1252)",
        source_line=shown,
    )


def reader_problem(exc: yaml.reader.ReaderError, text: str, at: At) -> Problem:
    position = max(0, min(exc.position, len(text)))
    before = text[:position]
    lines = split_lines(before + "x")
    mark = Mark(len(lines) - 1, len(lines[-1]) - 1)
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
    return at(
        mark,
        f"the file contains the control character U+{code:04X}, which YAML does not allow",
        "delete it (it is often invisible: retype the line)",
    )


_PLAIN_YAML_ERRORS = (
    ("found character '\\t' that cannot start any token", "a tab character cannot indent YAML", "indent with spaces"),
    (
        "mapping values are not allowed here",
        "a `key: value` cannot start here",
        "check the indentation, or quote the value if it contains ': '",
    ),
    ("found duplicate anchor", "anchors are not allowed", "write the value out in full"),
    ("found undefined alias", "aliases are not allowed", "write the value out in full"),
    (
        "expected <block end>, but found '-'",
        "a list item `-` cannot start here",
        "indent list items under their key, or check the indentation of the line above",
    ),
    (
        "expected <block end>, but found ']'",
        "a `]` that closes nothing",
        "remove it, or check the `[` that goes with it",
    ),
    (
        "expected <block end>, but found '}'",
        "a `}` that closes nothing",
        "remove it, or check the `{` that goes with it",
    ),
    ("expected <block end>, but found", "the indentation is off here", "align this line with the keys around it"),
    ("expected <block mapping start>", "the indentation is off here", "align this line with the keys around it"),
    (
        "expected '<document start>'",
        "unexpected text after the end of the mapping",
        "check for an extra `]` or `}`, or for a line that is not indented like the others",
    ),
    ("while scanning a quoted scalar", "a quoted value is never closed", "add the closing quote"),
    ("found unexpected end of stream", "the file ends in the middle of a value", "close the open quote or bracket"),
    (
        "expected a single document",
        "a mapping file holds one YAML document",
        "remove the `---` separator and what follows, or split the file",
    ),
    (
        "found unknown escape character",
        "unknown escape sequence in a double-quoted value",
        "use single quotes, or write \\\\ for a backslash",
    ),
    ("found character '%' that cannot start any token", "a value cannot start with `%`", "quote the value"),
    ("found character '@' that cannot start any token", "a value cannot start with `@`", "quote the value"),
    ("found character '`' that cannot start any token", "a value cannot start with a backtick", "quote the value"),
    (
        "could not find expected ':'",
        "expected `key: value` here",
        "add the missing `:`, or check for an unclosed quote",
    ),
)

_UNQUOTED_TEMPLATE = re.compile(r"(?:^|:|-)[ \t]+(\{\{)")


def syntax_problem(exc: yaml.MarkedYAMLError, lines: list[str], at: At) -> Problem:
    context = exc.context or ""
    problem = exc.problem or ""
    mark = exc.problem_mark or exc.context_mark
    # An unquoted `{{ x }} more` reads as a mapping followed by junk: name the real mistake at its `{{`.
    line_no = getattr(mark, "line", -1)
    if 0 <= line_no < len(lines) and "quoted scalar" not in context:
        line = lines[line_no]
        unquoted = _UNQUOTED_TEMPLATE.search(line)
        if unquoted and not re.match(r"\s*#", line):
            column = unquoted.start(1)
            raw = line[column:].split(" #")[0].strip()
            return at(Mark(line_no, column), "a value that starts with `{{` must be quoted", quote_hint(raw), 2)
    if context.startswith("while parsing a flow") and exc.context_mark is not None:
        bracket = "[" if "sequence" in context else "{"
        closing = "]" if bracket == "[" else "}"
        return at(
            exc.context_mark,
            f"the `{bracket}` opened here is never closed",
            f"add the closing `{closing}` (or put commas between the items); "
            f"to use `{bracket}` as text, quote the value",
        )
    if "quoted scalar" in context and "end of stream" in problem and exc.context_mark is not None:
        # An unclosed quote is found at the end of the file; the place to fix is where it opened.
        return at(exc.context_mark, "a quoted value is never closed", "add the closing quote")
    if "while scanning a simple key" in context and exc.context_mark is not None:
        mark = exc.context_mark
    opened = _swallowing_quote(lines, mark)
    if opened is not None:
        return at(opened, "a quoted value is never closed", "add the closing quote on this line")
    if "mapping values are not allowed here" in problem and 0 <= line_no < len(lines):
        return _colon_problem(lines, line_no, getattr(mark, "column", 0), at)
    text = f"{context} {problem}"
    for needle, message, hint in _PLAIN_YAML_ERRORS:
        if needle in text:
            width = 3 if needle == "expected a single document" else 1  # underline the whole `---`
            return at(mark, message, hint, width)
    plain = (problem or context or "the YAML cannot be read").strip()
    return at(mark, f"the YAML cannot be read: {plain}")


def _swallowing_quote(lines: list[str], mark: Any) -> Mark | None:
    """The start of a quoted value that ran on over lines that look like `key: value` (a missing closing quote)."""
    if mark is None:
        return None
    text = "\n".join(lines)
    last: Any = None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if token.start_mark.index >= mark.index:
                break
            if isinstance(token, yaml.ScalarToken):
                last = token
    except yaml.YAMLError:
        pass
    if last is None or last.style not in ('"', "'") or last.start_mark.line == last.end_mark.line:
        return None
    swallowed = lines[last.start_mark.line + 1 : last.end_mark.line + 1]
    if not any(re.match(r"\s*-?\s*[\w.-]+:(\s|$)", line) for line in swallowed):
        return None
    return Mark(last.start_mark.line, last.start_mark.column)


def _colon_problem(lines: list[str], line_no: int, column: int, at: At) -> Problem:
    """`mapping values are not allowed here`: a value with `: ` in it, or a line indented too far."""
    line = lines[line_no]
    indent = len(line) - len(line.lstrip(" "))
    own_key = re.match(r"\s*(?:-\s+)?([^\s:#][^:#]*?):\s", line)
    if own_key and column > own_key.end(1):
        value = line[own_key.end() :].split(" #")[0].strip()
        quote = "'" if '"' in value else '"'
        return at(
            Mark(line_no, column),
            "a value that contains `: ` must be quoted",
            f"write {own_key.group(1)}: {quote}{value}{quote}",
        )
    above = next((x for x in reversed(lines[:line_no]) if x.strip() and not x.lstrip().startswith("#")), "")
    above_indent = len(above) - len(above.lstrip(" "))
    key = line.strip().split(":")[0]
    if indent > above_indent:
        above_key = above.strip().lstrip("- ").split(":")[0]
        return at(
            Mark(line_no, indent),
            "this line is indented further than the line above it",
            f"align `{key}:` with `{above_key}:` (YAML reads it as the rest of the value above)",
        )
    return at(
        Mark(line_no, column),
        "a `key: value` cannot start here",
        "check the indentation, or quote the value if it contains `: `",
    )
