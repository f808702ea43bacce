"""YAML text → plain data plus the line and column of every key and value, with YAML's traps disarmed.

What is refused or kept literal, and why (each a real way to break a target system silently):
- aliases, anchors and tags (`&a`, `*a`, `!!python/...`): refused; a mapping is plain data.
- duplicate keys: refused (PyYAML keeps the last one without a word).
- YAML 1.1 booleans and numbers (`NO`, `on`, `yes`, `012345`, `1.10`, `0x1F`, `2024-01-01`): kept as the
  text typed. Only `true`/`false`, `null`/`~`, decimal integers without a leading zero and decimal numbers
  that read back exactly as typed become non-strings.
- more than one document, more than 1 MiB, nesting deeper than 64.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mapper.errors import Location, Problem, Problems

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64

Path = tuple[str | int, ...]

_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+\.[0-9]*)([eE][-+]?[0-9]+)?")
_IMPLICIT = "tag:wlmap,implicit"


@dataclass(frozen=True)
class Span:
    """Where a node sits in the text: 1-based, end exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int
    style: str | None = None  # scalar style: None plain, "'" or '"' quoted, "|" or ">" block


@dataclass
class Document:
    file: str
    text: str
    data: Any
    values: dict[Path, Span]
    keys: dict[Path, Span]

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def line_text(self, line: int) -> str | None:
        lines = self.lines
        return lines[line - 1] if 0 < line <= len(lines) else None

    def span(self, path: Path, key: bool = False) -> Span | None:
        """The span of `path` (its key when `key`), or of its nearest ancestor that has one."""
        table = self.keys if key else self.values
        if path in table:
            return table[path]
        while path:
            path = path[:-1]
            if path in self.values:
                return self.values[path]
        return None

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
        raw = _raw_scalar(self.text, span)
        line_offset, column = _scalar_offset(raw, span, offset)
        return Location(self.file, span.line + line_offset, column, max(1, width))

    def problem(self, path: Path, message: str, hint: str | None = None, key: bool = False) -> Problem:
        location = self.location(path, key)
        return Problem(location, message, hint=hint, source_line=self.line_text(location.line))


def _raw_scalar(text: str, span: Span) -> list[str]:
    lines = text.splitlines()
    return lines[span.line - 1 : span.end_line]


def _scalar_offset(raw: list[str], span: Span, offset: int) -> tuple[int, int]:
    """Map a character offset in a scalar's value back to (line offset, 1-based column) in the YAML text."""
    if span.style in ("|", ">"):
        body = raw[1:] if len(raw) > 1 else []
        indent = min((len(x) - len(x.lstrip(" ")) for x in body if x.strip()), default=0)
        remaining = offset
        for index, line in enumerate(body):
            length = len(line) - indent
            if remaining <= length:
                return index + 1, indent + remaining + 1
            remaining -= max(length, 0) + 1
        return 0, span.column
    # Flow scalars: walk the raw characters, counting decoded characters, so escapes and quotes shift right.
    quote = span.style if span.style in ("'", '"') else None
    line_index, col = 0, span.column - 1 + (1 if quote else 0)
    decoded = 0
    while decoded < offset and line_index < len(raw):
        line = raw[line_index]
        if col >= len(line):
            line_index, col = line_index + 1, len(raw[line_index + 1]) - len(raw[line_index + 1].lstrip()) if line_index + 1 < len(raw) else 0
            decoded += 1
            continue
        char = line[col]
        if quote == '"' and char == "\\":
            col += _escape_length(line, col)
        elif quote == "'" and char == "'" and line[col + 1 : col + 2] == "'":
            col += 2
        else:
            col += 1
        decoded += 1
    return line_index, col + 1


def _escape_length(line: str, col: int) -> int:
    nxt = line[col + 1 : col + 2]
    return {"x": 4, "u": 6, "U": 10}.get(nxt, 2)


class _Loader(yaml.SafeLoader):
    """Composes nodes only; never resolves tags and reports aliases/anchors instead of following them."""

    def __init__(self, text: str, problems: list[tuple[Any, str, str | None]]) -> None:
        super().__init__(text)
        self.found = problems

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        return _IMPLICIT

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(AliasEvent):
            event = self.get_event()
            self.found.append((event.start_mark, f"aliases (`*{event.anchor}`) are not allowed", "write the value out in full"))
            return ScalarNode(_IMPLICIT, "", event.start_mark, event.end_mark)
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self.found.append((event.start_mark, f"anchors (`&{anchor}`) are not allowed", "write the value out in full"))
            event.anchor = None
        return super().compose_node(parent, index)  # type: ignore[no-any-return]


def read(text: str | bytes, file: str) -> tuple[Document | None, list[Problem]]:
    """Parse one YAML mapping file. Returns the document (None when the text cannot be read) and problems."""
    problems = Problems()
    whole = Location(file)
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            problems.error(whole, f"the file is larger than {MAX_BYTES // 1024} KiB", "split it into several mappings")
            return None, problems.sorted()
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            problems.error(whole, f"the file is not UTF-8 text (byte {exc.start} cannot be read)", "save it as UTF-8")
            return None, problems.sorted()
    if len(text) > MAX_BYTES:
        problems.error(whole, f"the file is larger than {MAX_BYTES // 1024} KiB", "split it into several mappings")
        return None, problems.sorted()
    lines = text.splitlines()

    def at(mark: Any, message: str, hint: str | None = None, width: int = 1) -> Problem:
        line = getattr(mark, "line", -1) + 1
        column = getattr(mark, "column", -1) + 1
        source_line = lines[line - 1] if 0 < line <= len(lines) else None
        if line > len(lines) and lines:  # PyYAML marks the end of input one line past the last
            line, column, source_line = len(lines), len(lines[-1]) + 1, lines[-1]
        return Problem(Location(file, max(line, 1), max(column, 1), width), message, hint=hint, source_line=source_line)

    found: list[tuple[Any, str, str | None]] = []
    loader = _Loader(text, found)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        message, hint = _plain_yaml_error(exc)
        # An unclosed quote is found at the end of the file; the place to fix is where it opened.
        opened = "quoted scalar" in (exc.context or "") and exc.context_mark is not None
        mark = exc.context_mark if opened else (exc.problem_mark or exc.context_mark)
        problems.add(at(mark, message, hint))
        return None, problems.sorted()
    except yaml.YAMLError as exc:
        problems.error(whole, f"the YAML cannot be read: {exc}")
        return None, problems.sorted()
    except RecursionError:
        problems.error(whole, f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)")
        return None, problems.sorted()
    finally:
        loader.dispose()
    for mark, message, hint in found:
        problems.add(at(mark, message, hint))

    values: dict[Path, Span] = {}
    keys: dict[Path, Span] = {}

    def span_of(node: Node) -> Span:
        style = node.style if isinstance(node, ScalarNode) else None
        return Span(node.start_mark.line + 1, node.start_mark.column + 1, node.end_mark.line + 1, node.end_mark.column + 1, style)

    def build(node: Node, path: Path, depth: int) -> Any:
        values[path] = span_of(node)
        if depth > MAX_DEPTH:
            problems.add(at(node.start_mark, f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)"))
            return None
        if node.tag != _IMPLICIT:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            problems.add(at(node.start_mark, f"tags such as `{tag}` are not allowed", "remove the tag; quote the value if it must stay text"))
        if isinstance(node, ScalarNode):
            return _scalar(node)
        if isinstance(node, SequenceNode):
            return [build(child, (*path, index), depth + 1) for index, child in enumerate(node.value)]
        assert isinstance(node, MappingNode)
        if node.flow_style and text[node.start_mark.index : node.start_mark.index + 2] == "{{":
            problems.add(at(node.start_mark, "a value that starts with `{{` must be quoted",
                            "write it as \"{{ ... }}\" (YAML reads an unquoted { as the start of a mapping)"))
            return text[node.start_mark.index : node.end_mark.index]
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                problems.add(at(key_node.start_mark, "a key must be a plain name, not a list or a mapping"))
                continue
            key = str(key_node.value)
            if key == "<<" and key_node.style is None:
                problems.add(at(key_node.start_mark, "merge keys (`<<`) are not allowed", "write the keys out in full"))
                continue
            if key in result:
                first = keys[(*path, key)]
                problems.add(at(key_node.start_mark, f"duplicate key `{key}` (first set on line {first.line})",
                                "remove one of them; YAML would silently keep only the last", width=len(key)))
                continue
            keys[(*path, key)] = span_of(key_node)
            result[key] = build(value_node, (*path, key), depth + 1)
        return result

    if root is None:
        return Document(file, text, None, values, keys), problems.sorted()
    data = build(root, (), 0)
    return Document(file, text, data, values, keys), problems.sorted()


def _scalar(node: ScalarNode) -> Any:
    value: str = node.value
    if node.style is not None:
        return value
    if value in ("", "~", "null", "Null", "NULL"):
        return None
    if value in ("true", "True", "TRUE"):
        return True
    if value in ("false", "False", "FALSE"):
        return False
    if _INT.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value) and repr(float(value)) == value.lstrip("+"):
        return float(value)
    return value


_PLAIN_YAML_ERRORS = (
    ("found character '\\t' that cannot start any token", "a tab character cannot indent YAML", "indent with spaces"),
    ("mapping values are not allowed here", "a `key: value` cannot start here",
     "check the indentation, or quote the value if it contains ': '"),
    ("could not find expected ':'", "expected `key: value` here", "check for a missing colon or an unclosed quote"),
    ("found duplicate anchor", "anchors are not allowed", "write the value out in full"),
    ("found undefined alias", "aliases are not allowed", "write the value out in full"),
    ("expected <block end>, but found", "the indentation is off here", "align this line with the keys around it"),
    ("while scanning a quoted scalar", "a quoted value is never closed", "add the closing quote"),
    ("found unexpected end of stream", "the file ends in the middle of a value", "close the open quote or bracket"),
    ("expected a single document", "a mapping file holds one YAML document", "remove the `---` separator and what follows, or split the file"),
    ("found unknown escape character", "unknown escape sequence in a double-quoted value", "use single quotes, or write \\\\ for a backslash"),
    ("found character '%' that cannot start any token", "a value cannot start with `%`", "quote the value"),
    ("found character '@' that cannot start any token", "a value cannot start with `@`", "quote the value"),
    ("found character '`' that cannot start any token", "a value cannot start with a backtick", "quote the value"),
)


def _plain_yaml_error(exc: yaml.MarkedYAMLError) -> tuple[str, str | None]:
    text = f"{exc.context or ''} {exc.problem or ''}"
    for needle, message, hint in _PLAIN_YAML_ERRORS:
        if needle in text:
            return message, hint
    problem = (exc.problem or exc.context or "the YAML cannot be read").strip()
    return f"the YAML cannot be read: {problem}", None
